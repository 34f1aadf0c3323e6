//! MP4 box surgery without FFmpeg: reading the sample index of a single-video-track MP4,
//! appending an encoded episode segment to a growing dataset MP4 in O(segment + index), and
//! truncating a file to its first N samples.
//!
//! A dataset MP4 is laid out `ftyp | mdat | mdat | ... | moov` with the index (`moov`) last.
//! Appending records the old `moov` in the undo journal, truncates the file at it, writes a
//! new `mdat` holding the segment's sample bytes and then a new `moov` whose sample tables
//! cover the old and the new samples. Old sample data is never read or copied. Every box
//! outside the sample table (`stbl`) is kept byte for byte from the first file; only the
//! durations (`mvhd`, `tkhd`, `mdhd`, `elst`) and the `btrt` average bit rate are updated.

use reel_core::journal::Journal;
use reel_core::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Internal parse result: a message that the public functions wrap with the file's path.
type R<T> = std::result::Result<T, String>;

/// Boxes whose payload is a list of boxes that the surgery needs to walk into.
const CONTAINERS: [&[u8; 4]; 6] = [b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl"];

/// Size of a VisualSampleEntry before its child boxes (8-byte box header + 78 bytes).
const VISUAL_ENTRY_HEADER: usize = 86;

/// What an MP4's single video track holds (parsed from boxes, no FFmpeg).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackIndex {
    /// Media timescale (`mdhd`), e.g. 15360 at 30 fps.
    pub timescale: u32,
    /// Number of samples (frames).
    pub frames: u64,
    /// Sum of all sample durations, in `timescale` ticks.
    pub duration_ticks: u64,
    /// Number of sync samples (keyframes); all samples when the file has no `stss`.
    pub sync_samples: u64,
    /// Sample entry type: `b"av01"`, `b"avc1"`, `b"hvc1"`, ...
    pub sample_entry: [u8; 4],
    /// Byte offset of the `moov` box.
    pub moov_offset: u64,
    /// File length in bytes.
    pub file_len: u64,
}

/// The result of [`append_segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Where the appended samples start, in `timescale` ticks (the old track duration).
    pub start_ticks: u64,
    /// Duration of the appended samples, in `timescale` ticks.
    pub duration_ticks: u64,
    /// Media timescale of the track.
    pub timescale: u32,
    /// Samples in the target after the append.
    pub frames_total: u64,
    /// Target file length after the append.
    pub file_bytes: u64,
}

impl Appended {
    /// Duration of the appended samples in seconds.
    pub fn duration_s(&self) -> f64 {
        self.duration_ticks as f64 / self.timescale as f64
    }
}

// ---------------------------------------------------------------------------------------
// Generic box tree
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Atom {
    kind: [u8; 4],
    body: Body,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Leaf(Vec<u8>),
    Children(Vec<Atom>),
}

fn kind_str(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

fn be16(b: &[u8], i: usize) -> R<u16> {
    b.get(i..i + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("box truncated at byte {i}"))
}

fn be32(b: &[u8], i: usize) -> R<u32> {
    b.get(i..i + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("box truncated at byte {i}"))
}

fn be64(b: &[u8], i: usize) -> R<u64> {
    b.get(i..i + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_be_bytes(a)
        })
        .ok_or_else(|| format!("box truncated at byte {i}"))
}

fn put32(b: &mut [u8], i: usize, v: u32) -> R<()> {
    let s = b
        .get_mut(i..i + 4)
        .ok_or_else(|| format!("box too short to write at byte {i}"))?;
    s.copy_from_slice(&v.to_be_bytes());
    Ok(())
}

fn put64(b: &mut [u8], i: usize, v: u64) -> R<()> {
    let s = b
        .get_mut(i..i + 8)
        .ok_or_else(|| format!("box too short to write at byte {i}"))?;
    s.copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Fewest file bytes one sample can take (its `stsz` entry, or its data): bounds counts.
const MIN_SAMPLE_BYTES: u64 = 4;

/// One box inside a buffer: (kind, header length, body range).
type BoxSpan = ([u8; 4], usize, std::ops::Range<usize>);

/// Splits `buf` into boxes.
fn split_boxes(buf: &[u8]) -> R<Vec<BoxSpan>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < buf.len() {
        if buf.len() - i < 8 {
            return Err(format!(
                "{} stray bytes at the end of a box list",
                buf.len() - i
            ));
        }
        let size32 = be32(buf, i)?;
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&buf[i + 4..i + 8]);
        let (hdr, size) = match size32 {
            1 => (
                16usize,
                usize::try_from(be64(buf, i + 8)?).map_err(|_| "box size too large".to_string())?,
            ),
            0 => (8usize, buf.len() - i),
            s => (8usize, s as usize),
        };
        if size < hdr || size > buf.len() - i {
            return Err(format!(
                "box '{}' of {size} bytes overruns its parent",
                kind_str(&kind)
            ));
        }
        out.push((kind, hdr, i + hdr..i + size));
        i += size;
    }
    Ok(out)
}

/// Deepest nesting of container boxes accepted (a real moov nests 6 deep).
const MAX_DEPTH: usize = 16;

fn parse_atoms(buf: &[u8]) -> R<Vec<Atom>> {
    parse_atoms_at(buf, 0)
}

fn parse_atoms_at(buf: &[u8], depth: usize) -> R<Vec<Atom>> {
    if depth > MAX_DEPTH {
        return Err(format!("boxes nested more than {MAX_DEPTH} deep"));
    }
    let mut out = Vec::new();
    for (kind, _, range) in split_boxes(buf)? {
        let body = &buf[range];
        let body = if CONTAINERS.contains(&&kind) {
            Body::Children(parse_atoms_at(body, depth + 1)?)
        } else {
            Body::Leaf(body.to_vec())
        };
        out.push(Atom { kind, body });
    }
    Ok(out)
}

fn box_header(kind: &[u8; 4], body_len: u64, out: &mut Vec<u8>) {
    if body_len + 8 > u32::MAX as u64 {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(&(body_len + 16).to_be_bytes());
    } else {
        out.extend_from_slice(&((body_len + 8) as u32).to_be_bytes());
        out.extend_from_slice(kind);
    }
}

fn serialize(atoms: &[Atom], out: &mut Vec<u8>) {
    for a in atoms {
        match &a.body {
            Body::Leaf(b) => {
                box_header(&a.kind, b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Body::Children(c) => {
                let mut body = Vec::new();
                serialize(c, &mut body);
                box_header(&a.kind, body.len() as u64, out);
                out.extend_from_slice(&body);
            }
        }
    }
}

fn find<'a>(atoms: &'a [Atom], kind: &[u8; 4]) -> R<&'a Atom> {
    atoms
        .iter()
        .find(|a| &a.kind == kind)
        .ok_or_else(|| format!("missing '{}' box", kind_str(kind)))
}

fn find_mut<'a>(atoms: &'a mut [Atom], kind: &[u8; 4]) -> R<&'a mut Atom> {
    atoms
        .iter_mut()
        .find(|a| &a.kind == kind)
        .ok_or_else(|| format!("missing '{}' box", kind_str(kind)))
}

