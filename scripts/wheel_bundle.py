#!/usr/bin/env python3
"""Helpers of scripts/build_wheel.sh and scripts/test_wheel.sh (standard library only, so that
the test can run it inside a bare Debian root with the distribution's python3).

  add-file WHEEL SRC DEST         put SRC into WHEEL at DEST (mode kept), RECORD rewritten
  complete WHEEL LIBDIR PATCHELF  bundle what auditwheel leaves outside although it is not the
                                  C runtime (its manylinux whitelist: libz, libexpat, libX11,
                                  libGL, glib, ...), into the wheel's LIBDIR with RUNPATH $ORIGIN
  check PREFIX FILE...            ldd of each FILE: every library must resolve under PREFIX or be
                                  the C runtime (RUNTIME below); lists offenders, exit 1 if any
  elves DIR                       the ELF files under DIR, one a line
  unpack WHEEL DIR                unzip WHEEL into DIR, file modes kept
  libdir WHEEL                    the name of WHEEL's top-level *.libs folder (auditwheel's)
  tag-minor WHEEL                 N of WHEEL's manylinux_2_N tag

ldd is run with LD_LIBRARY_PATH removed, so only the files' own RUNPATHs and the system's
default paths take part.
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

# What may stay outside the wheel: glibc's own libraries, the kernel's vDSO and the compiler
# runtime that every distribution's base system carries (libgcc_s, libstdc++, libatomic).
RUNTIME = {
    "linux-vdso.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
    "libc.so.6", "libm.so.6", "libmvec.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "libresolv.so.2", "libutil.so.1", "libnsl.so.1", "libanl.so.1",
    "libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1",
}

# Libraries auditwheel's manylinux whitelist leaves outside that every Debian and Ubuntu Python
# depends on (libpython3.X-stdlib -> libexpat1, zlib1g): when the build machine's copy needs a
# newer glibc than the wheel's tag promises (Debian 12's libexpat uses arc4random, GLIBC_2.36),
# `complete` leaves them to the installing system instead of breaking the tag, and `check`
# accepts them there.
PYTHON_DEPS = {"libexpat.so.1", "libz.so.1"}

GLIBC_VERSION = re.compile(rb"GLIBC_2\.([0-9]+)")
TAG = re.compile(r"manylinux_2_([0-9]+)_")


def glibc_minor(path):
    """The highest GLIBC_2.N symbol version `path` refers to (0 if none)."""
    with open(path, "rb") as f:
        found = [int(m.group(1)) for m in GLIBC_VERSION.finditer(f.read())]
    return max(found, default=0)


def tag_minor(wheel):
    """N of the wheel's manylinux_2_N tag (None for another tag)."""
    m = TAG.search(os.path.basename(wheel))
    return int(m.group(1)) if m else None


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def elves(root):
    out = []
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            if not os.path.islink(p) and is_elf(p):
                out.append(p)
    return sorted(out)


LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.*?)\s+\(0x[0-9a-f]+\)\s*$")
LDD_NOTFOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")
LDD_DIRECT = re.compile(r"^\s*(\S+)\s+\(0x[0-9a-f]+\)\s*$")  # the loader, the vDSO


