//! Fuzzing the undo journal (issue 12): `reel_core::journal::recover` on mutated copies of
//! journals written by real transactions (a `reel record --resume` killed before its commit,
//! and a library transaction that appends to an MP4, a parquet file and the figures log,
//! replaces info.json, renames and creates files).
//!
//! Properties, for every input: recovery returns, never panics, stays within 10 × the
//! journal's size + 1 MiB of heap, and never changes anything outside the dataset (a canary
//! file beside it and a folder reachable through a symbolic link inside it). When it
//! refuses, every file of the dataset (the journal included) is byte-identical to before.
//! When it succeeds, the journal is gone, and
//! * if the records it could read are an unmodified prefix of the real ones (a torn journal),
//!   every file they name is back to its bytes before the transaction and every other file
//!   is as the crash left it;
//! * otherwise (records edited and re-checksummed), only files that its records name changed.

use crate::fuzz_common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reel_core::extra::ExtraValue;
use reel_core::journal::{recover, Journal};
use reel_dataset::episodes;
use reel_dataset::info::Info;
use reel_dataset::{figures, parquet_append};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const BIN: &str = "journal";
const MAGIC_V1: &[u8; 8] = b"REELJNL1";
const KIND_TAIL: u8 = 1;
const KIND_RENAME: u8 = 5;

// ---------------------------------------------------------------------------------------
// An independent reading of the journal format (the test's oracle)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    kind: u8,
    path: Vec<u8>,
    a: u64,
    data: Vec<u8>,
}

impl Rec {
    fn encode(&self, out: &mut Vec<u8>, checksum: bool) {
        let start = out.len();
        out.push(self.kind);
        out.extend_from_slice(&(self.path.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.path);
        out.extend_from_slice(&self.a.to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.data);
        let sum = if checksum { fnv(&out[start..]) } else { 0 };
        out.extend_from_slice(&sum.to_le_bytes());
    }

    /// The paths (relative) this record names.
    fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![PathBuf::from(
            String::from_utf8_lossy(&self.path).into_owned(),
        )];
        if self.kind == KIND_RENAME {
            v.push(PathBuf::from(
                String::from_utf8_lossy(&self.data).into_owned(),
            ));
        }
        v
    }
}

fn encode(magic: &[u8], recs: &[Rec]) -> Vec<u8> {
    let mut out = magic.to_vec();
    for r in recs {
        r.encode(&mut out, true);
    }
    out
}

/// The records a replay would read: the complete, checksummed prefix. Also each record's
/// byte offset (its length fields are the seed's mutation targets).
fn decode(buf: &[u8]) -> (Vec<Rec>, Vec<usize>) {
    let mut recs = Vec::new();
    let mut offs = Vec::new();
    let mut i = 8usize;
    if buf.len() < 8 {
        return (recs, offs);
    }
    while let Some(&kind) = buf.get(i) {
        let Some(pl) = buf.get(i + 1..i + 5) else {
            break;
        };
        let plen = u32::from_le_bytes(pl.try_into().unwrap()) as usize;
        let p_end = i + 5 + plen;
        let (Some(path), Some(a), Some(dl)) = (
            buf.get(i + 5..p_end),
            buf.get(p_end..p_end + 8),
            buf.get(p_end + 8..p_end + 16),
        ) else {
            break;
        };
        let dlen = u64::from_le_bytes(dl.try_into().unwrap());
        let Some(d_end) = usize::try_from(dlen)
            .ok()
            .and_then(|d| (p_end + 16).checked_add(d))
        else {
            break;
        };
        let (Some(data), Some(sum)) = (buf.get(p_end + 16..d_end), buf.get(d_end..d_end + 8))
        else {
            break;
        };
        if fnv(&buf[i..d_end]) != u64::from_le_bytes(sum.try_into().unwrap()) {
            break;
        }
        offs.push(i);
        recs.push(Rec {
            kind,
            path: path.to_vec(),
            a: u64::from_le_bytes(a.try_into().unwrap()),
            data: data.to_vec(),
        });
        i = d_end + 8;
    }
    (recs, offs)
}