fn kids(a: &Atom) -> R<&[Atom]> {
    match &a.body {
        Body::Children(c) => Ok(c),
        Body::Leaf(_) => Err(format!("'{}' is not a container", kind_str(&a.kind))),
    }
}

fn kids_mut(a: &mut Atom) -> R<&mut Vec<Atom>> {
    match &mut a.body {
        Body::Children(c) => Ok(c),
        Body::Leaf(_) => Err(format!("'{}' is not a container", kind_str(&a.kind))),
    }
}

fn leaf(a: &Atom) -> R<&[u8]> {
    match &a.body {
        Body::Leaf(b) => Ok(b),
        Body::Children(_) => Err(format!("'{}' is a container", kind_str(&a.kind))),
    }
}

fn leaf_mut(a: &mut Atom) -> R<&mut Vec<u8>> {
    match &mut a.body {
        Body::Leaf(b) => Ok(b),
        Body::Children(_) => Err(format!("'{}' is a container", kind_str(&a.kind))),
    }
}

// ---------------------------------------------------------------------------------------
// The sample table of one video track, expanded per sample
// ---------------------------------------------------------------------------------------

/// One video track's sample table, expanded to one entry per sample / chunk so that two
/// tables can be concatenated and re-encoded.
#[derive(Debug, Clone, PartialEq)]
struct Track {
    movie_timescale: u32,
    timescale: u32,
    /// The whole `stsd` payload.
    stsd: Vec<u8>,
    sample_entry: [u8; 4],
    sizes: Vec<u32>,
    deltas: Vec<u32>,
    sync: Vec<bool>,
    /// `sdtp` flags, one byte per sample, when the track has them.
    sdtp: Option<Vec<u8>>,
    chunk_offsets: Vec<u64>,
    chunk_samples: Vec<u32>,
    sample_description_index: u32,
    /// `ctts` composition offsets (pts − dts), one per sample, when the track has them.
    ctts: Option<Vec<i64>>,
    /// The edit list's media time: where presentation starts in the media's time (a decode
    /// delay D frames shows as D frames here and a constant D-frame `ctts`).
    media_time: i64,
}

impl Track {
    fn duration_ticks(&self) -> u64 {
        self.deltas.iter().map(|&d| d as u64).sum()
    }

    /// Byte extent of every chunk: (offset, bytes).
    fn chunk_extents(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(self.chunk_offsets.len());
        let mut s = 0usize;
        for (&off, &n) in self.chunk_offsets.iter().zip(&self.chunk_samples) {
            let bytes: u64 = self.sizes[s..s + n as usize]
                .iter()
                .map(|&x| x as u64)
                .sum();
            out.push((off, bytes));
            s += n as usize;
        }
        out
    }
}

fn full_box_version(b: &[u8]) -> R<u8> {
    b.first()
        .copied()
        .ok_or_else(|| "empty full box".to_string())
}

/// Offset of the timescale field in `mvhd` / `mdhd` (identical layouts up to duration).
fn timescale_offset(version: u8) -> usize {
    if version == 1 {
        20
    } else {
        12
    }
}

/// Boxes allowed in `stbl`; anything else (per-sample tables reel cannot merge) is refused.
const STBL_KNOWN: [&[u8; 4]; 8] = [
    b"stsd", b"stts", b"stss", b"stsz", b"stsc", b"stco", b"co64", b"ctts",
];

