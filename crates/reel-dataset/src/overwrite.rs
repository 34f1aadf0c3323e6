//! `--overwrite`: deleting a dataset, and only a dataset.
//!
//! A mistyped `--root` must never wipe a home directory or a web app that happens to hold a
//! `meta/info.json`. [`check_is_dataset`] accepts a directory only when its `meta/info.json` is
//! a LeRobot info (a `codebase_version` string, an `fps` number, a `features` object) and every
//! top-level entry is one a LeRobot dataset has (`meta`, `data`, `videos`, `images`, reel's
//! `.reel`, the Hub's `README.md`/`.gitattributes`/`.cache`, LeRobot's `tmp*` encode folders).
//! [`remove_dataset`] deletes only after that check; callers run it after every option,
//! camera and encoder has been validated (see `DatasetWriter::open`).

use crate::paths;
use reel_core::{Error, Result};
use std::fs;
use std::path::Path;

/// Top-level names a LeRobot v3 dataset directory may hold.
const DATASET_ENTRIES: [&str; 10] = [
    "meta",
    "data",
    "videos",
    "images",
    ".reel",
    "README.md",
    ".gitattributes",
    ".cache",
    ".huggingface",
    ".reel-write-test",
];

/// Largest info.json read for the check (a real one is a few KB).
const MAX_INFO_BYTES: u64 = 16 << 20;

/// Ok when `root` is a LeRobot dataset directory that `--overwrite` may delete; otherwise an
/// error saying why not.
pub fn check_is_dataset(root: &Path) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::invalid(format!(
            "--overwrite: {} is not a LeRobot dataset ({why}); refusing to delete it",
            root.display()
        )))
    };
    let meta = fs::symlink_metadata(root).map_err(|e| Error::io("inspect", root, e))?;
    if !meta.is_dir() {
        return refuse("not a directory".into());
    }
    let info = paths::info_file(root);
    let len = match fs::metadata(&info) {
        Ok(m) => m.len(),
        Err(_) => return refuse("no meta/info.json".into()),
    };
    if len > MAX_INFO_BYTES {
        return refuse(format!("meta/info.json is {len} bytes"));
    }
    let text = fs::read_to_string(&info).map_err(|e| Error::io("read", &info, e))?;
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return refuse(format!("meta/info.json is not JSON: {e}")),
    };
    let version = v.get("codebase_version").and_then(|x| x.as_str());
    if !version.is_some_and(|s| s.starts_with('v')) {
        return refuse("meta/info.json has no codebase_version".into());
    }
    if !v.get("fps").is_some_and(|x| x.is_number()) {
        return refuse("meta/info.json has no fps".into());
    }
    if !v.get("features").is_some_and(|x| x.is_object()) {
        return refuse("meta/info.json has no features".into());
    }
    let mut foreign = Vec::new();
    for e in fs::read_dir(root).map_err(|e| Error::io("list", root, e))? {
        let e = e.map_err(|e| Error::io("list", root, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !DATASET_ENTRIES.contains(&name.as_str()) && !name.starts_with("tmp") {
            foreign.push(name);
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        return refuse(format!(
            "it also holds {}, which no dataset has",
            foreign.join(", ")
        ));
    }
    Ok(())
}

/// Deletes the dataset at `root` after [`check_is_dataset`]; a root that does not exist, or an
/// empty directory, is left as it is. With `keep_lock` (the caller holds the dataset's lock),
/// everything goes but `.reel/lock`, so no other writer can slip in between.
pub fn remove_dataset(root: &Path, keep_lock: bool) -> Result<()> {
    match fs::read_dir(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", root, e)),
        Ok(mut rd) => {
            if rd.next().is_none() {
                return Ok(());
            }
        }
    }
    check_is_dataset(root)?;
    tracing::info!("--overwrite: deleting the dataset at {}", root.display());
    let what = "delete the dataset (--overwrite)";
    if !keep_lock {
        return fs::remove_dir_all(root).map_err(|e| Error::io(what, root, e));
    }
    let reel = paths::reel_dir(root);
    for dir in [root, reel.as_path()] {
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for e in rd {
            let e = e.map_err(|e| Error::io("list", dir, e))?;
            let p = e.path();
            if p == reel || p == crate::lock::lock_path(root) {
                continue;
            }
            let ft = e.file_type().map_err(|e| Error::io("inspect", &p, e))?;
            if ft.is_dir() {
                fs::remove_dir_all(&p).map_err(|e| Error::io(what, &p, e))?;
            } else {
                fs::remove_file(&p).map_err(|e| Error::io(what, &p, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(root: &Path) {
        fs::create_dir_all(root.join("meta")).unwrap();
        fs::create_dir_all(root.join("data/chunk-000")).unwrap();
        fs::write(
            root.join("meta/info.json"),
            r#"{"codebase_version": "v3.0", "fps": 30, "features": {}}"#,
        )
        .unwrap();
    }

    #[test]
    fn deletes_a_dataset_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let ds = d.path().join("ds");
        dataset(&ds);
        fs::write(ds.join("README.md"), "card").unwrap();
        fs::create_dir_all(ds.join("tmpabc123")).unwrap();
        remove_dataset(&ds, false).unwrap();
        assert!(!ds.exists());
        remove_dataset(&ds, false).unwrap(); // absent: nothing to do
    }

    #[test]
    fn refuses_folders_that_are_not_datasets() {
        let d = tempfile::tempdir().unwrap();
        // A web app with a meta/info.json of its own.
        let app = d.path().join("app");
        fs::create_dir_all(app.join("meta")).unwrap();
        fs::write(app.join("meta/info.json"), r#"{"name": "my web app"}"#).unwrap();
        fs::write(app.join("precious.txt"), "keep me").unwrap();
        let e = remove_dataset(&app, false).unwrap_err().to_string();
        assert!(e.contains("codebase_version"), "{e}");
        assert!(app.join("precious.txt").exists());
        // A real dataset with a stranger beside it.
        let ds = d.path().join("ds");
        dataset(&ds);
        fs::write(ds.join("precious.txt"), "keep me").unwrap();
        let e = remove_dataset(&ds, false).unwrap_err().to_string();
        assert!(e.contains("precious.txt"), "{e}");
        assert!(ds.join("meta/info.json").exists());
        // No info.json, broken JSON, a file instead of a folder.
        let other = d.path().join("other");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("x"), "x").unwrap();
        assert!(remove_dataset(&other, false)
            .unwrap_err()
            .to_string()
            .contains("no meta/info.json"));
        fs::create_dir_all(other.join("meta")).unwrap();
        fs::write(other.join("meta/info.json"), "{not json").unwrap();
        assert!(remove_dataset(&other, false)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let file = d.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(remove_dataset(&file, false).is_err());
        assert!(file.exists());
        // Under the dataset's lock, everything but the lock file goes.
        let locked = d.path().join("locked");
        dataset(&locked);
        let lock =
            crate::lock::DatasetLock::acquire(&locked, crate::lock::LockMode::Exclusive, "test")
                .unwrap();
        fs::create_dir_all(locked.join(".reel/segments")).unwrap();
        remove_dataset(&locked, true).unwrap();
        let left: Vec<_> = fs::read_dir(&locked)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, [".reel"]);
        assert!(crate::lock::lock_path(&locked).exists());
        assert!(!locked.join(".reel/segments").exists());
        drop(lock);
        // An empty folder is fine (nothing to delete).
        let empty = d.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        remove_dataset(&empty, false).unwrap();
        assert!(empty.exists());
    }
}