/// The length fields of a journal: each record's path length, offset, data length and
/// checksum, and a tail record's saved length and fingerprint.
fn journal_fields(buf: &[u8]) -> Vec<Field> {
    let (recs, offs) = decode(buf);
    let mut out = Vec::new();
    let le = |at, width| Field {
        at,
        width,
        big_endian: false,
    };
    for (r, &i) in recs.iter().zip(&offs) {
        let p_end = i + 5 + r.path.len();
        out.push(le(i + 1, 4));
        out.push(le(p_end, 8));
        out.push(le(p_end + 8, 8));
        if r.kind == KIND_TAIL {
            out.push(le(p_end + 16, 8));
            out.push(le(p_end + 24, 8));
        }
        out.push(le(p_end + 16 + r.data.len(), 8));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------

type Tree = BTreeMap<PathBuf, Entry>;

/// A crashed transaction: the dataset before it, and after the crash (journal included).
struct Tx {
    name: &'static str,
    pre: Tree,
    post: Tree,
    journal: Vec<u8>,
    fields: Vec<Field>,
    recs: Vec<Rec>,
}

fn without_reel(t: &Tree) -> Tree {
    t.iter()
        .filter(|(p, _)| !p.starts_with(".reel"))
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

fn tx(name: &'static str, pre: Tree, post: Tree) -> Tx {
    let journal = match post.get(Path::new(JOURNAL)) {
        Some(Entry::File(b)) => b.clone(),
        _ => panic!("{name}: no journal"),
    };
    let (recs, _) = decode(&journal);
    assert!(
        encode(&journal[..8], &recs) == journal,
        "{name}: the oracle reads the whole real journal"
    );
    Tx {
        name,
        pre: without_reel(&pre),
        post,
        fields: journal_fields(&journal),
        recs,
        journal,
    }
}

/// The real transactions: the CLI's episode save, a library transaction with every kind of
/// record, and the latter rewritten in the first journal format (no fingerprints).
fn transactions() -> &'static [Tx] {
    static T: OnceLock<Vec<Tx>> = OnceLock::new();
    T.get_or_init(|| {
        let s = seeds(BIN);
        let cli = tx("cli resume", s.pre.clone(), s.post.clone());
        assert!(cli.recs.len() >= 5, "{:?}", cli.recs.len());

        let root = s.scratch.join("lib");
        materialize(&root, &s.pre);
        let seg = s.scratch.join("seg.mp4");
        std::fs::write(&seg, &s.segment).unwrap();
        let mut j = Journal::begin(&root.join(JOURNAL), &root, false).unwrap();
        reel_dataset::mp4::append_segment(&root.join(VIDEO), &seg, &mut j).unwrap();
        let mut info = Info::read(&root).unwrap();
        let recs = episodes::read_all(&root, &info.features).unwrap();
        let batch = episodes::episode_batch(recs.last().unwrap()).unwrap();
        parquet_append::append_batch(&root.join(EPISODES), &batch, &[], &mut j).unwrap();
        figures::append(&root, 7, &[("x".into(), ExtraValue::I64(1))], &mut j).unwrap();
        info.total_episodes += 1;
        info.write(&root, &mut j).unwrap();
        let (from, to) = (
            root.join("meta/tasks.parquet"),
            root.join("meta/tasks-old.parquet"),
        );
        j.record_rename(&from, &to).unwrap();
        std::fs::rename(&from, &to).unwrap();
        let created = root.join("data/chunk-000/file-009.parquet");
        j.record_create(&created).unwrap();
        std::fs::write(&created, b"PAR1 new file PAR1").unwrap();
        drop(j); // the crash
        let mut post = snapshot(&root);
        post.retain(|p, _| {
            !p.starts_with(".reel") || p.starts_with(JOURNAL) || p == Path::new(".reel")
        });
        let lib = tx("library", s.pre.clone(), post.clone());
        let kinds: BTreeSet<u8> = lib.recs.iter().map(|r| r.kind).collect();
        assert_eq!(kinds.len(), 4, "tail, create, replace, rename: {kinds:?}");

        // The same in the first format: tail records without the fingerprint.
        let v1: Vec<Rec> = lib
            .recs
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if r.kind == KIND_TAIL {
                    r.data.drain(8..16);
                }
                r
            })
            .collect();
        let mut post_v1 = post;
        post_v1.insert(PathBuf::from(JOURNAL), Entry::File(encode(MAGIC_V1, &v1)));
        let v1 = tx("library, format 1", s.pre.clone(), post_v1);
        vec![cli, lib, v1]
    })
}

