//! An undo journal: makes a multi-file update all-or-nothing across crashes.
//!
//! Saving an episode touches several files: it appends to a data parquet file and to one
//! MP4 per camera (each append truncates the old index at the end of the file and writes
//! data plus a new index), adds a row to the episodes parquet, and replaces `info.json`,
//! `stats.json` and perhaps `tasks.parquet`. Before each modification the writer records
//! here what it needs to undo it:
//!
//! * [`Journal::record_tail`]: the bytes after an offset that is about to be truncated
//!   (an MP4 `moov` box, a Parquet footer), with the file's length;
//! * [`Journal::record_create`]: a file that is about to be created;
//! * [`Journal::record_replace`]: the whole old content of a small file about to be replaced;
//! * [`Journal::record_rename`]: a file about to be moved to another name (a whole-file swap).
//!
//! Each record reaches the disk before the change it guards. [`Journal::commit`] syncs
//! the touched files and deletes the journal: that unlink is the commit point. If the
//! process dies before it, [`recover`] replays the records backwards and restores every
//! file byte for byte; replaying twice is harmless, so a crash during recovery is too.
//! A torn last record (crash while writing it) is ignored: its change never started.

use crate::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"REELJNL1";
const KIND_TAIL: u8 = 1;
const KIND_CREATE: u8 = 2;
const KIND_REPLACE: u8 = 3;
const KIND_REPLACE_ABSENT: u8 = 4;
const KIND_RENAME: u8 = 5;

/// An open transaction. Dropping it without [`commit`](Journal::commit) leaves the journal
/// on disk, so the next [`recover`] rolls the changes back.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    root: PathBuf,
    file: File,
    durable: bool,
    touched: Vec<PathBuf>,
}

#[derive(Debug)]
enum Record {
    Tail {
        rel: PathBuf,
        keep: u64,
        len: u64,
        tail: Vec<u8>,
    },
    Create {
        rel: PathBuf,
    },
    Replace {
        rel: PathBuf,
        old: Option<Vec<u8>>,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
}

fn fnv1a(data: &[u8], mut h: u64) -> u64 {
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Syncs a file's data to disk.
pub fn sync_path(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io("open for sync", path, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))
}

/// Syncs a directory entry list (after create/rename/unlink inside it).
pub fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(f) => f.sync_all().map_err(|e| Error::io("fsync dir", dir, e)),
        Err(e) => Err(Error::io("open dir for sync", dir, e)),
    }
}

