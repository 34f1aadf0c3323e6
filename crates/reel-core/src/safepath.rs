//! Paths read from files someone else may have written (an undo journal, a swap manifest, a
//! re-encode state file) must never reach outside the dataset they came with.
//!
//! [`resolve`] turns such a path into a file under `root` only when it is relative, made of
//! plain names (no `..`, no `.`, no root or drive prefix, no empty or NUL-carrying name), and
//! when no existing component below `root` is a symbolic link — so neither `../../x`, `/etc/x`
//! nor `videos -> /` can lead a rollback out of the dataset.

use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Longest relative path accepted (bytes).
pub const MAX_REL_LEN: usize = 4096;

/// `root/rel` if `rel` stays inside `root` (see the module doc); otherwise an error naming `rel`.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "path '{}' {why}: refusing to touch it",
            rel.display()
        )))
    };
    let text = rel.as_os_str().as_encoded_bytes();
    if text.is_empty() {
        return bad("is empty");
    }
    if text.len() > MAX_REL_LEN {
        return bad("is too long");
    }
    if text.contains(&0) {
        return bad("holds a NUL byte");
    }
    // Path::components() folds "a/./b" and "a//b" silently: check the raw names too.
    for name in text.split(|b| *b == b'/') {
        match name {
            b"" if text.first() == Some(&b'/') => return bad("is absolute"),
            b"" => return bad("holds an empty name"),
            b"." => return bad("holds '.'"),
            b".." => return bad("climbs out with '..'"),
            _ => {}
        }
    }
    let mut out = root.to_path_buf();
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(name) => {
                out.push(name);
                depth += 1;
                // Every existing component must be a real file or folder, not a link.
                match std::fs::symlink_metadata(&out) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return bad("goes through a symbolic link");
                    }
                    _ => {}
                }
            }
            Component::ParentDir => return bad("climbs out with '..'"),
            Component::RootDir | Component::Prefix(_) => return bad("is absolute"),
            Component::CurDir => return bad("holds '.'"),
        }
    }
    if depth == 0 {
        return bad("names no file");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("videos")).unwrap();
        assert_eq!(
            resolve(root, Path::new("videos/a.mp4")).unwrap(),
            root.join("videos/a.mp4")
        );
        for bad in [
            "../outside.txt",
            "videos/../../x",
            "/etc/passwd",
            "",
            "./meta/info.json",
            "videos/./a",
            "videos//a",
            "videos/",
        ] {
            assert!(resolve(root, Path::new(bad)).is_err(), "{bad} accepted");
        }
        std::os::unix::fs::symlink("/tmp", root.join("escape")).unwrap();
        let e = resolve(root, Path::new("escape/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        std::os::unix::fs::symlink("/etc/hostname", root.join("videos/link.mp4")).unwrap();
        assert!(resolve(root, Path::new("videos/link.mp4")).is_err());
    }
}
