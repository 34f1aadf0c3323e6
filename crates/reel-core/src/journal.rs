//! An undo journal: makes a multi-file update all-or-nothing across crashes.
//!
//! Saving an episode touches several files: it appends to a data parquet file and to one
//! MP4 per camera (each append truncates the old index at the end of the file and writes
//! data plus a new index), adds a row to the episodes parquet, and replaces `info.json`,
//! `stats.json` and perhaps `tasks.parquet`. Before each modification the writer records
//! here what it needs to undo it:
//!
//! * [`Journal::record_tail`]: the bytes after an offset that is about to be truncated
//!   (an MP4 `moov` box, a Parquet footer), with the file's length and a fingerprint of the
//!   bytes just before the offset (which the change never touches);
//! * [`Journal::record_create`]: a file that is about to be created;
//! * [`Journal::record_replace`]: the whole old content of a small file about to be replaced;
//! * [`Journal::record_rename`]: a file about to be moved to another name (a whole-file swap).
//!
//! Each record reaches the disk before the change it guards. [`Journal::commit`] syncs
//! the touched files and deletes the journal: that unlink is the commit point. If the
//! process dies before it, [`recover`] replays the records backwards and restores every
//! file byte for byte; replaying twice is harmless, so a crash during recovery is too.
//! A torn last record (crash while writing it) is ignored: its change never started.
//!
//! A journal is also a file someone else may have written (a dataset downloaded with one).
//! [`recover`] therefore checks every record before undoing anything: each path must stay
//! inside the dataset ([`crate::safepath`]), every length and offset must add up without
//! overflow and fit the journal, and a tail record must match the file it would restore (its
//! length and the fingerprint of the bytes before the offset); a path must name a regular file
//! (or nothing) with only folders on the way, and the undo steps taken together must be able
//! to run to the end (no record's path inside another's, no tail restored on a file an earlier
//! step removes). A journal that fails any check is reported and left alone: nothing is undone.

