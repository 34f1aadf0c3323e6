//! Fuzzing the readers of a dataset's metadata (issue 12): the Python-JSON parser
//! (`pyjson::parse_py`, `stats_json::parse`), `Info::parse`, reel's figures log
//! (`figures::read`), the parquet footer readers (`parquet_append::{row_group_rows,
//! key_value_metadata, append_batch}`, `episodes::read_all`, `tasks::read`) and the re-encode
//! swap manifest (`reel_reencode::swap::recover`), on mutated copies of the files of a real
//! recording and of a real `reel reencode` killed after writing its manifest.
//!
//! Every call returns, never panics and stays within 10 × its input + 1 MiB of heap. An
//! append to a damaged parquet file either fails and leaves it byte-identical, or succeeds
//! and rolls back exactly. A swap recovery either refuses and changes nothing, or finishes
//! the swap with a readable `info.json` and changes nothing outside the dataset.

use crate::fuzz_common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reel_core::journal::{recover, Journal};
use reel_dataset::info::Info;
use reel_dataset::{episodes, figures, parquet_append, pyjson, stats_json, tasks};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const BIN: &str = "meta";
const STATS: &str = "meta/stats.json";
const INFO: &str = "meta/info.json";
const FIGURES: &str = "meta/reel/episodes.jsonl";
const TASKS: &str = "meta/tasks.parquet";
const MANIFEST: &str = ".reel/reencode/swap.json";

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

// ---------------------------------------------------------------------------------------
// JSON-aware mutations: snippets inserted after a structural character
// ---------------------------------------------------------------------------------------

fn snippets() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        vec![
            nesting_bomb(2000, false),
            nesting_bomb(2000, true),
            "[".repeat(5000),
            "{\"a\":".repeat(5000),
            "1e999999".into(),
            "-1e-999999".into(),
            "9".repeat(400),
            "-".into(),
            "NaN".into(),
            "-Infinity".into(),
            "\"\\u".into(),
            "\"\\ud800\"".into(),
            "\"\\".into(),
            "\"".into(),
            "]".into(),
            "}".into(),
            ",".into(),
            ":".into(),
            "{\"\":".into(),
            "null".into(),
            "\u{0}".into(),
            "é".into(),
            format!("\"{}\"", "x".repeat(3000)),
            format!("[{}0]", "0,".repeat(3000)),
        ]
    })
}

#[derive(Debug, Clone)]
enum JsonMut {
    Bytes(Vec<Mutation>),
    Snippet {
        at: u64,
        which: usize,
        replace: bool,
    },
}

fn json_mutations() -> impl Strategy<Value = Vec<JsonMut>> {
    let one = prop_oneof![
        mutations().prop_map(JsonMut::Bytes),
        (any::<u64>(), 0..snippets().len(), any::<bool>())
            .prop_map(|(at, which, replace)| JsonMut::Snippet { at, which, replace }),
    ];
    proptest::collection::vec(one, 1..=3)
}

fn apply_json(seed: &[u8], muts: &[JsonMut]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        match m {
            JsonMut::Bytes(ms) => b = apply(&b, &[], ms),
            JsonMut::Snippet { at, which, replace } => {
                let marks: Vec<usize> = b
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| matches!(c, b'[' | b'{' | b',' | b':'))
                    .map(|(i, _)| i + 1)
                    .collect();
                let i = if marks.is_empty() {
                    0
                } else {
                    marks[(*at % marks.len() as u64) as usize]
                };
                let s = snippets()[*which].as_bytes();
                // Replace the value that follows (up to the next ',' or bracket) or insert.
                let end = if *replace {
                    b[i..]
                        .iter()
                        .position(|c| matches!(c, b',' | b']' | b'}'))
                        .map_or(b.len(), |k| i + k)
                } else {
                    i
                };
                b.splice(i..end, s.iter().copied());
            }
        }
    }
    b
}