impl Journal {
    /// Starts a transaction whose journal file is `path`; paths are recorded relative to
    /// `root`. Fails if a journal already exists: call [`recover`] first.
    /// With `durable`, every record and the final commit are fsynced (survives power loss);
    /// without it, the journal still survives `kill -9` (the page cache outlives the process).
    pub fn begin(path: &Path, root: &Path, durable: bool) -> Result<Journal> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("create journal dir", dir, e))?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                Error::io(
                    "create journal (an unrecovered transaction may exist)",
                    path,
                    e,
                )
            })?;
        file.write_all(MAGIC)
            .map_err(|e| Error::io("write journal", path, e))?;
        let j = Journal {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            file,
            durable,
            touched: Vec::new(),
        };
        j.sync()?;
        Ok(j)
    }

    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }

    fn sync(&self) -> Result<()> {
        if self.durable {
            self.file
                .sync_data()
                .map_err(|e| Error::io("fsync journal", &self.path, e))?;
        }
        Ok(())
    }

    fn append(&mut self, kind: u8, rel: &Path, a: u64, data: &[u8]) -> Result<()> {
        let p = rel.to_string_lossy();
        let mut rec = Vec::with_capacity(32 + p.len() + data.len());
        rec.push(kind);
        rec.extend_from_slice(&(p.len() as u32).to_le_bytes());
        rec.extend_from_slice(p.as_bytes());
        rec.extend_from_slice(&a.to_le_bytes());
        rec.extend_from_slice(&(data.len() as u64).to_le_bytes());
        rec.extend_from_slice(data);
        let sum = fnv1a(&rec, 0xcbf29ce484222325);
        rec.extend_from_slice(&sum.to_le_bytes());
        self.file
            .write_all(&rec)
            .map_err(|e| Error::io("write journal", &self.path, e))?;
        self.sync()
    }

    /// Records that `path` (currently `len` bytes) is about to be truncated at `keep`;
    /// the bytes `[keep, len)` are saved so that they can be put back.
    pub fn record_tail(&mut self, path: &Path, keep: u64) -> Result<()> {
        let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        if keep > len {
            return Err(Error::invalid(format!(
                "journal: keep offset {keep} beyond end {len} of {}",
                path.display()
            )));
        }
        let mut tail = Vec::with_capacity((len - keep) as usize);
        f.seek(SeekFrom::Start(keep))
            .map_err(|e| Error::io("seek", path, e))?;
        f.read_to_end(&mut tail)
            .map_err(|e| Error::io("read", path, e))?;
        let mut data = len.to_le_bytes().to_vec();
        data.extend_from_slice(&tail);
        let rel = self.rel(path);
        self.append(KIND_TAIL, &rel, keep, &data)?;
        self.touched.push(path.to_path_buf());
        Ok(())
    }

    /// Records that `path` is about to be created (it must not exist yet).
    pub fn record_create(&mut self, path: &Path) -> Result<()> {
        if path.exists() {
            return Err(Error::invalid(format!(
                "journal: {} already exists",
                path.display()
            )));
        }
        let rel = self.rel(path);
        self.append(KIND_CREATE, &rel, 0, &[])?;
        self.touched.push(path.to_path_buf());
        Ok(())
    }

    /// Records the whole current content of `path` (or its absence) before it is replaced.
    pub fn record_replace(&mut self, path: &Path) -> Result<()> {
        let rel = self.rel(path);
        match fs::read(path) {
            Ok(old) => self.append(KIND_REPLACE, &rel, 0, &old)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.append(KIND_REPLACE_ABSENT, &rel, 0, &[])?
            }
            Err(e) => return Err(Error::io("read", path, e)),
        }
        self.touched.push(path.to_path_buf());
        Ok(())
    }

    /// Records that `from` is about to be renamed to `to` (which must not exist yet). The undo
    /// renames `to` back to `from`; if the rename never happened, there is nothing to undo.
    pub fn record_rename(&mut self, from: &Path, to: &Path) -> Result<()> {
        if to.exists() {
            return Err(Error::invalid(format!(
                "journal: rename target {} already exists",
                to.display()
            )));
        }
        let rel_from = self.rel(from);
        let rel_to = self.rel(to);
        let to_bytes = rel_to.to_string_lossy().into_owned().into_bytes();
        self.append(KIND_RENAME, &rel_from, 0, &to_bytes)?;
        self.touched.push(from.to_path_buf());
        self.touched.push(to.to_path_buf());
        Ok(())
    }

    /// Makes the transaction permanent: syncs every touched file (when durable) and deletes
    /// the journal.
    pub fn commit(self) -> Result<()> {
        if self.durable {
            let mut dirs: Vec<PathBuf> = Vec::new();
            for p in &self.touched {
                if p.exists() {
                    sync_path(p)?;
                }
                if let Some(d) = p.parent() {
                    if !dirs.iter().any(|x| x == d) {
                        dirs.push(d.to_path_buf());
                    }
                }
            }
            for d in dirs {
                sync_dir(&d)?;
            }
        }
        fs::remove_file(&self.path).map_err(|e| Error::io("remove journal", &self.path, e))?;
        if self.durable {
            if let Some(d) = self.path.parent() {
                sync_dir(d)?;
            }
        }
        Ok(())
    }

    /// Undoes this transaction now (for an error in the middle of a save).
    pub fn rollback(self) -> Result<usize> {
        let path = self.path.clone();
        let root = self.root.clone();
        drop(self);
        recover(&path, &root)
    }
}

