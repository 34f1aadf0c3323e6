//! Finds the SVT-AV1 that `scripts/media.sh` built (its prefix in `REEL_SVTAV1_DIR`, else the
//! pinned version's default prefix under `${REEL_MEDIA_CACHE:-$HOME/.cache/reel}`), links
//! `libSvtAv1Enc.a` statically with what its `SvtAv1Enc.pc` names, and generates the bindings.

use std::path::PathBuf;

/// The SVT-AV1 version `scripts/media.sh` pins (its `pinned`, upstream part).
const PINNED: &str = "2.3.0";

fn default_prefix() -> Option<PathBuf> {
    let cache = std::env::var_os("REEL_MEDIA_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache").join("reel"))
        })?;
    Some(cache.join(format!("media-svtav1-{PINNED}")))
}

fn fail(msg: &str) -> ! {
    panic!(
        "\n\nreel-svt: {msg}\nreel links a current SVT-AV1 built from Debian's source package: \
         run `scripts/media.sh` (or `source scripts/media.sh`, which also exports \
         REEL_SVTAV1_DIR) and build again.\n\n"
    );
}

fn main() {
    println!("cargo:rerun-if-env-changed=REEL_SVTAV1_DIR");
    println!("cargo:rerun-if-env-changed=REEL_MEDIA_CACHE");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");

    let prefix = std::env::var_os("REEL_SVTAV1_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(default_prefix)
        .unwrap_or_else(|| fail("neither REEL_SVTAV1_DIR nor HOME is set"));
    let pc_dir = prefix.join("lib").join("pkgconfig");
    if !pc_dir.join("SvtAv1Enc.pc").is_file() {
        fail(&format!(
            "no SVT-AV1 at {} ({} missing)",
            prefix.display(),
            pc_dir.join("SvtAv1Enc.pc").display()
        ));
    }
    let mut path = pc_dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("PKG_CONFIG_PATH").filter(|v| !v.is_empty()) {
        path.push(":");
        path.push(old);
    }
    // pkg-config reads the variable (a build script runs single-threaded here).
    std::env::set_var("PKG_CONFIG_PATH", &path);
    let lib = pkg_config::Config::new()
        .statik(true)
        .atleast_version("2.0.0")
        .probe("SvtAv1Enc")
        .unwrap_or_else(|e| {
            fail(&format!(
                "pkg-config SvtAv1Enc in {}: {e}",
                pc_dir.display()
            ))
        });
    let static_lib = prefix.join("lib").join("libSvtAv1Enc.a");
    if !static_lib.is_file() {
        fail(&format!("{} missing", static_lib.display()));
    }
    println!("cargo:rerun-if-changed={}", static_lib.display());
    println!("cargo:rustc-env=REEL_SVTAV1_PC_VERSION={}", lib.version);
    // SVT-AV1 3.0 dropped `svt_av1_enc_init_handle`'s application-data argument.
    println!("cargo::rustc-check-cfg=cfg(svt_init_handle_app_data)");
    if lib
        .version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        < Some(3)
    {
        println!("cargo:rustc-cfg=svt_init_handle_app_data");
    }

    let header = lib
        .include_paths
        .iter()
        .map(|p| p.join("EbSvtAv1Enc.h"))
        .find(|p| p.is_file())
        .or_else(|| {
            let p = prefix.join("include").join("svt-av1").join("EbSvtAv1Enc.h");
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| fail("EbSvtAv1Enc.h not found under the prefix's include paths"));
    println!("cargo:rerun-if-changed={}", header.display());
    let mut b = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_function("svt_av1_get_version")
        .allowlist_function("svt_av1_enc_init_handle")
        .allowlist_function("svt_av1_enc_set_parameter")
        .allowlist_function("svt_av1_enc_parse_parameter")
        .allowlist_function("svt_av1_enc_init")
        .allowlist_function("svt_av1_enc_stream_header")
        .allowlist_function("svt_av1_enc_stream_header_release")
        .allowlist_function("svt_av1_enc_send_picture")
        .allowlist_function("svt_av1_enc_get_packet")
        .allowlist_function("svt_av1_enc_release_out_buffer")
        .allowlist_function("svt_av1_enc_deinit")
        .allowlist_function("svt_av1_enc_deinit_handle")
        .allowlist_type("EbSvtAv1EncConfiguration")
        .allowlist_type("EbBufferHeaderType")
        .allowlist_type("EbSvtIOFormat")
        .allowlist_type("EbComponentType")
        .allowlist_type("EbErrorType")
        .allowlist_var("EB_BUFFERFLAG_EOS")
        .allowlist_var("SVT_AV1_VERSION_.*")
        .rustified_enum("EbErrorType")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false);
    for p in &lib.include_paths {
        b = b.clang_arg(format!("-I{}", p.display()));
    }
    let out = PathBuf::from(
        std::env::var_os("OUT_DIR").unwrap_or_else(|| fail("cargo did not set OUT_DIR")),
    );
    let bindings = out.join("svt_bindings.rs");
    b.generate()
        .unwrap_or_else(|e| fail(&format!("bindgen over {}: {e}", header.display())))
        .write_to_file(&bindings)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", bindings.display())));
}
