//! One writer per dataset.
//!
//! Every process that changes a dataset — `reel record`, `reel check --repair`, `reel reencode`
//! (and its `--commit`), the Python `Writer`/`ReelDataset` — holds a [`DatasetLock`] on
//! `<root>/.reel/lock` for as long as it may write. The lock is the kernel's `flock(2)` on
//! that file: the kernel releases it when the holder dies, so a `kill -9` or a power cut never
//! leaves a stale lock, and the next writer gets it at once. A second writer is refused at
//! once with [`Error::Locked`] naming the holder (command, PID, host, since when), which each
//! holder writes into its lock file.
//!
//! Two modes: [`LockMode::Exclusive`] for a writer that owns the whole dataset, and
//! [`LockMode::Shard`] for the shards of `reel reencode --shard i/N`: each shard holds the
//! dataset lock *shared* (several shards at once, no exclusive writer) plus its own shard lock
//! `.reel/reencode/shard-i-of-N.lock` exclusively (the same shard twice is refused).
//!
//! Because every writer holds the lock, scratch files under `.reel/` can never belong to a
//! live writer when an exclusive holder finds them: recovery (journal rollback, leftover
//! segments and conversions) runs only under the exclusive lock.
//!
//! Read-only commands (`reel check` without `--repair`, `reel report`) take no lock and change
//! nothing; [`holder`] tells them whether someone is writing. What no lock can prevent: a tool
//! that does not take it (LeRobot itself, a copy, an editor) writing the same directory.

use crate::paths;
use reel_core::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// The only writer of the dataset.
    Exclusive,
    /// Shard `index` of `count` of a sharded re-encode (many shards at once, no exclusive writer).
    Shard { index: usize, count: usize },
}

/// A held dataset lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DatasetLock {
    path: PathBuf,
    file: Option<File>,
    /// The shard's own lock (shard mode only).
    shard: Option<(PathBuf, File)>,
    mode: LockMode,
}

/// Where the dataset lock of `root` lives.
pub fn lock_path(root: &Path) -> PathBuf {
    paths::reel_dir(root).join("lock")
}

/// Where shard `i` of `n`'s own lock lives.
pub fn shard_lock_path(root: &Path, i: usize, n: usize) -> PathBuf {
    paths::reel_dir(root)
        .join("reencode")
        .join(format!("shard-{i}-of-{n}.lock"))
}

/// What a holder writes into its lock file: "COMMAND (pid P on HOST, since TIME)".
fn describe_self(what: &str) -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into());
    format!(
        "{what} (pid {} on {host}, since {})",
        std::process::id(),
        utc_now()
    )
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// flock(2) without waiting. Ok(false) when another holder has it.
fn try_flock(f: &File, exclusive: bool) -> std::io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io("create lock folder", d, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("open dataset lock", path, e))
}

/// Locks `path` (exclusive or shared), retrying when the file was unlinked between our open
/// and our lock (a holder releasing it), so two holders can never lock different inodes.
fn acquire_file(path: &Path, exclusive: bool) -> Result<Option<File>> {
    for _ in 0..20 {
        let f = open_lock_file(path)?;
        if !try_flock(&f, exclusive).map_err(|e| Error::io("lock", path, e))? {
            return Ok(None);
        }
        let same = match (f.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            return Ok(Some(f));
        }
    }
    Err(Error::invalid(format!(
        "{}: the lock file keeps being replaced; is another program deleting .reel?",
        path.display()
    )))
}

fn read_holder(path: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_string(&mut s)
        .ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn write_holder(f: &mut File, what: &str) {
    // Best effort: the lock itself is the flock; this text only names the holder.
    let _ = f.set_len(0);
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.write_all(describe_self(what).as_bytes());
}

/// Who holds the dataset at `root` right now, if anyone (for read-only commands). It reads
/// the kernel's lock table (`/proc/locks`) instead of probing with a lock of its own, so it
/// can never make a writer's attempt fail.
pub fn holder(root: &Path) -> Option<String> {
    let meta = fs::metadata(lock_path(root)).ok()?;
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let needle = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let table = fs::read_to_string("/proc/locks").ok()?;
    let held = table
        .lines()
        .any(|l| l.contains("FLOCK") && l.split_whitespace().any(|w| w == needle));
    held.then(|| describe_holders(root))
}

/// Names every current holder: the exclusive holder's text, or the shards that hold theirs.
fn describe_holders(root: &Path) -> String {
    let mut shards = Vec::new();
    if let Ok(rd) = fs::read_dir(paths::reel_dir(root).join("reencode")) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "lock") {
                if let Ok(f) = File::open(&p) {
                    if let Ok(false) = try_flock(&f, true) {
                        shards.push(
                            read_holder(&p)
                                .unwrap_or_else(|| format!("a reencode shard ({})", p.display())),
                        );
                    }
                }
            }
        }
    }
    if !shards.is_empty() {
        shards.sort();
        return shards.join("; ");
    }
    read_holder(&lock_path(root)).unwrap_or_else(|| "another process (no name recorded)".into())
}