fn parse(buf: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    if buf.len() < 8 || &buf[..8] != MAGIC {
        return out;
    }
    let mut i = 8;
    loop {
        let start = i;
        let need = |i: usize, n: usize| i + n <= buf.len();
        if !need(i, 5) {
            break;
        }
        let kind = buf[i];
        let plen = u32::from_le_bytes(buf[i + 1..i + 5].try_into().unwrap_or([0; 4])) as usize;
        i += 5;
        if !need(i, plen + 16) {
            break;
        }
        let rel = PathBuf::from(String::from_utf8_lossy(&buf[i..i + plen]).into_owned());
        i += plen;
        let a = u64::from_le_bytes(buf[i..i + 8].try_into().unwrap_or([0; 8]));
        let dlen = u64::from_le_bytes(buf[i + 8..i + 16].try_into().unwrap_or([0; 8])) as usize;
        i += 16;
        if !need(i, dlen + 8) {
            break;
        }
        let data = &buf[i..i + dlen];
        i += dlen;
        let sum = u64::from_le_bytes(buf[i..i + 8].try_into().unwrap_or([0; 8]));
        if fnv1a(&buf[start..i], 0xcbf29ce484222325) != sum {
            break;
        }
        i += 8;
        let rec = match kind {
            KIND_TAIL if data.len() >= 8 => Record::Tail {
                rel,
                keep: a,
                len: u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8])),
                tail: data[8..].to_vec(),
            },
            KIND_CREATE => Record::Create { rel },
            KIND_REPLACE => Record::Replace {
                rel,
                old: Some(data.to_vec()),
            },
            KIND_REPLACE_ABSENT => Record::Replace { rel, old: None },
            KIND_RENAME => Record::Rename {
                from: rel,
                to: PathBuf::from(String::from_utf8_lossy(data).into_owned()),
            },
            _ => break,
        };
        out.push(rec);
    }
    out
}

/// True if an unfinished transaction is waiting at `path`.
pub fn pending(path: &Path) -> bool {
    path.exists()
}

/// Rolls back the unfinished transaction at `path` (if any), restoring every file it
/// touched, then deletes the journal. Returns the number of records undone.
pub fn recover(path: &Path, root: &Path) -> Result<usize> {
    let buf = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("read journal", path, e)),
    };
    let recs = parse(&buf);
    for rec in recs.iter().rev() {
        match rec {
            Record::Tail {
                rel,
                keep,
                len,
                tail,
            } => {
                let p = root.join(rel);
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| Error::io("open for rollback", &p, e))?;
                f.set_len(*keep).map_err(|e| Error::io("truncate", &p, e))?;
                f.seek(SeekFrom::Start(*keep))
                    .map_err(|e| Error::io("seek", &p, e))?;
                f.write_all(tail)
                    .map_err(|e| Error::io("restore tail", &p, e))?;
                f.set_len(*len).map_err(|e| Error::io("truncate", &p, e))?;
                f.sync_all().map_err(|e| Error::io("fsync", &p, e))?;
            }
            Record::Create { rel } => {
                let p = root.join(rel);
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove for rollback", &p, e)),
                }
            }
            Record::Replace { rel, old } => {
                let p = root.join(rel);
                match old {
                    Some(bytes) => write_atomic(&p, bytes, true)?,
                    None => match fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("remove for rollback", &p, e)),
                    },
                }
            }
            Record::Rename { from, to } => {
                let (f, t) = (root.join(from), root.join(to));
                // Absent `to`: the rename never happened (or was undone by an earlier recovery).
                if t.exists() {
                    fs::rename(&t, &f).map_err(|e| Error::io("rename back for rollback", &t, e))?;
                }
            }
        }
    }
    fs::remove_file(path).map_err(|e| Error::io("remove journal", path, e))?;
    Ok(recs.len())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers see either