/// Dense documents: many small values in few bytes (memory per value vs bytes per value).
fn dense(kind: &str, n: usize) -> String {
    match kind {
        "array" => format!("[{}0]", "0,".repeat(n)),
        "object" => {
            let mut s = String::from("{");
            for i in 0..n {
                s.push_str(&format!("\"{i:x}\":0,"));
            }
            s.push_str("\"z\":0}");
            s
        }
        "strings" => format!("[{}\"\"]", "\"\",".repeat(n)),
        "nested" => format!("[{}[]]", "[],".repeat(n)),
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------
// JSON readers
// ---------------------------------------------------------------------------------------

fn stats_seed() -> &'static [u8] {
    seeds(BIN).file(STATS)
}

#[test]
fn pyjson_and_stats_json_on_mutated_stats() {
    let seed = stats_seed();
    let fz = Fuzz::new("pyjson::parse_py");
    let fz2 = Fuzz::new("stats_json::parse");
    assert!(stats_json::parse(std::str::from_utf8(seed).unwrap(), Path::new(STATS)).is_ok());
    fz.run(cases(1000), json_mutations(), |muts| {
        let bytes = apply_json(seed, &muts);
        let text = String::from_utf8_lossy(&bytes);
        let _ = fz.call(
            "parse_py",
            bytes.len(),
            || pyjson::parse_py(&text),
            |r| r.is_some(),
        )?;
        let _ = fz2.call(
            "stats_json::parse",
            bytes.len(),
            || stats_json::parse(&text, Path::new(STATS)),
            |r| r.is_ok(),
        )?;
        Ok(())
    });
    fz2.report();
}

#[test]
fn info_parse_on_mutated_info() {
    let seed = seeds(BIN).file(INFO);
    assert!(Info::parse(std::str::from_utf8(seed).unwrap(), Path::new(INFO)).is_ok());
    let fz = Fuzz::new("Info::parse");
    fz.run(cases(1500), json_mutations(), |muts| {
        let bytes = apply_json(seed, &muts);
        let text = String::from_utf8_lossy(&bytes);
        let r = fz.call(
            "Info::parse",
            bytes.len(),
            || Info::parse(&text, Path::new(INFO)),
            |r| r.is_ok(),
        )?;
        if let Ok(info) = r {
            // What parses writes back and parses again to the same thing.
            let again = Info::parse(&info.to_json(), Path::new(INFO))
                .map_err(|e| fail(format!("accepted info.json does not round-trip: {e}")))?;
            if again != info {
                return Err(fail(
                    "accepted info.json changes through a round trip".into(),
                ));
            }
        }
        Ok(())
    });
}

#[test]
fn figures_read_on_mutated_log() {
    let s = seeds(BIN);
    let seed = s.file(FIGURES);
    let fz = Fuzz::new("figures::read");
    let d = case_dir(s);
    let root = d.path();
    std::fs::create_dir_all(root.join("meta/reel")).unwrap();
    std::fs::write(root.join(FIGURES), seed).unwrap();
    assert_eq!(figures::read(root).unwrap().len(), 2);
    fz.run(cases(1000), json_mutations(), |muts| {
        let bytes = apply_json(seed, &muts);
        std::fs::write(root.join(FIGURES), &bytes).unwrap();
        let _ = fz.call(
            "figures::read",
            bytes.len(),
            || figures::read(root),
            |r| r.is_ok(),
        )?;
        Ok(())
    });
}

#[test]
fn json_bombs_and_dense_documents() {
    let s = seeds(BIN);
    let fz = Fuzz::new("json (crafted)");
    let d = case_dir(s);
    let root = d.path();
    std::fs::create_dir_all(root.join("meta/reel")).unwrap();
    let mut docs: Vec<(String, String)> = Vec::new();
    for depth in [129usize, 1000, 100_000] {
        docs.push((format!("array bomb {depth}"), nesting_bomb(depth, false)));
        docs.push((format!("object bomb {depth}"), nesting_bomb(depth, true)));
    }
    for kind in ["array", "object", "strings", "nested"] {
        docs.push((format!("dense {kind}"), dense(kind, 200_000)));
    }
    for (name, doc) in &docs {
        let stats_doc = format!("{{\"x\": {{\"min\": {doc}}}}}");
        let info_doc = format!(
            "{{\"codebase_version\": \"v3.0\", \"fps\": 30, \"features\": {{\"x\": {doc}}}}}"
        );
        let line = format!("{{\"episode_index\": 0, \"figures\": {{\"x\": {doc}}}}}\n");
        let r = fz
            .call(
                &format!("parse_py: {name}"),
                doc.len(),
                || pyjson::parse_py(doc),
                |r| r.is_some(),
            )
            .map(|_| ())
            .and_then(|_| {
                fz.call(
                    &format!("stats_json::parse: {name}"),
                    stats_doc.len(),
                    || stats_json::parse(&stats_doc, Path::new(STATS)),
                    |r| r.is_ok(),
                )
                .map(|_| ())
            })
            .and_then(|_| {
                fz.call(
                    &format!("Info::parse: {name}"),
                    info_doc.len(),
                    || Info::parse(&info_doc, Path::new(INFO)),
                    |r| r.is_ok(),
                )
                .map(|_| ())
            })
            .and_then(|_| {
                std::fs::write(root.join(FIGURES), &line).unwrap();
                fz.call(
                    &format!("figures::read: {name}"),
                    line.len(),
                    || figures::read(root),
                    |r| r.is_ok(),
                )
                .map(|_| ())
            });
        if let Err(e) = r {
            panic!("{e}");
        }
    }
    // Figures with many distinct long names in one line (within the value budget): each
    // name was looked up among the others, 60,000^2 / 2 comparisons.
    let mut line = String::from("{\"episode_index\": 0, \"figures\": {");
    for i in 0..60_000 {
        line.push_str(&format!("\"{i:060x}\":0,"));
    }
    line.push_str("\"z\":0}}\n");
    std::fs::write(root.join(FIGURES), &line).unwrap();
    let r = fz
        .call(
            "figures::read: 60k names",
            line.len(),
            || figures::read(root),
            |r| r.is_ok(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.expect("a well-formed line is read")[&0].len(), 60_001);
    // A swap manifest of many empty names.
    let manifest = format!(
        "{{\"files\": [{}\"\"], \"info_json\": \"\"}}",
        "\"\",".repeat(200_000)
    );
    let d2 = case_dir(s);
    std::fs::create_dir_all(d2.path().join(".reel/reencode")).unwrap();
    std::fs::write(d2.path().join(MANIFEST), &manifest).unwrap();
    let r = fz
        .call(
            "swap::recover: dense manifest",
            manifest.len(),
            || reel_reencode::swap::recover(d2.path()),
            |r| r.is_ok(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_err());
    fz.report();
}

// ---------------------------------------------------------------------------------------
// Parquet
// ---------------------------------------------------------------------------------------

/// Parquet seeds: the footer length word and every 4th byte of the footer are fields.
fn parquet_fields(b: &[u8]) -> Vec<Field> {
    let n = b.len();
    let mlen = u32::from_le_bytes(b[n - 8..n - 4].try_into().unwrap()) as usize;
    let start = n - 8 - mlen;
    let mut out = vec![Field {
        at: n - 8,
        width: 4,
        big_endian: false,
    }];
    out.extend((start..n - 8).step_by(4).map(|at| Field {
        at,
        width: 4,
        big_endian: false,
    }));
    out
}

fn parquet_seeds() -> [(&'static str, &'static [u8]); 3] {
    let s = seeds(BIN);
    [
        (EPISODES, s.file(EPISODES)),
        (DATA, s.file(DATA)),
        (TASKS, s.file(TASKS)),
    ]
}

#[test]
fn parquet_footer_readers_on_mutated_files() {
    let s = seeds(BIN);
    let files = parquet_seeds();
    let fields: Vec<Vec<Field>> = files.iter().map(|(_, b)| parquet_fields(b)).collect();
    let fz = Fuzz::new("parquet footer readers");
    let d = case_dir(s);
    let p = d.path().join("f.parquet");
    fz.run(cases(1200), (0..files.len(), mutations()), |(k, muts)| {
        let bytes = apply(files[k].1, &fields[k], &muts);
        std::fs::write(&p, &bytes).unwrap();
        let rows = fz.call(
            "row_group_rows",
            bytes.len(),
            || parquet_append::row_group_rows(&p),
            |r| r.is_ok(),
        )?;
        let _ = fz.call(
            "key_value_metadata",
            bytes.len(),
            || parquet_append::key_value_metadata(&p),
            |r| r.is_ok(),
        )?;
        if let Ok(rows) = rows {
            let total: u64 = rows.iter().sum();
            if rows.len() > bytes.len() {
                return Err(fail(format!(
                    "{} row groups ({total} rows) accepted in {} bytes",
                    rows.len(),
                    bytes.len()
                )));
            }
        }
        Ok(())
    });
}

/// A zigzag varint as thrift's compact protocol writes an i32.
fn zigzag(v: i32) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 31)) as u32;
    let mut out = Vec::new();
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return out;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Reads a varint at `at`: (value, length).
fn varint(b: &[u8], at: usize) -> (u64, usize) {
    let (mut v, mut n) = (0u64, 0usize);
    while let Some(&x) = b.get(at + n) {
        v |= ((x & 0x7f) as u64) << (7 * n);
        n += 1;
        if x & 0x80 == 0 || n == 10 {
            break;
        }
    }
    (v, n)
}

#[test]
fn page_headers_claiming_huge_pages() {
    // The first page header of each file (right after the magic): thrift fields 1 (type),
    // 2 (uncompressed size), 3 (compressed size). The reader sizes its buffers from them.
    let s = seeds(BIN);
    let info = Info::parse(std::str::from_utf8(s.file(INFO)).unwrap(), Path::new(INFO)).unwrap();
    let fz = Fuzz::new("parquet (crafted pages)");
    let d = case_dir(s);
    let root = d.path();
    for (rel, b) in parquet_seeds() {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), b).unwrap();
    }
    for (rel, seed) in parquet_seeds() {
        assert_eq!(seed[4], 0x15, "{rel}: a page header follows the magic");
        let (_, n1) = varint(seed, 5);
        let f2 = 5 + n1;
        assert_eq!(seed[f2], 0x15, "{rel}: field 2 (uncompressed size)");
        let (_, n2) = varint(seed, f2 + 1);
        let f3 = f2 + 1 + n2;
        let (_, n3) = varint(seed, f3 + 1);
        for (field_at, len) in [(f2 + 1, n2), (f3 + 1, n3)] {
            for v in [0, 1, -1, 1 << 20, 1 << 30, i32::MAX, i32::MIN] {
                let mut b = seed.to_vec();
                b.splice(field_at..field_at + len, zigzag(v));
                std::fs::write(root.join(rel), &b).unwrap();
                let what = format!("{rel}: page size field {field_at} = {v}");
                let r = if rel == TASKS {
                    fz.call(
                        &what,
                        b.len(),
                        || tasks::read(root).map(|_| ()),
                        |r| r.is_ok(),
                    )
                } else if rel == EPISODES {
                    fz.call(
                        &what,
                        b.len(),
                        || episodes::read_all(root, &info.features).map(|_| ()),
                        |r| r.is_ok(),
                    )
                } else {
                    fz.call(
                        &what,
                        b.len(),
                        || parquet_append::row_group_rows(Path::new(&root.join(rel))).map(|_| ()),
                        |r| r.is_ok(),
                    )
                };
                let _ = r.unwrap_or_else(|e| panic!("{e}"));
            }
        }
        std::fs::write(root.join(rel), seed).unwrap();
    }
    fz.report();
}