// ---------------------------------------------------------------------------------------
// Structure-aware edits: records changed and (mostly) re-checksummed
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RecField {
    Kind(u8),
    Path(usize),
    PathByte(u64, u8),
    Offset,
    TailLen,
    TailFingerprint,
    DataByte(u64, u8),
    DataCut(u64),
    Drop,
    Duplicate,
    Swap(u64),
}

#[derive(Debug, Clone)]
struct RecEdit {
    rec: u64,
    field: RecField,
    val: SpecialVal,
    checksum: bool,
}

/// Values for the numeric fields (a subset of the byte mutations' specials, and any u64).
#[derive(Debug, Clone, Copy)]
enum SpecialVal {
    Fixed(u64),
    Delta(i16),
}

const HOSTILE: [&str; 14] = [
    "../canary.txt",
    "../outside/secret.txt",
    "up/secret.txt",
    "ABSOLUTE",
    "",
    ".",
    "meta",
    "meta//info.json",
    "./meta/info.json",
    "meta/../../canary.txt",
    ".reel/journal",
    "videos",
    "meta/info.json\0",
    "LONG",
];

fn rec_edit() -> impl Strategy<Value = RecEdit> {
    let field = prop_oneof![
        (0u8..8).prop_map(RecField::Kind),
        (0..HOSTILE.len()).prop_map(RecField::Path),
        (any::<u64>(), any::<u8>()).prop_map(|(a, b)| RecField::PathByte(a, b)),
        Just(RecField::Offset),
        Just(RecField::TailLen),
        Just(RecField::TailFingerprint),
        (any::<u64>(), any::<u8>()).prop_map(|(a, b)| RecField::DataByte(a, b)),
        any::<u64>().prop_map(RecField::DataCut),
        Just(RecField::Drop),
        Just(RecField::Duplicate),
        any::<u64>().prop_map(RecField::Swap),
    ];
    let val = prop_oneof![
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(7),
            Just(8),
            Just(1 << 31),
            Just(u32::MAX as u64),
            Just(1 << 32),
            Just(1 << 63),
            Just(u64::MAX),
            any::<u64>()
        ]
        .prop_map(SpecialVal::Fixed),
        (-64i16..64).prop_map(SpecialVal::Delta),
    ];
    (any::<u64>(), field, val, prop::bool::weighted(0.9)).prop_map(|(rec, field, val, checksum)| {
        RecEdit {
            rec,
            field,
            val,
            checksum,
        }
    })
}

fn set(v: u64, val: SpecialVal) -> u64 {
    match val {
        SpecialVal::Fixed(x) => x,
        SpecialVal::Delta(d) => v.wrapping_add(d as i64 as u64),
    }
}