/// The track of `moov`. `file_len` bounds every count read from the tables: a sample needs
/// at least [`MIN_SAMPLE_BYTES`] of the file (its `stsz` entry, or its data), so nothing is
/// allocated beyond a small multiple of the file's size whatever the tables claim.
fn parse_track(moov: &[Atom], file_len: u64) -> R<Track> {
    let mvhd = leaf(find(moov, b"mvhd")?)?;
    let movie_timescale = be32(mvhd, timescale_offset(full_box_version(mvhd)?))?;
    let traks: Vec<&Atom> = moov.iter().filter(|a| &a.kind == b"trak").collect();
    if traks.len() != 1 {
        return Err(format!("expected exactly one track, found {}", traks.len()));
    }
    let trak = kids(traks[0])?;
    let mdia = kids(find(trak, b"mdia")?)?;
    let hdlr = leaf(find(mdia, b"hdlr")?)?;
    let handler = hdlr
        .get(8..12)
        .ok_or_else(|| "hdlr truncated".to_string())?;
    if handler != b"vide" {
        return Err(format!(
            "the track is not video (handler '{}')",
            String::from_utf8_lossy(handler)
        ));
    }
    let mdhd = leaf(find(mdia, b"mdhd")?)?;
    let timescale = be32(mdhd, timescale_offset(full_box_version(mdhd)?))?;
    if timescale == 0 || movie_timescale == 0 {
        return Err("zero timescale".to_string());
    }
    let media_time = match trak.iter().find(|a| &a.kind == b"edts") {
        None => 0,
        Some(edts) => match kids(edts)?.iter().find(|a| &a.kind == b"elst") {
            None => 0,
            Some(elst) => elst_media_time(leaf(elst)?)?,
        },
    };
    let stbl = kids(find(kids(find(mdia, b"minf")?)?, b"stbl")?)?;
    for a in stbl {
        if &a.kind != b"sdtp" && !STBL_KNOWN.contains(&&a.kind) {
            return Err(format!(
                "unsupported box '{}' in the sample table",
                kind_str(&a.kind)
            ));
        }
    }
    let stsd = leaf(find(stbl, b"stsd")?)?.to_vec();
    if be32(&stsd, 4)? != 1 {
        return Err(format!(
            "expected one sample entry in stsd, found {}",
            be32(&stsd, 4)?
        ));
    }
    let mut sample_entry = [0u8; 4];
    sample_entry.copy_from_slice(
        stsd.get(12..16)
            .ok_or_else(|| "stsd truncated".to_string())?,
    );

    // stsz
    let stsz = leaf(find(stbl, b"stsz")?)?;
    let const_size = be32(stsz, 4)?;
    let count = be32(stsz, 8)? as usize;
    let max_samples = file_len / MIN_SAMPLE_BYTES;
    let fits = if const_size == 0 {
        (count as u64) <= max_samples && count as u64 <= (stsz.len() as u64).saturating_sub(12) / 4
    } else {
        (count as u64) <= max_samples
            && (count as u64).saturating_mul(const_size as u64) <= file_len
    };
    if !fits {
        return Err(format!(
            "stsz claims {count} samples{}, more than a {file_len}-byte file can hold",
            if const_size != 0 {
                format!(" of {const_size} bytes")
            } else {
                String::new()
            }
        ));
    }
    let sizes: Vec<u32> = if const_size != 0 {
        vec![const_size; count]
    } else {
        (0..count)
            .map(|k| be32(stsz, 12 + 4 * k))
            .collect::<R<_>>()?
    };

    // stts
    let stts = leaf(find(stbl, b"stts")?)?;
    let n = be32(stts, 4)? as usize;
    if n as u64 > (stts.len() as u64).saturating_sub(8) / 8 {
        return Err(format!("stts claims {n} entries in {} bytes", stts.len()));
    }
    let mut deltas = Vec::with_capacity(count);
    for k in 0..n {
        let c = be32(stts, 8 + 8 * k)? as usize;
        let d = be32(stts, 12 + 8 * k)?;
        if deltas.len() + c > count {
            return Err(format!("stts covers more samples than stsz's {count}"));
        }
        deltas.extend(std::iter::repeat_n(d, c));
    }
    if deltas.len() != count {
        return Err(format!(
            "stts covers {} samples, stsz {count}",
            deltas.len()
        ));
    }

    // stss
    let sync = match stbl.iter().find(|a| &a.kind == b"stss") {
        None => vec![true; count],
        Some(a) => {
            let b = leaf(a)?;
            let n = be32(b, 4)? as usize;
            if n as u64 > (b.len() as u64).saturating_sub(8) / 4 {
                return Err(format!("stss claims {n} entries in {} bytes", b.len()));
            }
            let mut s = vec![false; count];
            for k in 0..n {
                let idx = be32(b, 8 + 4 * k)? as usize;
                if idx == 0 || idx > count {
                    return Err(format!("stss names sample {idx} of {count}"));
                }
                s[idx - 1] = true;
            }
            s
        }
    };

    let sdtp = match stbl.iter().find(|a| &a.kind == b"sdtp") {
        None => None,
        Some(a) => {
            let b = leaf(a)?;
            let flags = b.get(4..).ok_or_else(|| "sdtp truncated".to_string())?;
            if flags.len() != count {
                return Err(format!(
                    "sdtp has {} entries for {count} samples",
                    flags.len()
                ));
            }
            Some(flags.to_vec())
        }
    };

    // composition offsets
    let ctts = match stbl.iter().find(|a| &a.kind == b"ctts") {
        None => None,
        Some(a) => {
            let b = leaf(a)?;
            let signed = full_box_version(b)? == 1;
            let n = be32(b, 4)? as usize;
            if n as u64 > (b.len() as u64).saturating_sub(8) / 8 {
                return Err(format!("ctts claims {n} entries in {} bytes", b.len()));
            }
            let mut offs = Vec::with_capacity(count);
            for k in 0..n {
                let c = be32(b, 8 + 8 * k)? as usize;
                let raw = be32(b, 12 + 8 * k)?;
                let o = if signed {
                    raw as i32 as i64
                } else {
                    raw as i64
                };
                if offs.len() + c > count {
                    return Err(format!("ctts covers more samples than stsz's {count}"));
                }
                offs.extend(std::iter::repeat_n(o, c));
            }
            if offs.len() != count {
                return Err(format!("ctts covers {} samples, stsz {count}", offs.len()));
            }
            Some(offs)
        }
    };

    // chunk offsets
    let chunk_offsets: Vec<u64> = if let Some(a) = stbl.iter().find(|a| &a.kind == b"stco") {
        let b = leaf(a)?;
        let n = be32(b, 4)? as usize;
        if n as u64 > (b.len() as u64).saturating_sub(8) / 4 {
            return Err(format!("stco claims {n} chunks in {} bytes", b.len()));
        }
        (0..n)
            .map(|k| be32(b, 8 + 4 * k).map(|v| v as u64))
            .collect::<R<_>>()?
    } else {
        let b = leaf(find(stbl, b"co64")?)?;
        let n = be32(b, 4)? as usize;
        if n as u64 > (b.len() as u64).saturating_sub(8) / 8 {
            return Err(format!("co64 claims {n} chunks in {} bytes", b.len()));
        }
        (0..n).map(|k| be64(b, 8 + 8 * k)).collect::<R<_>>()?
    };

    // stsc
    let stsc = leaf(find(stbl, b"stsc")?)?;
    let n = be32(stsc, 4)? as usize;
    if n as u64 > (stsc.len() as u64).saturating_sub(8) / 12 {
        return Err(format!("stsc claims {n} entries in {} bytes", stsc.len()));
    }
    let mut entries = Vec::with_capacity(n);
    for k in 0..n {
        entries.push((
            be32(stsc, 8 + 12 * k)?,
            be32(stsc, 12 + 12 * k)?,
            be32(stsc, 16 + 12 * k)?,
        ));
    }
    let sample_description_index = entries.first().map(|e| e.2).unwrap_or(1);
    if entries.iter().any(|e| e.2 != sample_description_index) {
        return Err("stsc uses several sample descriptions".to_string());
    }
    // Each entry covers the chunks from its first chunk to the next entry's: entries must
    // come in chunk order, which lets one pass assign every chunk (a search per chunk was
    // quadratic: 30 s for a 2 MB index).
    if entries.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err("stsc entries are not in chunk order".to_string());
    }
    let mut chunk_samples = Vec::with_capacity(chunk_offsets.len());
    let mut e = 0usize;
    for c in 1..=chunk_offsets.len() as u64 {
        while entries.get(e + 1).is_some_and(|x| x.0 as u64 <= c) {
            e += 1;
        }
        match entries.get(e) {
            Some(x) if x.0 as u64 <= c => chunk_samples.push(x.1),
            _ => return Err(format!("stsc has no entry for chunk {c}")),
        }
    }
    let total: u64 = chunk_samples.iter().map(|&x| x as u64).sum();
    if total != count as u64 {
        return Err(format!("stsc maps {total} samples, stsz has {count}"));
    }
    Ok(Track {
        movie_timescale,
        timescale,
        stsd,
        sample_entry,
        sizes,
        deltas,
        sync,
        sdtp,
        chunk_offsets,
        chunk_samples,
        sample_description_index,
        ctts,
        media_time,
    })
}

/// The media time of an edit list: its one edit (after an optional leading empty edit, which
/// reel never writes and refuses) says where presentation starts in the media.
fn elst_media_time(b: &[u8]) -> R<i64> {
    let v1 = full_box_version(b)? == 1;
    let n = be32(b, 4)?;
    if n != 1 {
        return Err(format!(
            "the edit list has {n} edits; reel appends need exactly one"
        ));
    }
    Ok(if v1 {
        be64(b, 8 + 8)? as i64
    } else {
        be32(b, 8 + 4)? as i32 as i64
    })
}

/// Child boxes of the single sample entry inside an `stsd` payload: (kind, body range), in
/// `stsd` coordinates. Empty when the entry is not a visual sample entry with boxes.
fn entry_children(stsd: &[u8]) -> R<Vec<([u8; 4], std::ops::Range<usize>)>> {
    let size = be32(stsd, 8)? as usize;
    let entry = stsd
        .get(8..8 + size)
        .ok_or_else(|| "stsd sample entry truncated".to_string())?;
    if entry.len() < VISUAL_ENTRY_HEADER {
        return Ok(Vec::new());
    }
    let base = 8 + VISUAL_ENTRY_HEADER;
    Ok(split_boxes(&entry[VISUAL_ENTRY_HEADER..])?
        .into_iter()
        .map(|(k, _, r)| (k, r.start + base..r.end + base))
        .collect())
}