def ldd(path):
    """[(soname, resolved path or None)] of everything `path` loads, transitively."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    r = subprocess.run(["ldd", path], capture_output=True, text=True, env=env)
    if r.returncode != 0 and "not a dynamic executable" in (r.stdout + r.stderr):
        return []
    out = []
    for line in r.stdout.splitlines():
        m = LDD_LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
            continue
        m = LDD_NOTFOUND.match(line)
        if m:
            out.append((m.group(1), None))
            continue
        m = LDD_DIRECT.match(line)
        if m:
            out.append((os.path.basename(m.group(1)), m.group(1)))
        elif line.strip() and "statically linked" not in line:
            out.append((line.strip(), None))
    return out


def record_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode(), os.path.getsize(path)


def unpack(wheel, into):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            z.extract(info, into)
            mode = (info.external_attr >> 16) & 0o7777
            if mode:
                os.chmod(os.path.join(into, info.filename), mode)
    dist_info = [d for d in os.listdir(into) if d.endswith(".dist-info")]
    assert len(dist_info) == 1, dist_info
    return dist_info[0]


def pack(root, dist_info, wheel):
    """Zip `root` into `wheel` with a fresh RECORD (dist-info last, as the spec recommends)."""
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
            if rel != f"{dist_info}/RECORD":
                files.append(rel)
    files.sort(key=lambda p: (p.startswith(dist_info + "/"), p))
    lines = []
    for rel in files:
        digest, size = record_hash(os.path.join(root, rel))
        lines.append(f"{rel},{digest},{size}")
    lines.append(f"{dist_info}/RECORD,,")
    with open(os.path.join(root, dist_info, "RECORD"), "w") as f:
        f.write("\n".join(lines) + "\n")
    tmp = wheel + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for rel in files + [f"{dist_info}/RECORD"]:
            p = os.path.join(root, rel)
            info = zipfile.ZipInfo.from_file(p, rel)
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(p, "rb") as f:
                z.writestr(info, f.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    os.replace(tmp, wheel)


def add_file(wheel, src, dest):
    with tempfile.TemporaryDirectory() as tmp:
        dist_info = unpack(wheel, tmp)
        target = os.path.join(tmp, dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)
        pack(tmp, dist_info, wheel)


HASHED = re.compile(r"^(?P<base>.+)-[0-9a-f]{8}\.(?P<ext>so(\..*)?)$")


def grafted_names(lib_root):
    """{original soname: file name} of the libraries auditwheel grafted (it renames
    libxcb.so.1.1.0 to libxcb-<8 hex>.so.1.1.0 and sets that as the soname)."""
    out = {}
    for n in os.listdir(lib_root):
        m = HASHED.match(n)
        if m:
            out[(m.group("base"), m.group("ext"))] = n
    return out


def grafted_as(soname, grafted):
    if ".so" not in soname:
        return None
    i = soname.index(".so")
    base, ext = soname[:i], soname[i + 1:]
    for (b, e), name in grafted.items():
        if b == base and (e == ext or e.startswith(ext + ".")):
            return name
    return None


def complete(wheel, libdir, patchelf):
    """Copy into the wheel's `libdir` every library that its ELF files resolve outside the wheel
    and that is not the C runtime, until none is left. A copied library keeps its soname; its
    DT_NEEDED entries that auditwheel grafted under a hashed name are pointed at those copies
    (so that no library is loaded twice), and every library in `libdir` gets RUNPATH $ORIGIN.
    A library that needs a newer glibc than the wheel's manylinux tag is left to the system
    when it is one of PYTHON_DEPS (and the build fails for any other).
    Returns the sonames added."""
    added = []
    floor = tag_minor(wheel)
    left = set()
    with tempfile.TemporaryDirectory() as tmp:
        dist_info = unpack(wheel, tmp)
        lib_root = os.path.join(tmp, libdir)
        os.makedirs(lib_root, exist_ok=True)
        grafted = grafted_names(lib_root)
        while True:
            new = {}
            for f in elves(tmp):
                for soname, path in ldd(f):
                    if soname in RUNTIME or soname in left:
                        continue
                    if path is None:
                        sys.exit(f"{os.path.relpath(f, tmp)}: {soname} not found")
                    if not os.path.realpath(path).startswith(tmp + os.sep):
                        need = glibc_minor(os.path.realpath(path))
                        if floor is not None and need > floor:
                            if soname not in PYTHON_DEPS:
                                sys.exit(f"{soname} ({path}) needs GLIBC_2.{need}, newer than the "
                                         f"wheel's manylinux_2_{floor}: cannot bundle it")
                            print(f"left to the system: {soname} (this machine's copy needs "
                                  f"GLIBC_2.{need} > manylinux_2_{floor}; every Debian/Ubuntu "
                                  f"Python depends on it)")
                            left.add(soname)
                            continue
                        new[soname] = path
            if not new:
                break
            for soname, path in sorted(new.items()):
                dest = os.path.join(lib_root, soname)
                shutil.copy(os.path.realpath(path), dest)
                os.chmod(dest, 0o755)
                added.append(soname)
                needed = subprocess.run([patchelf, "--print-needed", dest], check=True,
                                        capture_output=True, text=True).stdout.split()
                for n in needed:
                    g = grafted_as(n, grafted)
                    if g and not os.path.exists(os.path.join(lib_root, n)):
                        subprocess.run([patchelf, "--replace-needed", n, g, dest], check=True)
            # RUNPATH $ORIGIN on every library in libdir: one that auditwheel grafted without
            # internal dependencies had its RUNPATH cleared, and may need one of these now.
            for f in elves(lib_root):
                subprocess.run([patchelf, "--set-rpath", "$ORIGIN", f], check=True)
        pack(tmp, dist_info, wheel)
    return added


def check(prefix, files):
    """ldd of each file: everything inside `prefix` but the C runtime and PYTHON_DEPS; and no
    ELF file under `prefix` that belongs to the wheel needs a newer glibc than REEL_WHEEL_TAG_MINOR
    (when set) promises."""
    prefix = os.path.realpath(prefix)
    bad = 0
    floor = os.environ.get("REEL_WHEEL_TAG_MINOR")
    if floor:
        for f in elves(prefix):
            if "reel_recorder.libs" in f or "/reel/" in f:
                need = glibc_minor(f)
                if need > int(floor):
                    print(f"  OFFENDER {f}: needs GLIBC_2.{need} > the tag's manylinux_2_{floor}")
                    bad += 1
    for f in files:
        deps = ldd(f)
        inside = outside = 0
        for soname, path in deps:
            if path is not None and os.path.realpath(path).startswith(prefix + os.sep):
                inside += 1
            elif (soname in RUNTIME or soname in PYTHON_DEPS) and path is not None:
                outside += 1
            else:
                print(f"  OFFENDER {f}: {soname} => {path or 'not found'}")
                bad += 1
        print(f"ldd {f}: {len(deps)} libraries, {inside} inside {prefix}, {outside} C runtime (or Python's own) outside")
    return bad


def main(argv):
    if len(argv) >= 1 and argv[0] == "add-file" and len(argv) == 4:
        add_file(*argv[1:])
    elif len(argv) >= 1 and argv[0] == "complete" and len(argv) == 4:
        added = complete(*argv[1:])
        print(f"bundled {len(added)} more libraries auditwheel leaves outside: {' '.join(added) or '-'}")
    elif len(argv) >= 3 and argv[0] == "check":
        bad = check(argv[1], argv[2:])
        if bad:
            print(f"FAIL: {bad} libraries resolved outside {argv[1]} that are not the C runtime")
            return 1
        print("ldd check: nothing outside but the C runtime")
    elif len(argv) == 3 and argv[0] == "unpack":
        unpack(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "tag-minor":
        print(tag_minor(argv[1]) or "")
    elif len(argv) == 2 and argv[0] == "libdir":
        with zipfile.ZipFile(argv[1]) as z:
            tops = sorted({n.split("/")[0] for n in z.namelist() if "/" in n and n.split("/")[0].endswith(".libs")})
        if len(tops) != 1:
            print(f"expected one *.libs folder, found {tops}", file=sys.stderr)
            return 1
        print(tops[0])
    elif len(argv) == 2 and argv[0] == "elves":
        print("\n".join(elves(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