impl DatasetLock {
    /// Takes the lock of the dataset at `root` for `what` (e.g. "reel record"), or fails at
    /// once with [`Error::Locked`] naming the holder. `root` must exist.
    pub fn acquire(root: &Path, mode: LockMode, what: &str) -> Result<DatasetLock> {
        // reel's scratch folder must be the dataset's own: a link would send the lock, the
        // journal and every scratch file (and their clean-up) somewhere else.
        let reel = paths::reel_dir(root);
        if fs::symlink_metadata(&reel).is_ok_and(|m| !m.is_dir()) {
            return Err(Error::invalid(format!(
                "{} is not a folder (a symbolic link or a file): refusing to write through it",
                reel.display()
            )));
        }
        let path = lock_path(root);
        let refused = |root: &Path| Error::Locked {
            path: root.to_path_buf(),
            holder: describe_holders(root),
        };
        match mode {
            LockMode::Exclusive => {
                let mut f = acquire_file(&path, true)?.ok_or_else(|| refused(root))?;
                write_holder(&mut f, what);
                Ok(DatasetLock {
                    path,
                    file: Some(f),
                    shard: None,
                    mode,
                })
            }
            LockMode::Shard { index, count } => {
                let f = acquire_file(&path, false)?.ok_or_else(|| refused(root))?;
                let sp = shard_lock_path(root, index, count);
                let Some(mut sf) = acquire_file(&sp, true)? else {
                    return Err(Error::Locked {
                        path: root.to_path_buf(),
                        holder: read_holder(&sp)
                            .unwrap_or_else(|| format!("shard {index}/{count} is running")),
                    });
                };
                write_holder(&mut sf, what);
                Ok(DatasetLock {
                    path,
                    file: Some(f),
                    shard: Some((sp, sf)),
                    mode,
                })
            }
        }
    }

    /// How this lock is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Releases the lock now (also done on drop). An exclusive holder removes its lock file
    /// (acquirers re-check the inode they locked, so this cannot let two writers in).
    pub fn release(&mut self) {
        if let Some((p, f)) = self.shard.take() {
            let _ = fs::remove_file(&p);
            drop(f);
        }
        if let Some(f) = self.file.take() {
            if self.mode == LockMode::Exclusive {
                let _ = fs::remove_file(&self.path);
                if let Some(dir) = self.path.parent() {
                    let _ = fs::remove_dir(dir); // only when nothing else is left in .reel
                }
            }
            drop(f);
        }
    }
}

impl Drop for DatasetLock {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named() {
        let d = tempfile::tempdir().unwrap();
        let mut a = DatasetLock::acquire(d.path(), LockMode::Exclusive, "reel record").unwrap();
        let e =
            DatasetLock::acquire(d.path(), LockMode::Exclusive, "reel check --repair").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Locked { .. }));
        assert!(text.contains("reel record"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains(" since 20"), "{text}");
        assert!(holder(d.path()).unwrap().contains("reel record"));
        // A shard needs the dataset shared: refused too.
        assert!(DatasetLock::acquire(
            d.path(),
            LockMode::Shard { index: 0, count: 2 },
            "reel reencode --shard 0/2"
        )
        .is_err());
        a.release();
        assert!(holder(d.path()).is_none());
        assert!(
            !lock_path(d.path()).exists(),
            "an exclusive holder removes its file"
        );
        let _b = DatasetLock::acquire(d.path(), LockMode::Exclusive, "reel record").unwrap();
    }

    #[test]
    fn shards_share_the_dataset_but_not_their_part() {
        let d = tempfile::tempdir().unwrap();
        let s0 = DatasetLock::acquire(d.path(), LockMode::Shard { index: 0, count: 2 }, "shard 0")
            .unwrap();
        let s1 = DatasetLock::acquire(d.path(), LockMode::Shard { index: 1, count: 2 }, "shard 1")
            .unwrap();
        let e = DatasetLock::acquire(d.path(), LockMode::Shard { index: 0, count: 2 }, "again")
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard 0"), "{e}");
        let e = DatasetLock::acquire(d.path(), LockMode::Exclusive, "reel record")
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard 0") && e.contains("shard 1"), "{e}");
        drop((s0, s1));
        DatasetLock::acquire(d.path(), LockMode::Exclusive, "reel reencode --commit").unwrap();
    }

    #[test]
    fn utc_dates_are_civil() {
        let s = utc_now();
        assert_eq!(s.len(), "2026-11-28 21:40:03 UTC".len(), "{s}");
        assert!(s.starts_with("20"));
    }
}