#[test]
fn episodes_and_tasks_on_mutated_files() {
    let s = seeds(BIN);
    let info = Info::parse(std::str::from_utf8(s.file(INFO)).unwrap(), Path::new(INFO)).unwrap();
    let files = parquet_seeds();
    let fields: Vec<Vec<Field>> = files.iter().map(|(_, b)| parquet_fields(b)).collect();
    let fz = Fuzz::new("episodes::read_all, tasks::read");
    let d = case_dir(s);
    let root = d.path();
    for (rel, b) in &files {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), b).unwrap();
    }
    assert_eq!(episodes::read_all(root, &info.features).unwrap().len(), 2);
    assert_eq!(tasks::read(root).unwrap().len(), 1);
    fz.run(cases(600), (any::<bool>(), mutations()), |(ep, muts)| {
        let k = if ep { 0 } else { 2 };
        let bytes = apply(files[k].1, &fields[k], &muts);
        std::fs::write(root.join(files[k].0), &bytes).unwrap();
        let r = if ep {
            fz.call(
                "episodes::read_all",
                bytes.len(),
                || episodes::read_all(root, &info.features).map(|v| v.len()),
                |r| r.is_ok(),
            )
        } else {
            fz.call(
                "tasks::read",
                bytes.len(),
                || tasks::read(root).map(|v| v.len()),
                |r| r.is_ok(),
            )
        };
        std::fs::write(root.join(files[k].0), files[k].1).unwrap();
        r.map(|_| ())
    });
}