/// the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.reel-tmp"));
    {
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        if durable {
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        }
    }
    fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_tail_create_and_replace() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let a = root.join("a.bin");
        fs::write(&a, b"HEADER-DATA-INDEX1").unwrap();
        let b = root.join("b.json");
        fs::write(&b, b"{old}").unwrap();
        let c = root.join("sub/c.bin");
        let jp = root.join(".reel/journal");
        let mut j = Journal::begin(&jp, root, true).unwrap();
        j.record_tail(&a, 12).unwrap();
        let f = OpenOptions::new().write(true).open(&a).unwrap();
        f.set_len(12).unwrap();
        drop(f);
        let mut f = OpenOptions::new().append(true).open(&a).unwrap();
        f.write_all(b"MORE-DATA-INDEX2-LONGER").unwrap();
        j.record_replace(&b).unwrap();
        write_atomic(&b, b"{new}", false).unwrap();
        fs::create_dir_all(root.join("sub")).unwrap();
        j.record_create(&c).unwrap();
        fs::write(&c, b"x").unwrap();
        drop(j); // crash
        assert!(pending(&jp));
        assert_eq!(recover(&jp, root).unwrap(), 3);
        assert_eq!(fs::read(&a).unwrap(), b"HEADER-DATA-INDEX1");
        assert_eq!(fs::read(&b).unwrap(), b"{old}");
        assert!(!c.exists());
        assert!(!jp.exists());
        assert_eq!(recover(&jp, root).unwrap(), 0);
    }

    #[test]
    fn rollback_undoes_a_swap_by_renames() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let live = root.join("videos/file-000.mp4");
        let fresh = root.join(".reel/new/file-000.mp4");
        let stash = root.join(".reel/old/file-000.mp4");
        for (p, b) in [(&live, &b"OLD"[..]), (&fresh, &b"NEW"[..])] {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b).unwrap();
        }
        fs::create_dir_all(stash.parent().unwrap()).unwrap();
        let jp = root.join(".reel/journal");
        let mut j = Journal::begin(&jp, root, true).unwrap();
        j.record_rename(&live, &stash).unwrap();
        fs::rename(&live, &stash).unwrap();
        j.record_create(&live).unwrap();
        fs::rename(&fresh, &live).unwrap();
        assert!(
            j.record_rename(&live, &stash).is_err(),
            "an existing target is refused"
        );
        drop(j); // crash before the commit
        assert_eq!(recover(&jp, root).unwrap(), 2);
        assert_eq!(
            fs::read(&live).unwrap(),
            b"OLD",
            "the old file is back under its name"
        );
        assert!(!stash.exists(), "and no longer under the stash name");
        // A rename recorded but never done is a no-op on recovery.
        let mut j = Journal::begin(&jp, root, false).unwrap();
        j.record_rename(&live, &stash).unwrap();
        drop(j);
        assert_eq!(recover(&jp, root).unwrap(), 1);
        assert_eq!(fs::read(&live).unwrap(), b"OLD");
        // Committed: the swap stays.
        let mut j = Journal::begin(&jp, root, false).unwrap();
        j.record_rename(&live, &stash).unwrap();
        fs::rename(&live, &stash).unwrap();
        j.commit().unwrap();
        assert!(stash.exists() && !live.exists());
    }

    #[test]
    fn commit_keeps_changes_and_torn_record_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let a = root.join("a.bin");
        fs::write(&a, b"0123456789").unwrap();
        let jp = root.join("j");
        let mut j = Journal::begin(&jp, root, false).unwrap();
        j.record_tail(&a, 5).unwrap();
        fs::write(&a, b"01234abc").unwrap();
        j.commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"01234abc");
        // A journal whose last record is torn: the complete first record is undone,
        // the torn one is ignored.
        let mut j = Journal::begin(&jp, root, false).unwrap();
        j.record_tail(&a, 5).unwrap();
        fs::write(&a, b"01234XYZW").unwrap();
        drop(j);
        let mut bytes = fs::read(&jp).unwrap();
        bytes.extend_from_slice(&[KIND_CREATE, 9, 0, 0]);
        fs::write(&jp, bytes).unwrap();
        assert_eq!(recover(&jp, root).unwrap(), 1);
        assert_eq!(fs::read(&a).unwrap(), b"01234abc");
    }
}