use crate::{faultpoint, safepath, Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC_V1: &[u8; 8] = b"REELJNL1";
const MAGIC: &[u8; 8] = b"REELJNL2";
const KIND_TAIL: u8 = 1;
const KIND_CREATE: u8 = 2;
const KIND_REPLACE: u8 = 3;
const KIND_REPLACE_ABSENT: u8 = 4;
const KIND_RENAME: u8 = 5;

/// Bytes before a tail's offset whose fingerprint a tail record carries.
const FINGERPRINT_WINDOW: u64 = 4096;
/// Largest journal [`recover`] reads (a real one holds a few index tails and small files).
pub const MAX_JOURNAL_BYTES: u64 = 256 << 20;

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

#[derive(Debug, PartialEq)]
enum Record {
    Tail {
        rel: PathBuf,
        keep: u64,
        len: u64,
        /// Fingerprint of the file's bytes `[keep - window, keep)` (None in v1 journals).
        before: Option<u64>,
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

const FNV_OFFSET: u64 = 0xcbf29ce484222325;

/// Fingerprint of `file`'s bytes `[keep - window, keep)`.
fn fingerprint_before(file: &mut File, keep: u64) -> std::io::Result<u64> {
    let start = keep.saturating_sub(FINGERPRINT_WINDOW);
    let mut buf = vec![0u8; (keep - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    Ok(fnv1a(&buf, FNV_OFFSET))
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

    /// `path` relative to the root; a path outside it is refused (never journaled).
    fn rel(&self, path: &Path) -> Result<PathBuf> {
        match path.strip_prefix(&self.root) {
            Ok(r) if !r.as_os_str().is_empty() => Ok(r.to_path_buf()),
            _ => Err(Error::invalid(format!(
                "journal: {} is not inside {}",
                path.display(),
                self.root.display()
            ))),
        }
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
        let sum = fnv1a(&rec, FNV_OFFSET);
        rec.extend_from_slice(&sum.to_le_bytes());
        self.file
            .write_all(&rec)
            .map_err(|e| Error::io("write journal", &self.path, e))?;
        self.sync()?;
        faultpoint::hit("journal.record");
        Ok(())
    }

    /// Records that `path` (currently `len` bytes) is about to be truncated at `keep`;
    /// the bytes `[keep, len)` are saved so that they can be put back.
    pub fn record_tail(&mut self, path: &Path, keep: u64) -> Result<()> {
        let rel = self.rel(path)?;
        let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        if keep > len {
            return Err(Error::invalid(format!(
                "journal: keep offset {keep} beyond end {len} of {}",
                path.display()
            )));
        }
        let before = fingerprint_before(&mut f, keep).map_err(|e| Error::io("read", path, e))?;
        let mut data = Vec::with_capacity(16 + (len - keep) as usize);
        data.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(&before.to_le_bytes());
        f.seek(SeekFrom::Start(keep))
            .map_err(|e| Error::io("seek", path, e))?;
        f.read_to_end(&mut data)
            .map_err(|e| Error::io("read", path, e))?;
        if data.len() as u64 != 16 + (len - keep) {
            return Err(Error::invalid(format!(
                "journal: {} changed while its tail was being saved",
                path.display()
            )));
        }
        self.append(KIND_TAIL, &rel, keep, &data)?;
        self.touched.push(path.to_path_buf());
        Ok(())
    }

    /// Records that `path` is about to be created (it must not exist yet).
    pub fn record_create(&mut self, path: &Path) -> Result<()> {
        let rel = self.rel(path)?;
        if path.exists() {
            return Err(Error::invalid(format!(
                "journal: {} already exists",
                path.display()
            )));
        }
        self.append(KIND_CREATE, &rel, 0, &[])?;
        self.touched.push(path.to_path_buf());
        Ok(())
    }

    /// Records the whole current content of `path` (or its absence) before it is replaced.
    pub fn record_replace(&mut self, path: &Path) -> Result<()> {
        let rel = self.rel(path)?;
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
        let rel_from = self.rel(from)?;
        let rel_to = self.rel(to)?;
        if to.exists() {
            return Err(Error::invalid(format!(
                "journal: rename target {} already exists",
                to.display()
            )));
        }
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
        faultpoint::hit("journal.commit");
        fs::remove_file(&self.path).map_err(|e| Error::io("remove journal", &self.path, e))?;
        if self.durable {
            if let Some(d) = self.path.parent() {
                sync_dir(d)?;
            }
        }
        faultpoint::hit("journal.committed");
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

fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    Some(u64::from_le_bytes(buf.get(at..end)?.try_into().ok()?))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    Some(u32::from_le_bytes(buf.get(at..end)?.try_into().ok()?))
}

/// Why a journal cannot be replayed at all (torn records are not errors: see [`parse`]).
#[derive(Debug, PartialEq)]
enum ParseError {
    NotAJournal,
    /// A record whose lengths no writer produces (beyond any journal's size).
    Corrupt(String),
}

/// One step of [`parse`].
enum Step {
    Record(Record),
    /// The rest is a record cut short by a crash (or garbage after it): stop here.
    Torn,
}

/// Reads the records of a journal. Every length is checked against the bytes that hold it,
/// with checked arithmetic; the first record that is torn (or fails its checksum) ends the
/// list, as a crash while writing it would leave it.
fn parse(buf: &[u8]) -> std::result::Result<Vec<Record>, ParseError> {
    let v2 = match buf.get(..8) {
        Some(m) if m == MAGIC => true,
        Some(m) if m == MAGIC_V1 => false,
        _ => return Err(ParseError::NotAJournal),
    };
    let mut out = Vec::new();
    let mut i = 8usize;
    while let Step::Record(rec) = parse_record(buf, &mut i, v2)? {
        out.push(rec);
    }
    Ok(out)
}

fn parse_record(buf: &[u8], i: &mut usize, v2: bool) -> std::result::Result<Step, ParseError> {
    let start = *i;
    let Some(&kind) = buf.get(start) else {
        return Ok(Step::Torn);
    };
    let Some(plen) = start.checked_add(1).and_then(|a| read_u32(buf, a)) else {
        return Ok(Step::Torn);
    };
    if plen as usize > crate::safepath::MAX_REL_LEN {
        return Err(ParseError::Corrupt(format!(
            "a record at byte {start} has a {plen}-byte path"
        )));
    }
    let (p_at, p_end) = (start + 5, start + 5 + plen as usize);
    let (Some(path_bytes), Some(a), Some(dlen)) = (
        buf.get(p_at..p_end),
        read_u64(buf, p_end),
        read_u64(buf, p_end + 8),
    ) else {
        return Ok(Step::Torn);
    };
    if dlen > MAX_JOURNAL_BYTES {
        return Err(ParseError::Corrupt(format!(
            "a record at byte {start} claims {dlen} bytes of data"
        )));
    }
    let d_at = p_end + 16;
    let d_end = d_at + dlen as usize;
    let (Some(data), Some(sum)) = (buf.get(d_at..d_end), read_u64(buf, d_end)) else {
        return Ok(Step::Torn);
    };
    if fnv1a(&buf[start..d_end], FNV_OFFSET) != sum {
        // A crash can only tear the last record: a damaged one with records after it is not
        // a crash's doing, and replaying only those before it would undo half a transaction.
        if d_end + 8 < buf.len() {
            return Err(ParseError::Corrupt(format!(
                "the record at byte {start} is damaged (checksum) and more follow it"
            )));
        }
        return Ok(Step::Torn);
    }
    *i = d_end + 8;
    let rel = match std::str::from_utf8(path_bytes) {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            return Err(ParseError::Corrupt(format!(
                "a record at byte {start} has a path that is not UTF-8"
            )))
        }
    };
    let torn_data = || ParseError::Corrupt(format!("a record at byte {start} is malformed"));
    Ok(Step::Record(match kind {
        KIND_TAIL if v2 => Record::Tail {
            rel,
            keep: a,
            len: read_u64(data, 0).ok_or_else(torn_data)?,
            before: Some(read_u64(data, 8).ok_or_else(torn_data)?),
            tail: data.get(16..).ok_or_else(torn_data)?.to_vec(),
        },
        KIND_TAIL => Record::Tail {
            rel,
            keep: a,
            len: read_u64(data, 0).ok_or_else(torn_data)?,
            before: None,
            tail: data.get(8..).ok_or_else(torn_data)?.to_vec(),
        },
        KIND_CREATE => Record::Create { rel },
        KIND_REPLACE => Record::Replace {
            rel,
            old: Some(data.to_vec()),
        },
        KIND_REPLACE_ABSENT => Record::Replace { rel, old: None },
        KIND_RENAME => Record::Rename {
            from: rel,
            to: PathBuf::from(std::str::from_utf8(data).map_err(|_| torn_data())?),
        },
        other => {
            return Err(ParseError::Corrupt(format!(
                "a record at byte {start} has the unknown kind {other}"
            )))
        }
    }))
}

/// True if an unfinished transaction is waiting at `path`.
pub fn pending(path: &Path) -> bool {
    path.exists()
}

/// A record checked against the disk, ready to undo.
enum Undo<'a> {
    Tail {
        path: PathBuf,
        keep: u64,
        len: u64,
        tail: &'a [u8],
    },
    Remove(PathBuf),
    Restore(PathBuf, &'a [u8]),
    RenameBack {
        from: PathBuf,
        to: PathBuf,
    },
}

/// `rel` inside `root` ([`safepath::resolve`]), naming a regular file or nothing, with only
/// folders (or nothing) on the way, and not the journal being replayed: an undo step on
/// anything else would fail (or remove the journal) with the replay half done.
fn resolve(root: &Path, rel: &Path, journal: &Path) -> Result<PathBuf> {
    let p = safepath::resolve(root, rel)?;
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "path '{}' {why}: refusing to touch it",
            rel.display()
        )))
    };
    if p == journal {
        return bad("is the journal itself");
    }
    let names: Vec<_> = rel.components().collect();
    let mut at = root.to_path_buf();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        match fs::symlink_metadata(&at) {
            Ok(m) if i + 1 < names.len() && !m.is_dir() => return bad("goes through a file"),
            Ok(m) if i + 1 == names.len() && !m.is_file() => return bad("is not a regular file"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io("stat", &at, e)),
        }
    }
    Ok(p)
}

