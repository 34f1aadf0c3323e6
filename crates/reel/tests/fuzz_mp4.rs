//! Fuzzing the MP4 box / sample-table reader (issue 12): `reel_dataset::mp4::read_index`,
//! `append_segment` and `truncate_frames` on mutated copies of a real dataset MP4 and a real
//! episode segment. Every call returns, never panics, stays within 10 × its input + 1 MiB of
//! heap; an append or truncation that fails leaves the file byte-identical, one that succeeds
//! yields a file whose index reads back, and rolling its journal back restores the input.

use crate::fuzz_common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reel_core::journal::{recover, Journal};
use reel_dataset::mp4;
use std::path::Path;

const BIN: &str = "mp4";

const CONTAINERS: [&[u8; 4]; 8] = [
    b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl", b"dinf", b"udta",
];
/// Full boxes whose body starts with version/flags and then a count (or, for `stsz`, the
/// constant sample size and then the count).
const TABLES: [&[u8; 4]; 9] = [
    b"stsd", b"stts", b"stss", b"stsz", b"stsc", b"stco", b"co64", b"elst", b"dref",
];

/// Every box size field and every table count (and the first entries) of an MP4.
fn mp4_fields(b: &[u8]) -> Vec<Field> {
    fn walk(b: &[u8], start: usize, end: usize, depth: usize, out: &mut Vec<Field>) {
        let mut i = start;
        while depth < 12 && i + 8 <= end {
            let size32 = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
            let kind: [u8; 4] = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
            out.push(Field {
                at: i,
                width: 4,
                big_endian: true,
            });
            let (hdr, size) = match size32 {
                1 if i + 16 <= end => {
                    out.push(Field {
                        at: i + 8,
                        width: 8,
                        big_endian: true,
                    });
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b[i + 8..i + 16]);
                    (16, u64::from_be_bytes(a) as usize)
                }
                0 => (8, end - i),
                s => (8, s),
            };
            if size < hdr || i + size > end {
                return;
            }
            let body = i + hdr;
            if CONTAINERS.contains(&&kind) {
                walk(b, body, i + size, depth + 1, out);
            } else if TABLES.contains(&&kind) {
                // count (+ const size for stsz) and the words of the first entries
                for k in 0..8 {
                    let at = body + 4 + 4 * k;
                    if at + 4 <= i + size {
                        out.push(Field {
                            at,
                            width: 4,
                            big_endian: true,
                        });
                    }
                }
                if &kind == b"co64" && body + 16 <= i + size {
                    out.push(Field {
                        at: body + 8,
                        width: 8,
                        big_endian: true,
                    });
                }
                if &kind == b"stsd" && body + 8 + 86 <= i + size {
                    // the sample entry's own child boxes (avcC / av1C, btrt, ...)
                    walk(b, body + 8 + 86, i + size, depth + 1, out);
                }
            } else if [b"mvhd", b"tkhd", b"mdhd"].contains(&&kind) {
                for k in 0..6 {
                    let at = body + 4 * k;
                    if at + 4 <= i + size {
                        out.push(Field {
                            at,
                            width: 4,
                            big_endian: true,
                        });
                    }
                }
            }
            i += size;
        }
    }
    let mut out = Vec::new();
    walk(b, 0, b.len(), 0, &mut out);
    out
}

/// The real dataset MP4 (two episodes: `ftyp mdat mdat moov`) and the real segment.
struct Mp4Seeds {
    target: Vec<u8>,
    target_fields: Vec<Field>,
    segment: Vec<u8>,
    segment_fields: Vec<Field>,
    frames: u64,
    seg_frames: u64,
}