/// The sample entry's bytes without its `btrt` box (bit rates differ between segments).
fn entry_signature(stsd: &[u8]) -> R<Vec<u8>> {
    let size = be32(stsd, 8)? as usize;
    let entry = stsd
        .get(8..8 + size)
        .ok_or_else(|| "stsd sample entry truncated".to_string())?;
    let mut sig = entry
        .get(4..VISUAL_ENTRY_HEADER.min(entry.len()))
        .unwrap_or_default()
        .to_vec();
    for (kind, r) in entry_children(stsd)? {
        if &kind != b"btrt" {
            sig.extend_from_slice(&kind);
            sig.extend_from_slice(&stsd[r]);
        }
    }
    Ok(sig)
}

/// Sets `btrt`'s average bit rate (and the max when it was just the average) for `t`.
#[cfg(test)]
fn update_btrt(t: &mut Track) -> R<()> {
    t.stsd = stsd_with_btrt(t)?;
    Ok(())
}

/// `t`'s `stsd` with `btrt`'s average bit rate (and the max when it was just the average)
/// set for `t`'s samples.
fn stsd_with_btrt(t: &Track) -> R<Vec<u8>> {
    let mut stsd = t.stsd.clone();
    let ticks = t.duration_ticks();
    if ticks == 0 {
        return Ok(stsd);
    }
    let bytes: u64 = t.sizes.iter().map(|&x| x as u64).sum();
    let avg =
        ((bytes as u128 * 8 * t.timescale as u128) / ticks as u128).min(u32::MAX as u128) as u32;
    for (kind, r) in entry_children(&stsd)? {
        if &kind == b"btrt" && r.len() >= 12 {
            let old_max = be32(&stsd, r.start + 4)?;
            let old_avg = be32(&stsd, r.start + 8)?;
            let max = if old_max <= old_avg {
                avg
            } else {
                old_max.max(avg)
            };
            put32(&mut stsd, r.start + 4, max)?;
            put32(&mut stsd, r.start + 8, avg)?;
        }
    }
    Ok(stsd)
}

fn full_box(version: u8, flags: u32) -> Vec<u8> {
    let mut v = flags.to_be_bytes().to_vec();
    v[0] = version;
    v
}

fn build_stbl(t: &Track) -> Vec<Atom> {
    let leafb = |kind: &[u8; 4], body: Vec<u8>| Atom {
        kind: *kind,
        body: Body::Leaf(body),
    };
    let mut out = vec![leafb(b"stsd", t.stsd.clone())];

    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &d in &t.deltas {
        match runs.last_mut() {
            Some((c, dd)) if *dd == d => *c += 1,
            _ => runs.push((1, d)),
        }
    }
    let mut b = full_box(0, 0);
    b.extend_from_slice(&(runs.len() as u32).to_be_bytes());
    for (c, d) in runs {
        b.extend_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&d.to_be_bytes());
    }
    out.push(leafb(b"stts", b));

    if let Some(offs) = t.ctts.as_ref().filter(|o| o.iter().any(|&x| x != 0)) {
        let signed = offs.iter().any(|&x| x < 0);
        let mut runs: Vec<(u32, i64)> = Vec::new();
        for &o in offs {
            match runs.last_mut() {
                Some((c, oo)) if *oo == o => *c += 1,
                _ => runs.push((1, o)),
            }
        }
        let mut b = full_box(u8::from(signed), 0);
        b.extend_from_slice(&(runs.len() as u32).to_be_bytes());
        for (c, o) in runs {
            b.extend_from_slice(&c.to_be_bytes());
            b.extend_from_slice(&(o as i32 as u32).to_be_bytes());
        }
        out.push(leafb(b"ctts", b));
    }

    if t.sync.iter().any(|s| !s) {
        let idx: Vec<u32> = t
            .sync
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let mut b = full_box(0, 0);
        b.extend_from_slice(&(idx.len() as u32).to_be_bytes());
        for i in idx {
            b.extend_from_slice(&i.to_be_bytes());
        }
        out.push(leafb(b"stss", b));
    }

    if let Some(flags) = &t.sdtp {
        let mut b = full_box(0, 0);
        b.extend_from_slice(flags);
        out.push(leafb(b"sdtp", b));
    }

    let mut runs: Vec<(u32, u32)> = Vec::new(); // (first_chunk, samples_per_chunk)
    for (i, &n) in t.chunk_samples.iter().enumerate() {
        if runs.last().map(|r| r.1) != Some(n) {
            runs.push((i as u32 + 1, n));
        }
    }
    let mut b = full_box(0, 0);
    b.extend_from_slice(&(runs.len() as u32).to_be_bytes());
    for (first, n) in runs {
        b.extend_from_slice(&first.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&t.sample_description_index.to_be_bytes());
    }
    out.push(leafb(b"stsc", b));

    let mut b = full_box(0, 0);
    let uniform = t
        .sizes
        .first()
        .filter(|&&s| s != 0 && t.sizes.iter().all(|&x| x == s))
        .copied();
    b.extend_from_slice(&uniform.unwrap_or(0).to_be_bytes());
    b.extend_from_slice(&(t.sizes.len() as u32).to_be_bytes());
    if uniform.is_none() {
        for s in &t.sizes {
            b.extend_from_slice(&s.to_be_bytes());
        }
    }
    out.push(leafb(b"stsz", b));

    let mut b = full_box(0, 0);
    b.extend_from_slice(&(t.chunk_offsets.len() as u32).to_be_bytes());
    if t.chunk_offsets.iter().any(|&o| o > u32::MAX as u64) {
        for o in &t.chunk_offsets {
            b.extend_from_slice(&o.to_be_bytes());
        }
        out.push(leafb(b"co64", b));
    } else {
        for &o in &t.chunk_offsets {
            b.extend_from_slice(&(o as u32).to_be_bytes());
        }
        out.push(leafb(b"stco", b));
    }
    out
}

/// Writes a duration field of a version-0/1 full box at `off0`/`off1`.
fn set_duration(b: &mut [u8], off0: usize, off1: usize, value: u64, what: &str) -> R<()> {
    if full_box_version(b)? == 1 {
        put64(b, off1, value)
    } else {
        let v = u32::try_from(value)
            .map_err(|_| format!("{what} duration {value} does not fit a version-0 box"))?;
        put32(b, off0, v)
    }
}