/// Checks that the undo steps, taken in replay order, can all be carried out: no path is a
/// folder of another record's path, and a tail is only restored on a file that is there when
/// its turn comes (an earlier step may remove or rename files). Run before any change.
fn check_replay(undo: &[Undo]) -> Result<()> {
    let paths: Vec<&Path> = undo
        .iter()
        .flat_map(|u| match u {
            Undo::Tail { path, .. } | Undo::Remove(path) | Undo::Restore(path, _) => {
                vec![path.as_path()]
            }
            Undo::RenameBack { from, to } => vec![from.as_path(), to.as_path()],
        })
        .collect();
    for a in &paths {
        if let Some(b) = paths.iter().find(|b| b.starts_with(a) && b != &a) {
            return Err(Error::invalid(format!(
                "records name both '{}' and '{}' inside it",
                a.display(),
                b.display()
            )));
        }
    }
    let mut is_file: std::collections::HashMap<&Path, bool> = std::collections::HashMap::new();
    for u in undo.iter().rev() {
        match u {
            Undo::Tail { path, .. } => {
                if !*is_file.entry(path).or_insert_with(|| path.is_file()) {
                    return Err(Error::invalid(format!(
                        "{}: a tail would be restored on a file that an undo step before it removes",
                        path.display()
                    )));
                }
            }
            Undo::Remove(p) => {
                is_file.insert(p, false);
            }
            Undo::Restore(p, _) => {
                is_file.insert(p, true);
            }
            Undo::RenameBack { from, to } => {
                if *is_file.entry(to).or_insert_with(|| to.is_file()) {
                    is_file.insert(from, true);
                    is_file.insert(to, false);
                }
            }
        }
    }
    Ok(())
}

