"""LeRobot 0.6.1's conformance check (lerobot_check.py) on many datasets in one process.

Usage: python lerobot_check_many.py CONFORMANCE_DIR [--OPTION ...] DATASET...

Options before the datasets (e.g. ``--decode-all``) go to every check.

Each dataset goes through lerobot_check.py's own main() exactly as on the command line; only
the interpreter (torch, LeRobot) is loaded once instead of once per dataset. As strict as
``--strict`` (a warning fails) except for the one warning an H.264/HEVC dataset always gets,
"codec h264 (LeRobot's default is av1...)": those codecs are the user's choice, not a defect.
Prints one line per dataset (PASS/FAIL and its path) and the report of each failure; exits 1
when any failed.
"""

import contextlib
import importlib.util
import io
import re
import sys

ALLOWED_WARNING = re.compile(r"codec (h264|hevc) \(LeRobot's default is av1")


def main() -> int:
    conf, rest = sys.argv[1], sys.argv[2:]
    opts = [a for a in rest if a.startswith("--")]
    roots = [a for a in rest if not a.startswith("--")]
    spec = importlib.util.spec_from_file_location("lerobot_check", f"{conf}/lerobot_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    failed = 0
    for root in roots:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                rc = check.main([root, "--color", "never", *opts])
            except BaseException as e:  # noqa: BLE001 - a crash of the check is a failure to report
                print(f"lerobot_check.py raised {type(e).__name__}: {e}")
                rc = 1
        text = out.getvalue()
        warnings = [l for l in text.splitlines() if l.startswith("[WARN]") and not ALLOWED_WARNING.search(l)]
        ok = rc == 0 and "RESULT: PASS" in text and not warnings
        print(f"{'PASS' if ok else 'FAIL'} {root}", flush=True)
        if not ok:
            failed += 1
            print(text[-4000:], flush=True)
    print(f"{len(roots) - failed} of {len(roots)} datasets pass lerobot_check.py (strict but for H.264/HEVC)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