#[test]
fn append_to_a_mutated_parquet_file() {
    let s = seeds(BIN);
    let info = Info::parse(std::str::from_utf8(s.file(INFO)).unwrap(), Path::new(INFO)).unwrap();
    // The batch a real episode save appends: a row built from the dataset's own last episode.
    let batch = {
        let d = case_dir(s);
        let root = d.path().join("ds");
        materialize(&root, &s.pre);
        let recs = episodes::read_all(&root, &info.features).unwrap();
        episodes::episode_batch(recs.last().unwrap()).unwrap()
    };
    let seed = s.file(EPISODES);
    let fields = parquet_fields(seed);
    let fz = Fuzz::new("parquet_append::append_batch");
    // Encoding the new row group takes the same heap whatever the file: measured on the seed.
    let (_, base) = measure(|| {
        let d = case_dir(s);
        let p = d.path().join("e.parquet");
        std::fs::write(&p, seed).unwrap();
        let mut j = Journal::begin(&d.path().join(JOURNAL), d.path(), false).unwrap();
        parquet_append::append_batch(&p, &batch, &[], &mut j).unwrap();
    });
    fz.base.set(base);
    fz.run(cases(300), (mutations(), any::<u8>()), |(muts, keep)| {
        let bytes = apply(seed, &fields, &muts);
        let d = case_dir(s);
        let root = d.path();
        let p = root.join("e.parquet");
        std::fs::write(&p, &bytes).unwrap();
        let jp = root.join(JOURNAL);
        let mut j = Journal::begin(&jp, root, false).unwrap();
        let r = fz.call(
            "append_batch",
            bytes.len(),
            || parquet_append::append_batch(&p, &batch, &[], &mut j),
            |r| r.is_ok(),
        )?;
        if r.is_err() && std::fs::read(&p).unwrap() != bytes {
            return Err(fail(format!("append failed ({r:?}) but changed the file")));
        }
        if r.is_ok() {
            let rows = parquet_append::row_group_rows(&p)
                .map_err(|e| fail(format!("append succeeded, the footer does not read: {e}")))?;
            if rows.last() != Some(&1) {
                return Err(fail(format!("appended one row, last group has {rows:?}")));
            }
        }
        drop(j);
        recover(&jp, root).map_err(|e| fail(format!("rollback failed: {e}")))?;
        if std::fs::read(&p).unwrap() != bytes {
            return Err(fail("rollback did not restore the input".into()));
        }
        // `reel check --repair`'s cut of a file to its first row groups, on the same input.
        let mut j = Journal::begin(&jp, root, false).unwrap();
        let r = fz.call(
            "truncate_row_groups",
            bytes.len(),
            || parquet_append::truncate_row_groups(&p, keep as usize % 3, &mut j),
            |r| r.is_ok(),
        )?;
        if r.is_err() && std::fs::read(&p).unwrap() != bytes {
            return Err(fail(format!(
                "truncate failed ({r:?}) but changed the file"
            )));
        }
        drop(j);
        recover(&jp, root).map_err(|e| fail(format!("rollback failed: {e}")))?;
        if std::fs::read(&p).unwrap() != bytes {
            return Err(fail("truncate's rollback did not restore the input".into()));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// The re-encode swap manifest
// ---------------------------------------------------------------------------------------

type Tree = BTreeMap<PathBuf, Entry>;

/// A dataset left by `reel reencode` killed right after writing its swap manifest.
fn swap_seed() -> &'static Tree {
    static T: OnceLock<Tree> = OnceLock::new();
    T.get_or_init(|| {
        let s = seeds(BIN);
        let root = s.scratch.join("swap");
        materialize(&root, &s.pre);
        let out = crate::common::reel()
            .arg("reencode")
            .arg(&root)
            .args(["--force", "--jobs", "1"])
            .env("REEL_FAULT_AT", "reencode.manifest:kill")
            .output()
            .expect("spawn reel reencode");
        assert!(
            !out.status.success() && root.join(MANIFEST).is_file(),
            "reel reencode should have been killed with its manifest on disk:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut t = snapshot(&root);
        t.remove(Path::new(".reel/lock"));
        t
    })
}

fn manifest_of(t: &Tree) -> &[u8] {
    match t.get(Path::new(MANIFEST)) {
        Some(Entry::File(b)) => b,
        _ => panic!("no manifest"),
    }
}

/// Recovers a dataset whose manifest is `manifest` and checks the properties (module doc).
fn check_swap(fz: &Fuzz, manifest: &[u8], reel_link: bool) -> Result<(), TestCaseError> {
    let s = seeds(BIN);
    let seed = swap_seed();
    let d = case_dir(s);
    let base = d.path();
    let root = base.join("ds");
    let mut tree = seed.clone();
    if reel_link {
        // `.reel` is a symbolic link to a folder outside the dataset holding the swap.
        let inner: Tree = tree
            .iter()
            .filter_map(|(p, e)| Some((p.strip_prefix(".reel").ok()?.to_path_buf(), e.clone())))
            .filter(|(p, _)| !p.as_os_str().is_empty())
            .collect();
        tree.retain(|p, _| !p.starts_with(".reel"));
        tree.insert(
            PathBuf::from(".reel"),
            Entry::Link(PathBuf::from("../outside")),
        );
        materialize(&base.join("outside"), &inner);
        std::fs::write(base.join("outside/reencode/swap.json"), manifest).unwrap();
    } else {
        std::fs::create_dir_all(base.join("outside")).unwrap();
        tree.insert(PathBuf::from(MANIFEST), Entry::File(manifest.to_vec()));
    }
    materialize(&root, &tree);
    std::fs::write(base.join("canary.txt"), b"canary").unwrap();
    let outside = |base: &Path| {
        let mut t = snapshot(base);
        t.retain(|p, _| !p.starts_with("ds"));
        t
    };
    let outside_before = outside(base);
    let before = snapshot(&root);
    let res = fz.call(
        "swap::recover",
        manifest.len(),
        || reel_reencode::swap::recover(&root),
        |r| r.is_ok(),
    )?;
    let after = snapshot(&root);
    if outside(base) != outside_before {
        return Err(fail(format!(
            "swap recovery ({res:?}) changed files outside the dataset: {:?}",
            diff(&outside_before, &outside(base))
        )));
    }
    match res {
        Err(e) => {
            if after != before {
                return Err(fail(format!(
                    "swap recovery refused ({e}) but changed the dataset: {:?}",
                    diff(&before, &after)
                )));
            }
        }
        Ok(_) => {
            Info::read(&root).map_err(|e| {
                fail(format!(
                    "swap recovery succeeded, info.json does not read: {e}"
                ))
            })?;
            // Every file the manifest names now holds its new bytes.
            let m: serde_json::Value = serde_json::from_slice(manifest)
                .map_err(|e| fail(format!("recovery accepted a manifest serde rejects: {e}")))?;
            for f in m["files"].as_array().into_iter().flatten() {
                let rel = f.as_str().unwrap_or_default();
                let new = Path::new(".reel/reencode/new").join(rel);
                if let Some(Entry::File(b)) = before.get(&new) {
                    if after.get(Path::new(rel)) != Some(&Entry::File(b.clone())) {
                        return Err(fail(format!("{rel} was not swapped in")));
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn swap_recover_on_mutated_manifests() {
    let seed = manifest_of(swap_seed()).to_vec();
    let fz = Fuzz::new("swap::recover");
    check_swap(&fz, &seed, false).unwrap_or_else(|e| panic!("the real manifest: {e}"));
    assert_eq!(
        fz.figures.borrow().ok,
        1,
        "the real manifest finishes the swap"
    );
    check_swap(&fz, &seed, true).unwrap_or_else(|e| panic!("through a linked .reel: {e}"));
    fz.run(cases(150), json_mutations(), |muts| {
        check_swap(&fz, &apply_json(&seed, &muts), false)
    });
}