fn apply_edits(tx: &Tx, edits: &[RecEdit], abs_canary: &Path) -> Vec<u8> {
    let mut recs = tx.recs.clone();
    let mut bad_sum = BTreeSet::new();
    for e in edits {
        if recs.is_empty() {
            break;
        }
        let i = (e.rec % recs.len() as u64) as usize;
        if !e.checksum {
            bad_sum.insert(i);
        }
        let r = &mut recs[i];
        match &e.field {
            RecField::Kind(k) => r.kind = *k,
            RecField::Path(h) => {
                r.path = match HOSTILE[*h] {
                    "ABSOLUTE" => abs_canary.to_string_lossy().into_owned(),
                    "LONG" => "a/".repeat(3000),
                    p => p.to_string(),
                }
                .into_bytes();
                if r.kind == KIND_RENAME && e.rec % 2 == 0 {
                    std::mem::swap(&mut r.path, &mut r.data);
                }
            }
            RecField::PathByte(at, b) => {
                if !r.path.is_empty() {
                    let n = r.path.len();
                    r.path[(*at % n as u64) as usize] = *b;
                }
            }
            RecField::Offset => r.a = set(r.a, e.val),
            RecField::TailLen | RecField::TailFingerprint => {
                let at = if matches!(e.field, RecField::TailLen) {
                    0
                } else {
                    8
                };
                if r.data.len() >= at + 8 {
                    let old = u64::from_le_bytes(r.data[at..at + 8].try_into().unwrap());
                    r.data[at..at + 8].copy_from_slice(&set(old, e.val).to_le_bytes());
                }
            }
            RecField::DataByte(at, b) => {
                if !r.data.is_empty() {
                    let n = r.data.len();
                    r.data[(*at % n as u64) as usize] = *b;
                }
            }
            RecField::DataCut(at) => {
                let n = r.data.len() as u64 + 1;
                r.data.truncate((*at % n) as usize);
            }
            RecField::Drop => {
                recs.remove(i);
            }
            RecField::Duplicate => {
                let r = recs[i].clone();
                recs.insert(i, r);
            }
            RecField::Swap(j) => {
                let j = (*j % recs.len() as u64) as usize;
                recs.swap(i, j);
            }
        }
    }
    let mut out = tx.journal[..8].to_vec();
    for (i, r) in recs.iter().enumerate() {
        r.encode(&mut out, !bad_sum.contains(&i));
    }
    out
}

/// A file outside every case's dataset that absolute paths in edited records name.
fn abs_canary() -> PathBuf {
    let p = seeds(BIN).scratch.join("abs-canary.txt");
    if !p.exists() {
        std::fs::write(&p, b"abs-canary").unwrap();
    }
    p
}

// ---------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------