fn mp4_seeds() -> (&'static Seeds, Mp4Seeds) {
    let s = seeds(BIN);
    let target = s.file(VIDEO).to_vec();
    let segment = s.segment.clone();
    let d = case_dir(s);
    let (t, g) = (d.path().join("t.mp4"), d.path().join("s.mp4"));
    std::fs::write(&t, &target).unwrap();
    std::fs::write(&g, &segment).unwrap();
    let frames = mp4::read_index(&t).expect("seed target reads").frames;
    let seg_frames = mp4::read_index(&g).expect("seed segment reads").frames;
    (
        s,
        Mp4Seeds {
            target_fields: mp4_fields(&target),
            segment_fields: mp4_fields(&segment),
            target,
            segment,
            frames,
            seg_frames,
        },
    )
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

#[test]
fn read_index_on_mutated_mp4s() {
    let (s, m) = mp4_seeds();
    assert!(m.target_fields.len() > 40, "the walker found the tables");
    let fz = Fuzz::new("mp4::read_index (mutated)");
    fz.run(cases(600), mutations(), |muts| {
        let bytes = apply(&m.target, &m.target_fields, &muts);
        let d = case_dir(s);
        let p = d.path().join("v.mp4");
        std::fs::write(&p, &bytes).unwrap();
        let r = fz.call(
            "read_index",
            bytes.len(),
            || mp4::read_index(&p),
            |r| r.is_ok(),
        )?;
        if let Ok(ix) = r {
            // Every sample needs bytes of the file: an accepted index never claims more.
            if ix.frames > bytes.len() as u64 {
                return Err(fail(format!(
                    "{} frames accepted in {} bytes",
                    ix.frames,
                    bytes.len()
                )));
            }
        }
        Ok(())
    });
}

#[test]
fn read_index_on_every_truncation() {
    let (s, m) = mp4_seeds();
    let fz = Fuzz::new("mp4::read_index (truncated)");
    let pts = truncation_points(m.target.len(), &m.target_fields, 61);
    let d = case_dir(s);
    let p = d.path().join("v.mp4");
    for at in pts {
        std::fs::write(&p, &m.target[..at]).unwrap();
        let r = fz
            .call("read_index", at, || mp4::read_index(&p), |r| r.is_ok())
            .unwrap_or_else(|e| panic!("truncated at {at}: {e}"));
        assert!(
            r.is_err(),
            "a file cut at {at} of {} must be refused",
            m.target.len()
        );
    }
    fz.report();
}

/// An append or truncation inside a journal: refused → the file is untouched; done → the
/// file reads back with the expected frame count and a rollback restores the input exactly.
fn journaled(
    fz: &Fuzz,
    s: &Seeds,
    target: Option<&[u8]>,
    segment: &[u8],
    op: &str,
    keep: u64,
) -> Result<(), TestCaseError> {
    let d = case_dir(s);
    let root = d.path();
    let t = root.join("videos/file-000.mp4");
    std::fs::create_dir_all(t.parent().unwrap()).unwrap();
    if let Some(b) = target {
        std::fs::write(&t, b).unwrap();
    }
    let g = root.join("seg.mp4");
    std::fs::write(&g, segment).unwrap();
    let outside_journal = |root: &Path| {
        let mut t = snapshot(root);
        t.retain(|p, _| !p.starts_with(".reel"));
        t
    };
    let before = outside_journal(root);
    let jp = root.join(JOURNAL);
    let mut j = Journal::begin(&jp, root, false).unwrap();
    let input = target.map_or(0, |b| b.len()) + if op == "append" { segment.len() } else { 0 };
    let res = fz.call(
        op,
        input,
        || match op {
            "append" => mp4::append_segment(&t, &g, &mut j).map(|a| Some(a.frames_total)),
            _ => mp4::truncate_frames(&t, keep, &mut j).map(|()| None),
        },
        |r| r.is_ok(),
    )?;
    let after = outside_journal(root);
    match res {
        Err(e) => {
            if after != before {
                return Err(fail(format!(
                    "{op} failed ({e}) but changed files: {:?}",
                    diff(&before, &after)
                )));
            }
            // The refusal names the problem; an error message is never empty.
            if e.to_string().trim().is_empty() {
                return Err(fail(format!("{op}: empty error message")));
            }
        }
        Ok(frames) => {
            let ix = mp4::read_index(&t)
                .map_err(|e| fail(format!("{op} succeeded but the result does not read: {e}")))?;
            if let Some(total) = frames {
                if ix.frames != total {
                    return Err(fail(format!(
                        "{op}: said {total} frames, the file holds {}",
                        ix.frames
                    )));
                }
            } else if ix.frames != keep {
                return Err(fail(format!(
                    "truncate to {keep} frames left {}",
                    ix.frames
                )));
            }
        }
    }
    drop(j);
    recover(&jp, root).map_err(|e| fail(format!("{op}: rollback failed: {e}")))?;
    let back = outside_journal(root);
    if back != before {
        return Err(fail(format!(
            "{op}: rollback did not restore the input: {:?}",
            diff(&before, &back)
        )));
    }
    Ok(())
}

#[test]
fn append_to_a_mutated_target() {
    let (s, m) = mp4_seeds();
    let fz = Fuzz::new("mp4::append_segment (target)");
    fz.run(cases(250), mutations(), |muts| {
        let bytes = apply(&m.target, &m.target_fields, &muts);
        journaled(&fz, s, Some(&bytes), &m.segment, "append", 0)
    });
}

#[test]
fn append_a_mutated_segment() {
    let (s, m) = mp4_seeds();
    let fz = Fuzz::new("mp4::append_segment (segment)");
    fz.run(cases(250), (mutations(), any::<bool>()), |(muts, fresh)| {
        let bytes = apply(&m.segment, &m.segment_fields, &muts);
        let target = (!fresh).then_some(&m.target[..]);
        journaled(&fz, s, target, &bytes, "append", 0)
    });
}

#[test]
fn truncate_a_mutated_file() {
    let (s, m) = mp4_seeds();
    let fz = Fuzz::new("mp4::truncate_frames");
    let frames = m.frames;
    fz.run(cases(250), (mutations(), any::<u64>()), |(muts, k)| {
        let bytes = apply(&m.target, &m.target_fields, &muts);
        let keep = match k % 4 {
            0 => k,
            _ => 1 + k % frames.max(1),
        };
        journaled(&fz, s, Some(&bytes), &m.segment, "truncate", keep)
    });
    // The unmutated seeds behave: a real append and a real truncation round-trip.
    let fz = Fuzz::new("mp4 (unmutated seeds)");
    journaled(&fz, s, Some(&m.target), &m.segment, "append", 0).unwrap();
    journaled(&fz, s, Some(&m.target), &m.segment, "truncate", frames / 2).unwrap();
    fz.report();
    assert_eq!(fz.figures.borrow().ok, 2, "the real seeds are accepted");
    assert!(m.seg_frames > 0);
}

// ---------------------------------------------------------------------------------------
// Crafted files: the blow-ups of issue 12 and their relatives
// ---------------------------------------------------------------------------------------

/// A box tree, enough to rewrite sample tables and re-serialize sizes.
#[derive(Clone)]
enum B {
    Leaf([u8; 4], Vec<u8>),
    Cont([u8; 4], Vec<B>),
}

fn parse_tree(b: &[u8]) -> Vec<B> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind: [u8; 4] = b[i + 4..i + 8].try_into().unwrap();
        assert!(size >= 8 && i + size <= b.len(), "seed box layout");
        let body = &b[i + 8..i + size];
        if CONTAINERS.contains(&&kind) && &kind != b"udta" {
            out.push(B::Cont(kind, parse_tree(body)));
        } else {
            out.push(B::Leaf(kind, body.to_vec()));
        }
        i += size;
    }
    out
}