/// Builds a `moov` (header included) from `template` (the moov's children) with `t`'s tables.
fn build_moov(template: &[Atom], t: &Track) -> R<Vec<u8>> {
    // Only the sample description changes (btrt): the per-sample tables are never copied.
    let stsd = stsd_with_btrt(t)?;
    let ticks = t.duration_ticks();
    let movie = (ticks as u128 * t.movie_timescale as u128).div_ceil(t.timescale as u128);
    let movie = u64::try_from(movie).map_err(|_| "movie duration overflows".to_string())?;
    let mut moov = template.to_vec();
    set_duration(
        leaf_mut(find_mut(&mut moov, b"mvhd")?)?,
        16,
        24,
        movie,
        "mvhd",
    )?;
    let trak = kids_mut(find_mut(&mut moov, b"trak")?)?;
    set_duration(leaf_mut(find_mut(trak, b"tkhd")?)?, 20, 28, movie, "tkhd")?;
    if let Ok(edts) = find_mut(trak, b"edts") {
        let elst = leaf_mut(find_mut(kids_mut(edts)?, b"elst")?)?;
        let version = full_box_version(elst)?;
        let mut b = elst[..4.min(elst.len())].to_vec();
        b.extend_from_slice(&1u32.to_be_bytes());
        if version == 1 {
            b.extend_from_slice(&movie.to_be_bytes());
            b.extend_from_slice(&t.media_time.to_be_bytes());
        } else {
            let m = u32::try_from(movie)
                .map_err(|_| format!("elst duration {movie} does not fit a version-0 box"))?;
            let mt = i32::try_from(t.media_time).map_err(|_| {
                format!(
                    "elst media time {} does not fit a version-0 box",
                    t.media_time
                )
            })?;
            b.extend_from_slice(&m.to_be_bytes());
            b.extend_from_slice(&mt.to_be_bytes());
        }
        b.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        *elst = b;
    }
    let mdia = kids_mut(find_mut(trak, b"mdia")?)?;
    set_duration(leaf_mut(find_mut(mdia, b"mdhd")?)?, 16, 24, ticks, "mdhd")?;
    let minf = kids_mut(find_mut(mdia, b"minf")?)?;
    let stbl = find_mut(minf, b"stbl")?;
    let mut tables = build_stbl(t);
    tables[0].body = Body::Leaf(stsd);
    stbl.body = Body::Children(tables);
    let mut body = Vec::new();
    serialize(&moov, &mut body);
    let mut out = Vec::with_capacity(body.len() + 16);
    box_header(b"moov", body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Concatenates `b` after `a` (taken, not copied: the tables of a long file are large);
/// `b`'s chunk offsets must already be final.
fn merge(a: Track, b: &Track) -> R<Track> {
    check_compatible(&a, b)?;
    let a_len = a.sizes.len();
    let mut t = a;
    t.sizes.extend_from_slice(&b.sizes);
    t.deltas.extend_from_slice(&b.deltas);
    t.sync.extend_from_slice(&b.sync);
    t.sdtp = match (t.sdtp.take(), &b.sdtp) {
        (None, None) => None,
        (x, y) => {
            let mut f = x.unwrap_or_else(|| vec![0; a_len]);
            f.extend(y.clone().unwrap_or_else(|| vec![0; b.sizes.len()]));
            Some(f)
        }
    };
    t.ctts = match (t.ctts.take(), &b.ctts) {
        (None, None) => None,
        (x, y) => {
            let mut o = x.unwrap_or_else(|| vec![0; a_len]);
            o.extend(y.clone().unwrap_or_else(|| vec![0; b.sizes.len()]));
            Some(o)
        }
    };
    t.chunk_offsets.extend_from_slice(&b.chunk_offsets);
    t.chunk_samples.extend_from_slice(&b.chunk_samples);
    if t.sizes.len() > u32::MAX as usize {
        return Err("too many samples for one MP4 track".to_string());
    }
    Ok(t)
}

fn check_compatible(a: &Track, b: &Track) -> R<()> {
    if a.timescale != b.timescale {
        return Err(format!(
            "timescale differs: target {} vs segment {} (different fps?)",
            a.timescale, b.timescale
        ));
    }
    if a.sample_entry != b.sample_entry {
        return Err(format!(
            "codec differs: target sample entry '{}' vs segment '{}'",
            kind_str(&a.sample_entry),
            kind_str(&b.sample_entry)
        ));
    }
    if entry_signature(&a.stsd)? != entry_signature(&b.stsd)? {
        let dims = |s: &[u8]| (be16(s, 8 + 32).unwrap_or(0), be16(s, 8 + 34).unwrap_or(0));
        let (aw, ah) = dims(&a.stsd);
        let (bw, bh) = dims(&b.stsd);
        return Err(format!(
            "sample description differs (target {aw}x{ah}, segment {bw}x{bh}; size, pixel format or encoder settings changed)"
        ));
    }
    if a.media_time != b.media_time {
        return Err(format!(
            "decode delay differs: target starts presentation at {} ticks, segment at {} (written by another reel version or encoder?)",
            a.media_time, b.media_time
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct TopBox {
    kind: [u8; 4],
    offset: u64,
    hdr: u64,
    size: u64,
}

impl TopBox {
    fn end(&self) -> u64 {
        self.offset + self.size
    }
}

struct Loaded {
    tops: Vec<TopBox>,
    moov: TopBox,
    moov_children: Vec<Atom>,
    track: Track,
    file_len: u64,
}

impl Loaded {
    fn moov_is_last(&self) -> bool {
        self.moov.end() == self.file_len
    }
}

fn scan_top(f: &mut File, len: u64, path: &Path) -> Result<Vec<TopBox>> {
    let mut out = Vec::new();
    let mut off = 0u64;
    while off < len {
        if len - off < 8 {
            return Err(Error::corrupt(
                path,
                format!("{} stray bytes after the last box", len - off),
            ));
        }
        f.seek(SeekFrom::Start(off))
            .map_err(|e| Error::io("seek", path, e))?;
        let mut h = [0u8; 16];
        let n = if len - off >= 16 { 16 } else { 8 };
        f.read_exact(&mut h[..n])
            .map_err(|e| Error::io("read box header", path, e))?;
        let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&h[4..8]);
        let (hdr, size) = match size32 {
            1 if n == 16 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&h[8..16]);
                (16, u64::from_be_bytes(a))
            }
            1 => return Err(Error::corrupt(path, "truncated 64-bit box header")),
            0 => (8, len - off),
            s => (8, s as u64),
        };
        if size < hdr || size > len - off {
            return Err(Error::corrupt(
                path,
                format!(
                    "top-level box '{}' at {off} claims {size} bytes, file has {}",
                    kind_str(&kind),
                    len - off
                ),
            ));
        }
        out.push(TopBox {
            kind,
            offset: off,
            hdr,
            size,
        });
        off += size;
    }
    Ok(out)
}

fn load(path: &Path) -> Result<Loaded> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let tops = scan_top(&mut f, file_len, path)?;
    let moovs: Vec<&TopBox> = tops.iter().filter(|b| &b.kind == b"moov").collect();
    if moovs.len() != 1 {
        return Err(Error::corrupt(
            path,
            format!(
                "expected one moov box, found {} (unfinished MP4?)",
                moovs.len()
            ),
        ));
    }
    let moov = *moovs[0];
    let body_len = usize::try_from(moov.size - moov.hdr)
        .map_err(|_| Error::corrupt(path, "moov too large"))?;
    let mut body = vec![0u8; body_len];
    f.seek(SeekFrom::Start(moov.offset + moov.hdr))
        .map_err(|e| Error::io("seek", path, e))?;
    f.read_exact(&mut body)
        .map_err(|e| Error::io("read moov", path, e))?;
    let moov_children =
        parse_atoms(&body).map_err(|m| Error::corrupt(path, format!("moov: {m}")))?;
    let track = parse_track(&moov_children, file_len).map_err(|m| Error::corrupt(path, m))?;
    Ok(Loaded {
        tops,
        moov,
        moov_children,
        track,
        file_len,
    })
}

/// Reads the sample index of `path`'s single video track.
pub fn read_index(path: &Path) -> Result<TrackIndex> {
    let l = load(path)?;
    let t = &l.track;
    Ok(TrackIndex {
        timescale: t.timescale,
        frames: t.sizes.len() as u64,
        duration_ticks: t.duration_ticks(),
        sync_samples: t.sync.iter().filter(|s| **s).count() as u64,
        sample_entry: t.sample_entry,
        moov_offset: l.moov.offset,
        file_len: l.file_len,
    })
}

/// The byte range holding all of a file's samples; it must lie inside one `mdat`.
fn sample_range(l: &Loaded, path: &Path) -> Result<(u64, u64)> {
    let ext = l.track.chunk_extents();
    let start = ext.iter().map(|e| e.0).min().unwrap_or(0);
    let end = ext
        .iter()
        .map(|e| e.0.saturating_add(e.1))
        .max()
        .unwrap_or(0);
    if ext.is_empty() {
        return Err(Error::corrupt(path, "the track has no samples"));
    }
    let inside = l
        .tops
        .iter()
        .any(|b| &b.kind == b"mdat" && b.offset + b.hdr <= start && end <= b.end());
    if !inside {
        return Err(Error::corrupt(
            path,
            format!("samples [{start}, {end}) do not lie inside one mdat box"),
        ));
    }
    Ok((start, end))
}

fn mdat_header(payload: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    box_header(b"mdat", payload, &mut h);
    h
}

/// Copies `len` bytes at `start` of `src` to the writer.
fn copy_range(
    src: &Path,
    start: u64,
    len: u64,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<()> {
    let mut f = File::open(src).map_err(|e| Error::io("open", src, e))?;
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("seek", src, e))?;
    let copied = std::io::copy(&mut f.take(len), out)
        .map_err(|e| Error::io("copy samples into", out_path, e))?;
    if copied != len {
        return Err(Error::corrupt(
            src,
            format!("expected {len} sample bytes at {start}, read {copied}"),
        ));
    }
    Ok(())
}

/// Appends the single video track of `segment` (an MP4 written by
/// [`EpisodeEncoder`](crate::EpisodeEncoder)) to `target`, creating `target` if absent.
/// Every check happens before `target` is touched; every change is journaled first.
pub fn append_segment(target: &Path, segment: &Path, journal: &mut Journal) -> Result<Appended> {
    let seg = load(segment)?;
    let (ds, de) = sample_range(&seg, segment)?;
    let payload = de - ds;
    let seg_ticks = seg.track.duration_ticks();
    let exists = target
        .try_exists()
        .map_err(|e| Error::io("stat", target, e))?;
    if !exists {
        let ftyp = seg
            .tops
            .iter()
            .find(|b| &b.kind == b"ftyp")
            .ok_or_else(|| Error::corrupt(segment, "no ftyp box"))?;
        let mut ftyp_bytes = vec![0u8; ftyp.size as usize];
        {
            let mut f = File::open(segment).map_err(|e| Error::io("open", segment, e))?;
            f.seek(SeekFrom::Start(ftyp.offset))
                .map_err(|e| Error::io("seek", segment, e))?;
            f.read_exact(&mut ftyp_bytes)
                .map_err(|e| Error::io("read ftyp", segment, e))?;
        }
        let hdr = mdat_header(payload);
        let payload_start = ftyp_bytes.len() as u64 + hdr.len() as u64;
        let mut t = seg.track;
        for o in &mut t.chunk_offsets {
            *o = *o - ds + payload_start;
        }
        let moov = build_moov(&seg.moov_children, &t).map_err(|m| Error::corrupt(segment, m))?;
        journal.record_create(target)?;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map_err(|e| Error::io("create", target, e))?;
        let mut w = BufWriter::new(f);
        w.write_all(&ftyp_bytes)
            .map_err(|e| Error::io("write", target, e))?;
        w.write_all(&hdr)
            .map_err(|e| Error::io("write", target, e))?;
        copy_range(segment, ds, payload, &mut w, target)?;
        w.write_all(&moov)
            .map_err(|e| Error::io("write moov", target, e))?;
        w.flush().map_err(|e| Error::io("write", target, e))?;
        return Ok(Appended {
            start_ticks: 0,
            duration_ticks: seg_ticks,
            timescale: t.timescale,
            frames_total: t.sizes.len() as u64,
            file_bytes: payload_start + payload + moov.len() as u64,
        });
    }

    let tgt = load(target)?;
    if !tgt.moov_is_last() {
        return Err(Error::corrupt(
            target,
            "the moov box is not at the end of the file (faststart layout?); cannot append",
        ));
    }
    check_compatible(&tgt.track, &seg.track).map_err(|m| {
        Error::Mismatch(format!(
            "cannot append {} to {}: {m}",
            segment.display(),
            target.display()
        ))
    })?;
    let hdr = mdat_header(payload);
    let payload_start = tgt.moov.offset + hdr.len() as u64;
    let mut s = seg.track;
    for o in &mut s.chunk_offsets {
        *o = *o - ds + payload_start;
    }
    let start_ticks = tgt.track.duration_ticks();
    let merged = merge(tgt.track, &s)
        .map_err(|m| Error::Mismatch(format!("cannot append {}: {m}", segment.display())))?;
    let moov = build_moov(&tgt.moov_children, &merged).map_err(|m| Error::corrupt(target, m))?;

    journal.record_tail(target, tgt.moov.offset)?;
    let f = OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(|e| Error::io("open for append", target, e))?;
    f.set_len(tgt.moov.offset)
        .map_err(|e| Error::io("truncate", target, e))?;
    let mut w = BufWriter::new(f);
    w.seek(SeekFrom::Start(tgt.moov.offset))
        .map_err(|e| Error::io("seek", target, e))?;
    w.write_all(&hdr)
        .map_err(|e| Error::io("write", target, e))?;
    copy_range(segment, ds, payload, &mut w, target)?;
    w.write_all(&moov)
        .map_err(|e| Error::io("write moov", target, e))?;
    w.flush().map_err(|e| Error::io("write", target, e))?;
    Ok(Appended {
        start_ticks,
        duration_ticks: seg_ticks,
        timescale: merged.timescale,
        frames_total: merged.sizes.len() as u64,
        file_bytes: payload_start + payload + moov.len() as u64,
    })
}

/// Truncates `path` so that its track only holds its first `keep_frames` samples: the sample
/// bytes after them are cut off and the `moov` is rewritten. Journaled like an append.
pub fn truncate_frames(path: &Path, keep_frames: u64, journal: &mut Journal) -> Result<()> {
    let l = load(path)?;
    let total = l.track.sizes.len() as u64;
    if keep_frames == 0 || keep_frames > total {
        return Err(Error::invalid(format!(
            "truncate {}: cannot keep {keep_frames} of {total} frames (keep between 1 and {total})",
            path.display()
        )));
    }
    if keep_frames == total {
        return Ok(());
    }
    if !l.moov_is_last() {
        return Err(Error::corrupt(
            path,
            "the moov box is not at the end of the file; cannot truncate",
        ));
    }
    let k = keep_frames as usize;
    let mut t = l.track;
    t.sizes.truncate(k);
    t.deltas.truncate(k);
    t.sync.truncate(k);
    if let Some(f) = &mut t.sdtp {
        f.truncate(k);
    }
    if let Some(o) = &mut t.ctts {
        o.truncate(k);
    }
    let mut left = k as u64;
    let mut nchunks = 0;
    for n in t.chunk_samples.iter_mut() {
        if left == 0 {
            break;
        }
        let take = (*n as u64).min(left);
        *n = take as u32;
        left -= take;
        nchunks += 1;
    }
    t.chunk_offsets.truncate(nchunks);
    t.chunk_samples.truncate(nchunks);
    let cut = t
        .chunk_extents()
        .iter()
        .map(|e| e.0 + e.1)
        .max()
        .unwrap_or(0);
    let mdat = l
        .tops
        .iter()
        .find(|b| &b.kind == b"mdat" && b.offset + b.hdr < cut && cut <= b.end())
        .copied()
        .ok_or_else(|| {
            Error::corrupt(path, format!("kept samples end at {cut}, outside any mdat"))
        })?;
    let moov = build_moov(&l.moov_children, &t).map_err(|m| Error::corrupt(path, m))?;

    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open for truncate", path, e))?;
    let mut w = BufWriter::new(f);
    if cut == mdat.end() {
        journal.record_tail(path, cut)?;
    } else {
        journal.record_tail(path, mdat.offset)?;
        let new_size = cut - mdat.offset;
        if mdat.hdr == 16 {
            w.seek(SeekFrom::Start(mdat.offset + 8))
                .map_err(|e| Error::io("seek", path, e))?;
            w.write_all(&new_size.to_be_bytes())
                .map_err(|e| Error::io("write mdat size", path, e))?;
        } else {
            let s = u32::try_from(new_size)
                .map_err(|_| Error::corrupt(path, "32-bit mdat larger than 4 GiB"))?;
            w.seek(SeekFrom::Start(mdat.offset))
                .map_err(|e| Error::io("seek", path, e))?;
            w.write_all(&s.to_be_bytes())
                .map_err(|e| Error::io("write mdat size", path, e))?;
        }
    }
    w.flush().map_err(|e| Error::io("write", path, e))?;
    w.get_ref()
        .set_len(cut)
        .map_err(|e| Error::io("truncate", path, e))?;
    w.seek(SeekFrom::Start(cut))
        .map_err(|e| Error::io("seek", path, e))?;
    w.write_all(&moov)
        .map_err(|e| Error::io("write moov", path, e))?;
    w.flush().map_err(|e| Error::io("write", path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leafa(kind: &[u8; 4], body: Vec<u8>) -> Atom {
        Atom {
            kind: *kind,
            body: Body::Leaf(body),
        }
    }
    fn cont(kind: &[u8; 4], c: Vec<Atom>) -> Atom {
        Atom {
            kind: *kind,
            body: Body::Children(c),
        }
    }

    /// A synthetic visual stsd with a btrt child.
    fn stsd(width: u16, avg: u32) -> Vec<u8> {
        let mut entry = vec![0u8; VISUAL_ENTRY_HEADER - 8];
        entry[24..26].copy_from_slice(&width.to_be_bytes());
        entry[26..28].copy_from_slice(&48u16.to_be_bytes());
        let mut kids = Vec::new();
        serialize(&[leafa(b"av1C", vec![0x81, 1, 2, 3])], &mut kids);
        let mut b = 0u32.to_be_bytes().to_vec();
        b.extend_from_slice(&avg.to_be_bytes());
        b.extend_from_slice(&avg.to_be_bytes());
        serialize(&[leafa(b"btrt", b)], &mut kids);
        entry.extend_from_slice(&kids);
        let mut out = full_box(0, 0);
        out.extend_from_slice(&1u32.to_be_bytes());
        box_header(b"av01", entry.len() as u64, &mut out);
        out.extend_from_slice(&entry);
        out
    }

    fn track(n: usize, off: u64, width: u16) -> Track {
        Track {
            movie_timescale: 1000,
            timescale: 15360,
            stsd: stsd(width, 1000),
            sample_entry: *b"av01",
            sizes: (0..n as u32).map(|i| 100 + i).collect(),
            deltas: vec![512; n],
            sync: (0..n).map(|i| i % 2 == 0).collect(),
            sdtp: None,
            chunk_offsets: vec![off, off + 1000],
            chunk_samples: vec![(n / 2) as u32, (n - n / 2) as u32],
            sample_description_index: 1,
            ctts: None,
            media_time: 0,
        }
    }

    fn moov_template(t: &Track) -> Vec<Atom> {
        let mut mvhd = full_box(0, 0);
        mvhd.extend_from_slice(&[0; 8]);
        mvhd.extend_from_slice(&1000u32.to_be_bytes());
        mvhd.extend_from_slice(&[0; 4 + 80]);
        let mut tkhd = full_box(0, 3);
        tkhd.extend_from_slice(&[0; 80]);
        let mut elst = full_box(0, 0);
        elst.extend_from_slice(&1u32.to_be_bytes());
        elst.extend_from_slice(&[0; 12]);
        let mut mdhd = full_box(0, 0);
        mdhd.extend_from_slice(&[0; 8]);
        mdhd.extend_from_slice(&t.timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mut hdlr = full_box(0, 0);
        hdlr.extend_from_slice(&[0, 0, 0, 0]);
        hdlr.extend_from_slice(b"vide");
        hdlr.extend_from_slice(&[0; 13]);
        vec![
            leafa(b"mvhd", mvhd),
            cont(
                b"trak",
                vec![
                    leafa(b"tkhd", tkhd),
                    cont(b"edts", vec![leafa(b"elst", elst)]),
                    cont(
                        b"mdia",
                        vec![
                            leafa(b"mdhd", mdhd),
                            leafa(b"hdlr", hdlr),
                            cont(
                                b"minf",
                                vec![leafa(b"vmhd", vec![0; 12]), cont(b"stbl", build_stbl(t))],
                            ),
                        ],
                    ),
                ],
            ),
            leafa(b"udta", b"keep-me".to_vec()),
        ]
    }

    #[test]
    fn tables_roundtrip_through_boxes() {
        let t = track(7, 48, 64);
        let bytes = build_moov(&moov_template(&t), &t).unwrap();
        let atoms = parse_atoms(&bytes).unwrap();
        assert_eq!(atoms.len(), 1);
        let back = parse_track(kids(&atoms[0]).unwrap(), u64::MAX).unwrap();
        assert_eq!(back.sizes, t.sizes);
        assert_eq!(back.deltas, t.deltas);
        assert_eq!(back.sync, t.sync);
        assert_eq!(back.chunk_offsets, t.chunk_offsets);
        assert_eq!(back.chunk_samples, t.chunk_samples);
        assert_eq!(back.duration_ticks(), 7 * 512);
        // udta kept byte for byte; mdhd/mvhd durations updated.
        let moov = kids(&atoms[0]).unwrap();
        assert_eq!(leaf(find(moov, b"udta").unwrap()).unwrap(), b"keep-me");
        assert_eq!(
            be32(leaf(find(moov, b"mvhd").unwrap()).unwrap(), 16).unwrap(),
            234
        ); // ceil(3584/15.36)
        let mdia =
            kids(find(kids(find(moov, b"trak").unwrap()).unwrap(), b"mdia").unwrap()).unwrap();
        assert_eq!(
            be32(leaf(find(mdia, b"mdhd").unwrap()).unwrap(), 16).unwrap(),
            7 * 512
        );
    }

    #[test]
    fn merge_shifts_and_concatenates() {
        let a = track(4, 48, 64);
        let b = track(3, 9000, 64);
        let m = merge(a.clone(), &b).unwrap();
        let stbl = build_stbl(&m);
        let stts = leaf(&stbl[1]).unwrap();
        assert_eq!(be32(stts, 4).unwrap(), 1, "equal-delta runs merge");
        assert_eq!(be32(stts, 8).unwrap(), 7);
        let stss = leaf(find(&stbl, b"stss").unwrap()).unwrap();
        let idx: Vec<u32> = (0..be32(stss, 4).unwrap() as usize)
            .map(|k| be32(stss, 8 + 4 * k).unwrap())
            .collect();
        assert_eq!(idx, vec![1, 3, 5, 7]);
        let stsc = leaf(find(&stbl, b"stsc").unwrap()).unwrap();
        // chunks: 2,2,1,2 -> runs (1,2), (3,1), (4,2)
        assert_eq!(be32(stsc, 4).unwrap(), 3);
        assert_eq!((be32(stsc, 8).unwrap(), be32(stsc, 12).unwrap()), (1, 2));
        assert_eq!((be32(stsc, 20).unwrap(), be32(stsc, 24).unwrap()), (3, 1));
        assert_eq!((be32(stsc, 32).unwrap(), be32(stsc, 36).unwrap()), (4, 2));
        assert_eq!(m.chunk_offsets, vec![48, 1048, 9000, 10000]);
    }

    #[test]
    fn large_offsets_switch_to_co64_and_back() {
        let a = track(2, 48, 64);
        let b = track(2, 5_000_000_000, 64);
        let m = merge(a.clone(), &b).unwrap();
        let stbl = build_stbl(&m);
        assert!(find(&stbl, b"co64").is_ok());
        assert!(find(&stbl, b"stco").is_err());
        let back = parse_track(
            kids(&parse_atoms(&build_moov(&moov_template(&m), &m).unwrap()).unwrap()[0]).unwrap(),
            u64::MAX,
        )
        .unwrap();
        assert_eq!(back.chunk_offsets[3], 5_000_001_000);
        assert!(find(&build_stbl(&a), b"stco").is_ok());
    }

    #[test]
    fn incompatible_tracks_are_refused() {
        let a = track(2, 48, 64);
        let b = track(2, 48, 640);
        assert!(merge(a.clone(), &b).unwrap_err().contains("64x48"));
        let mut c = track(2, 48, 64);
        c.timescale = 12800;
        assert!(merge(a.clone(), &c).unwrap_err().contains("timescale"));
        // btrt alone may differ.
        let mut d = track(2, 48, 64);
        d.stsd = stsd(64, 99999);
        assert!(merge(a.clone(), &d).is_ok());
    }

    #[test]
    fn composition_offsets_and_decode_delay_round_trip_and_merge() {
        // A one-frame decode delay, as LeRobot's H.264 files have: dts = pts - 512.
        let mut a = track(4, 48, 64);
        a.ctts = Some(vec![512; 4]);
        a.media_time = 512;
        let bytes = build_moov(&moov_template(&a), &a).unwrap();
        let back = parse_track(kids(&parse_atoms(&bytes).unwrap()[0]).unwrap(), u64::MAX).unwrap();
        assert_eq!(back.ctts, a.ctts);
        assert_eq!(back.media_time, 512);
        let mut b = track(3, 9000, 64);
        b.ctts = Some(vec![512; 3]);
        b.media_time = 512;
        let m = merge(a.clone(), &b).unwrap();
        assert_eq!(m.ctts.as_ref().unwrap().len(), 7);
        // A segment without the delay does not append to a file with it.
        let c = track(3, 9000, 64);
        assert!(merge(a.clone(), &c).unwrap_err().contains("decode delay"));
        // Negative offsets are written as a version-1 ctts.
        let mut d = track(2, 48, 64);
        d.ctts = Some(vec![-512, 0]);
        let bytes = build_moov(&moov_template(&d), &d).unwrap();
        let back = parse_track(kids(&parse_atoms(&bytes).unwrap()[0]).unwrap(), u64::MAX).unwrap();
        assert_eq!(back.ctts, Some(vec![-512, 0]));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_atoms(&[0, 0, 0, 50, b'm', b'o', b'o', b'v']).is_err());
        assert!(parse_atoms(&[0, 0, 0]).is_err());
    }

    #[test]
    fn large_mdat_uses_64_bit_size() {
        assert_eq!(mdat_header(100), [0, 0, 0, 108, b'm', b'd', b'a', b't']);
        let h = mdat_header(5_000_000_000);
        assert_eq!(h.len(), 16);
        assert_eq!(&h[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(be64(&h, 8).unwrap(), 5_000_000_016);
        // And a parsed 64-bit box header reads back.
        let mut buf = vec![0, 0, 0, 1, b'f', b'r', b'e', b'e'];
        buf.extend_from_slice(&20u64.to_be_bytes());
        buf.extend_from_slice(&[7, 7, 7, 7]);
        let spans = split_boxes(&buf).unwrap();
        assert_eq!(spans, vec![(*b"free", 16, 16..20)]);
    }

    #[test]
    fn btrt_average_is_recomputed() {
        let mut t = track(4, 48, 64);
        update_btrt(&mut t).unwrap();
        let bytes: u64 = t.sizes.iter().map(|&x| x as u64).sum();
        let want = (bytes * 8 * 15360 / (4 * 512)) as u32;
        let r = entry_children(&t.stsd)
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == b"btrt")
            .unwrap()
            .1;
        assert_eq!(be32(&t.stsd, r.start + 8).unwrap(), want);
        assert_eq!(be32(&t.stsd, r.start + 4).unwrap(), want);
    }
}