fn files_only(t: &Tree) -> Tree {
    t.iter()
        .filter(|(_, e)| !matches!(e, Entry::Dir))
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Recovers a dataset whose journal is `journal` and checks the properties (module doc).
fn check_recovery(fz: &Fuzz, tx: &Tx, journal: &[u8]) -> Result<(), TestCaseError> {
    let s = seeds(BIN);
    let d = case_dir(s);
    let base = d.path();
    let root = base.join("ds");
    let mut tree = tx.post.clone();
    tree.insert(PathBuf::from(JOURNAL), Entry::File(journal.to_vec()));
    tree.insert(
        PathBuf::from("up"),
        Entry::Link(PathBuf::from("../outside")),
    );
    materialize(&root, &tree);
    std::fs::write(base.join("canary.txt"), b"canary").unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/secret.txt"), b"secret").unwrap();
    let outside = |base: &Path| {
        let mut t = snapshot(base);
        t.retain(|p, _| !p.starts_with("ds"));
        t
    };
    let outside_before = outside(base);
    let before = snapshot(&root);
    let jp = root.join(JOURNAL);
    let res = fz.call(
        tx.name,
        journal.len(),
        || recover(&jp, &root),
        |r| r.is_ok(),
    )?;
    let after = snapshot(&root);
    if outside(base) != outside_before {
        return Err(fail(format!(
            "{}: recovery ({res:?}) changed files outside the dataset: {:?}",
            tx.name,
            diff(&outside_before, &outside(base))
        )));
    }
    if std::fs::read(abs_canary()).ok().as_deref() != Some(&b"abs-canary"[..]) {
        return Err(fail(format!(
            "{}: recovery ({res:?}) changed a file outside the dataset named by an absolute path",
            tx.name
        )));
    }
    let (valid, _) = decode(journal);
    match res {
        Err(e) => {
            if after != before {
                return Err(fail(format!(
                    "{}: recovery refused ({e}) but changed the dataset: {:?}",
                    tx.name,
                    diff(&before, &after)
                )));
            }
        }
        Ok(n) => {
            if after.contains_key(Path::new(JOURNAL)) {
                return Err(fail(format!(
                    "{}: recovered but the journal stays",
                    tx.name
                )));
            }
            if n != valid.len() {
                return Err(fail(format!(
                    "{}: undid {n} records, the journal holds {} complete ones",
                    tx.name,
                    valid.len()
                )));
            }
            let prefix = valid.len() <= tx.recs.len() && valid[..] == tx.recs[..valid.len()];
            if prefix && (journal.len() < 8 || journal[..8] == tx.journal[..8]) {
                // A torn real journal: undo exactly what the complete records guard.
                let mut want = files_only(&before);
                want.remove(Path::new(JOURNAL));
                for r in valid.iter().rev() {
                    for p in r.paths() {
                        match tx.pre.get(&p) {
                            Some(e) => want.insert(p, e.clone()),
                            None => want.remove(&p),
                        };
                    }
                }
                let got = files_only(&after);
                if got != want {
                    return Err(fail(format!(
                        "{}: a torn journal of {} records was not undone exactly: {:?}",
                        tx.name,
                        valid.len(),
                        diff(&want, &got)
                    )));
                }
            } else {
                let named: BTreeSet<PathBuf> = valid.iter().flat_map(|r| r.paths()).collect();
                for change in diff(&files_only(&before), &files_only(&after)) {
                    let p = PathBuf::from(change.rsplit_once(' ').map_or("", |x| x.0));
                    if p != Path::new(JOURNAL) && !named.contains(&p) {
                        return Err(fail(format!(
                            "{}: recovery changed a file no record names: {change}",
                            tx.name
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_real_journals_roll_back_exactly() {
    let fz = Fuzz::new("journal::recover (seeds)");
    for tx in transactions() {
        check_recovery(&fz, tx, &tx.journal).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(fz.figures.borrow().ok, 3);
    fz.report();
}

#[test]
fn recover_torn_journals_at_every_region() {
    let fz = Fuzz::new("journal::recover (torn)");
    for tx in transactions() {
        // Every field's first byte, and every 1021st byte.
        let mut pts: Vec<usize> = (0..tx.journal.len()).step_by(1021).collect();
        pts.extend(tx.fields.iter().map(|f| f.at));
        pts.retain(|&p| p < tx.journal.len());
        pts.sort_unstable();
        pts.dedup();
        for at in pts {
            check_recovery(&fz, tx, &tx.journal[..at])
                .unwrap_or_else(|e| panic!("cut at {at}: {e}"));
        }
    }
    fz.report();
}

#[test]
fn recover_byte_mutated_journals() {
    let txs = transactions();
    let fz = Fuzz::new("journal::recover (bytes)");
    fz.run(cases(200), (0..txs.len(), mutations()), |(t, muts)| {
        let tx = &txs[t];
        check_recovery(&fz, tx, &apply(&tx.journal, &tx.fields, &muts))
    });
}

#[test]
fn recover_edited_records() {
    let txs = transactions();
    let fz = Fuzz::new("journal::recover (records)");
    fz.run(
        cases(300),
        (0..txs.len(), proptest::collection::vec(rec_edit(), 1..=3)),
        |(t, edits)| {
            let tx = &txs[t];
            let journal = apply_edits(tx, &edits, &abs_canary());
            check_recovery(&fz, tx, &journal)
        },
    );
}

#[test]
fn a_journal_behind_a_linked_reel_folder_is_refused() {
    // `.reel -> ../outside` holding a real journal: replaying it would read a journal from
    // outside the dataset and remove it there.
    let tx = &transactions()[0];
    let s = seeds(BIN);
    let d = case_dir(s);
    let base = d.path();
    let root = base.join("ds");
    let mut tree = tx.post.clone();
    tree.retain(|p, _| !p.starts_with(".reel"));
    tree.insert(
        PathBuf::from(".reel"),
        Entry::Link(PathBuf::from("../outside")),
    );
    materialize(&root, &tree);
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/journal"), &tx.journal).unwrap();
    let before = snapshot(base);
    let fz = Fuzz::new("journal::recover (linked .reel)");
    let r = fz
        .call(
            "linked .reel",
            tx.journal.len(),
            || recover(&root.join(JOURNAL), &root),
            |r| r.is_ok(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let e = r.expect_err("a journal behind a symbolic link is refused");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(diff(&before, &snapshot(base)), Vec::<String>::new());
    fz.report();
}