/// Checks one record (see the module doc); an error says why it may not be replayed.
fn check_record<'a>(rec: &'a Record, root: &Path, journal: &Path) -> Result<Undo<'a>> {
    Ok(match rec {
        Record::Tail {
            rel,
            keep,
            len,
            before,
            tail,
        } => {
            let path = resolve(root, rel, journal)?;
            let expect = keep.checked_add(tail.len() as u64);
            if expect != Some(*len) {
                return Err(Error::invalid(format!(
                    "{}: the tail record says {len} bytes but holds {} after offset {keep}",
                    rel.display(),
                    tail.len()
                )));
            }
            let mut f = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            let now = f.metadata().map_err(|e| Error::io("stat", &path, e))?.len();
            if now < *keep {
                return Err(Error::invalid(format!(
                    "{}: is {now} bytes, shorter than the offset {keep} the record truncated at: the journal does not belong to this file",
                    rel.display()
                )));
            }
            match before {
                Some(fp) => {
                    let got = fingerprint_before(&mut f, *keep)
                        .map_err(|e| Error::io("read", &path, e))?;
                    if got != *fp {
                        return Err(Error::invalid(format!(
                            "{}: the bytes before offset {keep} are not those the record saw: the journal does not belong to this file",
                            rel.display()
                        )));
                    }
                }
                // A journal of the first format has no fingerprint: refuse what no append
                // could produce (truncating a file's header away).
                None if *keep < 8 => {
                    return Err(Error::invalid(format!(
                        "{}: a tail record at offset {keep} would cut the file's header",
                        rel.display()
                    )))
                }
                None => {}
            }
            Undo::Tail {
                path,
                keep: *keep,
                len: *len,
                tail,
            }
        }
        Record::Create { rel } => Undo::Remove(resolve(root, rel, journal)?),
        Record::Replace { rel, old } => {
            let path = resolve(root, rel, journal)?;
            match old {
                Some(bytes) => Undo::Restore(path, bytes),
                None => Undo::Remove(path),
            }
        }
        Record::Rename { from, to } => Undo::RenameBack {
            from: resolve(root, from, journal)?,
            to: resolve(root, to, journal)?,
        },
    })
}

fn remove_if_present(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove for rollback", p, e)),
    }
}