fn ser(tree: &[B], out: &mut Vec<u8>) {
    for b in tree {
        let (kind, body) = match b {
            B::Leaf(k, body) => (k, body.clone()),
            B::Cont(k, kids) => {
                let mut v = Vec::new();
                ser(kids, &mut v);
                (k, v)
            }
        };
        out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(&body);
    }
}

/// Replaces (or adds) `kind` in the `stbl` of `tree`.
fn set_table(tree: &mut [B], kind: &[u8; 4], body: Vec<u8>) -> bool {
    for b in tree.iter_mut() {
        if let B::Cont(k, kids) = b {
            if k == b"stbl" {
                if let Some(x) = kids
                    .iter_mut()
                    .find(|x| matches!(x, B::Leaf(kk, _) if kk == kind))
                {
                    *x = B::Leaf(*kind, body);
                } else {
                    kids.push(B::Leaf(*kind, body));
                }
                return true;
            }
            if set_table(kids, kind, body.clone()) {
                return true;
            }
        }
    }
    false
}

/// Removes `kind` from the `stbl` of `tree`.
fn drop_table(tree: &mut [B], kind: &[u8; 4]) {
    for b in tree.iter_mut() {
        if let B::Cont(_, kids) = b {
            kids.retain(|x| !matches!(x, B::Leaf(kk, _) if kk == kind));
            drop_table(kids, kind);
        }
    }
}

fn table(words: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    for w in words {
        b.extend_from_slice(&w.to_be_bytes());
    }
    b
}

/// The seed target with its `moov` rebuilt by `edit` (and `pad` zero bytes of extra `free`
/// box before it, to give count checks a larger file to be measured against).
fn crafted(seed: &[u8], pad: usize, edit: impl FnOnce(&mut Vec<B>)) -> Vec<u8> {
    let mut tree = parse_tree(seed);
    let moov = tree
        .iter_mut()
        .find_map(|b| match b {
            B::Cont(k, kids) if k == b"moov" => Some(kids),
            _ => None,
        })
        .expect("moov");
    edit(moov);
    let mut out = Vec::new();
    let moov_at = tree
        .iter()
        .position(|b| matches!(b, B::Cont(k, _) if k == b"moov"))
        .unwrap();
    if pad > 0 {
        tree.insert(moov_at, B::Leaf(*b"free", vec![0; pad]));
    }
    ser(&tree, &mut out);
    out
}