/// Rolls back the unfinished transaction at `path` (if any), restoring every file it
/// touched, then deletes the journal. Returns the number of records undone.
///
/// Every record is checked first (module doc); if one fails, nothing is undone, the journal
/// stays where it is, and the error says which record and why.
pub fn recover(path: &Path, root: &Path) -> Result<usize> {
    let size = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("read journal", path, e)),
    };
    let refuse = |why: String| {
        Error::corrupt(
            path,
            format!(
                "{why}; nothing was undone and the journal was left in place (if this dataset came from someone else, its journal is not trustworthy: remove {} and run `reel check` to see what state the files are in)",
                path.display()
            ),
        )
    };
    // A journal reached through a symbolic link (`.reel -> elsewhere`) is not this dataset's,
    // and removing it after the replay would remove a file outside the dataset.
    if let Ok(rel) = path.strip_prefix(root) {
        safepath::resolve(root, rel).map_err(|e| refuse(format!("the journal's {e}")))?;
    }
    if size > MAX_JOURNAL_BYTES {
        return Err(refuse(format!(
            "the undo journal is {size} bytes, more than the {MAX_JOURNAL_BYTES} a transaction writes"
        )));
    }
    let buf = fs::read(path).map_err(|e| Error::io("read journal", path, e))?;
    let recs = match parse(&buf) {
        Ok(r) => r,
        Err(ParseError::NotAJournal) if buf.len() < 8 && MAGIC.starts_with(&buf) => {
            // Torn while its magic was being written: no change had started.
            Vec::new()
        }
        Err(ParseError::NotAJournal) => {
            return Err(refuse("the file is not a reel undo journal".into()))
        }
        Err(ParseError::Corrupt(why)) => return Err(refuse(why)),
    };
    let mut undo = Vec::with_capacity(recs.len());
    for (n, rec) in recs.iter().enumerate() {
        undo.push(
            check_record(rec, root, path)
                .map_err(|e| refuse(format!("record {} cannot be replayed: {e}", n + 1)))?,
        );
    }
    check_replay(&undo).map_err(|e| refuse(format!("the records cannot be replayed: {e}")))?;
    for u in undo.iter().rev() {
        match u {
            Undo::Tail {
                path: p,
                keep,
                len,
                tail,
            } => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(|e| Error::io("open for rollback", p, e))?;
                f.set_len(*keep).map_err(|e| Error::io("truncate", p, e))?;
                f.seek(SeekFrom::Start(*keep))
                    .map_err(|e| Error::io("seek", p, e))?;
                f.write_all(tail)
                    .map_err(|e| Error::io("restore tail", p, e))?;
                f.set_len(*len).map_err(|e| Error::io("truncate", p, e))?;
                f.sync_all().map_err(|e| Error::io("fsync", p, e))?;
            }
            Undo::Remove(p) => remove_if_present(p)?,
            Undo::Restore(p, bytes) => write_atomic(p, bytes, true)?,
            Undo::RenameBack { from, to } => {
                // Absent `to`: the rename never happened (or was undone by an earlier recovery).
                if to.exists() {
                    if let Some(d) = from.parent() {
                        fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
                    }
                    fs::rename(to, from)
                        .map_err(|e| Error::io("rename back for rollback", to, e))?;
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

    /// A record as a journal writer would write it (checksum included).
    fn record(kind: u8, path: &str, a: u64, data: &[u8]) -> Vec<u8> {
        let mut rec = vec![kind];
        rec.extend_from_slice(&(path.len() as u32).to_le_bytes());
        rec.extend_from_slice(path.as_bytes());
        rec.extend_from_slice(&a.to_le_bytes());
        rec.extend_from_slice(&(data.len() as u64).to_le_bytes());
        rec.extend_from_slice(data);
        let sum = fnv1a(&rec, FNV_OFFSET);
        rec.extend_from_slice(&sum.to_le_bytes());
        rec
    }

    fn journal_of(magic: &[u8], recs: &[Vec<u8>]) -> Vec<u8> {
        let mut j = magic.to_vec();
        for r in recs {
            j.extend_from_slice(r);
        }
        j
    }

    #[test]
    fn hostile_journals_never_touch_files_outside_the_dataset() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ds");
        fs::create_dir_all(root.join("videos")).unwrap();
        fs::write(root.join("videos/a.mp4"), b"ftypmoov-data").unwrap();
        let canary = d.path().join("outside.txt");
        fs::write(&canary, b"precious").unwrap();
        let abs = canary.to_string_lossy().into_owned();
        std::os::unix::fs::symlink(d.path(), root.join("up")).unwrap();
        let mut tail_data = 8u64.to_le_bytes().to_vec();
        tail_data.extend_from_slice(&0u64.to_le_bytes());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (record(KIND_CREATE, "../outside.txt", 0, &[]), "'..'"),
            (record(KIND_CREATE, &abs, 0, &[]), "absolute"),
            (record(KIND_REPLACE, "../outside.txt", 0, b"pwned"), "'..'"),
            (
                record(KIND_TAIL, "up/outside.txt", 0, &tail_data),
                "symbolic link",
            ),
            (
                record(KIND_RENAME, "videos/a.mp4", 0, b"../moved.mp4"),
                "'..'",
            ),
            (
                record(KIND_RENAME, "../outside.txt", 0, b"videos/b.mp4"),
                "'..'",
            ),
        ];
        let jp = root.join(".reel/journal");
        fs::create_dir_all(jp.parent().unwrap()).unwrap();
        for (rec, why) in cases {
            // A harmless first record makes sure nothing at all is undone when a later one fails.
            let bytes = journal_of(MAGIC, &[record(KIND_CREATE, "videos/new.mp4", 0, &[]), rec]);
            fs::write(root.join("videos/new.mp4"), b"x").unwrap();
            fs::write(&jp, &bytes).unwrap();
            let e = recover(&jp, &root).unwrap_err().to_string();
            assert!(e.contains(why), "{e} should say {why}");
            assert!(e.contains("nothing was undone"), "{e}");
            assert_eq!(fs::read(&canary).unwrap(), b"precious");
            assert_eq!(
                fs::read(root.join("videos/a.mp4")).unwrap(),
                b"ftypmoov-data"
            );
            assert!(
                root.join("videos/new.mp4").exists(),
                "the first record was not undone"
            );
            assert_eq!(fs::read(&jp).unwrap(), bytes, "the journal is left alone");
        }
    }

    #[test]
    fn impossible_lengths_and_foreign_tails_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let f = root.join("data.parquet");
        fs::write(&f, b"PAR1-rows-rows-rows-footer-PAR1").unwrap();
        let jp = root.join("j");
        // A data length near 2^64 (wraps any unchecked addition).
        let mut rec = record(KIND_REPLACE, "data.parquet", 0, b"");
        let at = 1 + 4 + "data.parquet".len() + 8;
        rec[at..at + 8].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        fs::write(&jp, journal_of(MAGIC, &[rec])).unwrap();
        let e = recover(&jp, root).unwrap_err().to_string();
        assert!(e.contains("claims"), "{e}");
        assert!(jp.exists());
        // A well-formed tail record that would truncate the file to nothing (first format).
        let mut data = 0u64.to_le_bytes().to_vec();
        data.extend_from_slice(b"");
        fs::write(
            &jp,
            journal_of(MAGIC_V1, &[record(KIND_TAIL, "data.parquet", 0, &data)]),
        )
        .unwrap();
        let e = recover(&jp, root).unwrap_err().to_string();
        assert!(e.contains("header"), "{e}");
        // A tail record whose fingerprint does not match the file.
        let mut data = 10u64.to_le_bytes().to_vec();
        data.extend_from_slice(&12345u64.to_le_bytes());
        data.extend_from_slice(b"xx");
        fs::write(
            &jp,
            journal_of(MAGIC, &[record(KIND_TAIL, "data.parquet", 8, &data)]),
        )
        .unwrap();
        let e = recover(&jp, root).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
        // Its length does not add up either way.
        let mut data = 99u64.to_le_bytes().to_vec();
        data.extend_from_slice(&0u64.to_le_bytes());
        fs::write(
            &jp,
            journal_of(MAGIC, &[record(KIND_TAIL, "data.parquet", 8, &data)]),
        )
        .unwrap();
        assert!(recover(&jp, root)
            .unwrap_err()
            .to_string()
            .contains("holds"));
        assert_eq!(
            fs::read(&f).unwrap(),
            b"PAR1-rows-rows-rows-footer-PAR1",
            "no refused journal changed the file"
        );
        // Not a journal at all.
        fs::write(&jp, b"hello world, not a journal").unwrap();
        assert!(recover(&jp, root)
            .unwrap_err()
            .to_string()
            .contains("not a reel undo journal"));
        // A journal torn while its magic was written: nothing had started.
        fs::write(&jp, &MAGIC[..3]).unwrap();
        assert_eq!(recover(&jp, root).unwrap(), 0);
        assert!(!jp.exists());
    }

    #[test]
    fn paths_outside_the_root_are_never_journaled() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ds");
        fs::create_dir_all(&root).unwrap();
        let mut j = Journal::begin(&root.join("j"), &root, false).unwrap();
        assert!(j.record_create(&d.path().join("elsewhere.txt")).is_err());
        assert!(j.record_replace(&root).is_err());
    }
}