#[test]
fn crafted_counts_and_sizes_are_refused_within_bounds() {
    let (s, m) = mp4_seeds();
    let fz = Fuzz::new("mp4 (crafted)");
    let n = m.frames as u32;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // stsz: a constant size with 2^32 - 1 samples (issue 12: tried to allocate 16 GB).
    cases.push((
        "stsz const size, 2^32-1 samples",
        crafted(&m.target, 0, |t| {
            set_table(t, b"stsz", table(&[1000, u32::MAX]));
        }),
    ));
    // stsz: 700 million samples of 1 byte (issue 12: 2.7 GB before answering).
    cases.push((
        "stsz 700M samples",
        crafted(&m.target, 0, |t| {
            set_table(t, b"stsz", table(&[1, 700_000_000]));
        }),
    ));
    // stsc: 2^32 - 1 entries (issue 12: 51 GB).
    cases.push((
        "stsc 2^32-1 entries",
        crafted(&m.target, 0, |t| {
            set_table(t, b"stsc", table(&[u32::MAX, 1, n, 1]));
        }),
    ));
    for kind in [b"stts", b"stss", b"stco", b"co64"] {
        cases.push((
            "table count 2^32-1",
            crafted(&m.target, 0, |t| {
                if kind == b"co64" {
                    drop_table(t, b"stco");
                }
                set_table(t, kind, table(&[u32::MAX, 1, 1]));
            }),
        ));
    }
    // stts covering 2^32-1 samples with one entry.
    cases.push((
        "stts one entry of 2^32-1 samples",
        crafted(&m.target, 0, |t| {
            set_table(t, b"stts", table(&[1, u32::MAX, 512]));
        }),
    ));
    // A large but consistent-looking index: 250,000 chunks (1 MB of stco) and 80,000 stsc
    // entries of which only the first applies. A lookup per chunk that scans the entries
    // is 2 * 10^10 steps.
    let chunks = 250_000u32;
    let runs = 80_000u32;
    let mut stco = vec![chunks];
    stco.extend(std::iter::repeat_n(48u32, chunks as usize));
    let mut stsc = vec![runs, 1, 1, 1];
    for _ in 1..runs {
        stsc.extend_from_slice(&[u32::MAX, 1, 1]);
    }
    cases.push((
        "stsc 80k entries x stco 250k chunks",
        crafted(&m.target, 0, |t| {
            set_table(t, b"stco", table(&stco));
            set_table(t, b"stsc", table(&stsc));
        }),
    ));
    // The same with a sample per chunk and sizes to match: a consistent index that is
    // simply large (must be accepted or refused in linear time).
    let mut stsz = vec![0, chunks];
    stsz.extend(std::iter::repeat_n(1u32, chunks as usize));
    cases.push((
        "250k chunks, consistent",
        crafted(&m.target, 2 * chunks as usize, |t| {
            set_table(t, b"stco", table(&stco));
            set_table(t, b"stsc", table(&[1, 1, 1, 1]));
            set_table(t, b"stsz", table(&stsz));
            set_table(t, b"stts", table(&[1, chunks, 512]));
            set_table(t, b"stss", table(&[1, 1]));
        }),
    ));
    // Boxes nested 100,000 deep (containers inside containers).
    let mut deep = Vec::new();
    for _ in 0..100_000 {
        let mut b = ((deep.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"trak");
        b.extend_from_slice(&deep);
        deep = b;
        if deep.len() > 4 << 20 {
            break;
        }
    }
    cases.push((
        "trak nested deep in moov",
        crafted(&m.target, 0, |t| {
            t.push(B::Leaf(*b"trak", deep[8..].to_vec()));
        }),
    ));
    // 64-bit box sizes at the extremes.
    // (16 and 17 make valid files: an empty box, then zeros that read as a box running to
    // the end of the file.)
    for size in [0u64, 1, 15, 16, 17, u32::MAX as u64, 1 << 63, u64::MAX] {
        let mut b = 1u32.to_be_bytes().to_vec();
        b.extend_from_slice(b"mdat");
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(&[0; 32]);
        let mut f = m.target.clone();
        f.extend_from_slice(&b);
        let name = if size == 16 || size == 17 {
            "64-bit box size, valid"
        } else {
            "64-bit box size"
        };
        cases.push((name, f));
    }
    let d = case_dir(s);
    let p = d.path().join("crafted.mp4");
    for (name, bytes) in &cases {
        std::fs::write(&p, bytes).unwrap();
        let r = fz
            .call(name, bytes.len(), || mp4::read_index(&p), |r| r.is_ok())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {}",
            match &r {
                Ok(ix) => format!("accepted, {} frames", ix.frames),
                Err(e) => format!("refused: {e}"),
            }
        );
        if !name.ends_with("consistent") && !name.ends_with("valid") {
            assert!(r.is_err(), "{name} must be refused");
        }
        // And the journaled operations on the same file.
        journaled(&fz, s, Some(bytes), &m.segment, "append", 0)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        journaled(&fz, s, Some(bytes), &m.segment, "truncate", 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        journaled(&fz, s, None, bytes, "append", 0).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    fz.report();
}
