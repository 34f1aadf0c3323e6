//! Crash-safe, in-place append of one row group to a parquet file.
//!
//! reel never keeps a parquet writer open (an open writer leaves a file without footer that
//! nothing can read). Instead every episode save appends one row group to a complete file:
//! the batch is encoded as a one-row-group parquet file in memory, its column chunks are
//! copied over the target's old footer, their offsets are shifted, and a new footer covering
//! all row groups is written. The old footer is saved in the [`Journal`] first, so a crash at
//! any point is undone by `reel_core::journal::recover`. The cost is O(episode + footer),
//! never O(file).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::{parquet_to_arrow_schema, ArrowWriter};
use parquet::basic::Compression;
use parquet::file::metadata::{
    KeyValue, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataReader,
    ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use reel_core::journal::Journal;
use reel_core::{Error, Result};

/// What the file looks like after an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub row_groups: usize,
    pub rows_total: u64,
    pub file_bytes: u64,
}

const MAGIC: &[u8; 4] = b"PAR1";

fn perr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// The writer settings used for every file reel writes (the same for every append, so the
/// row groups of one file are alike): SNAPPY, dictionary, chunk-level statistics, no page
/// index, no bloom filter.
pub fn writer_properties(kv: &[(String, String)]) -> WriterProperties {
    let kvs: Vec<KeyValue> = kv
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_offset_index_disabled(true)
        .set_bloom_filter_enabled(false)
        .set_key_value_metadata(if kvs.is_empty() { None } else { Some(kvs) })
        .build()
}

/// Encodes `batch` as a complete parquet file (one row group) in memory. `kv` goes both into
/// the footer's key-value metadata and into the Arrow schema's metadata embedded in
/// `ARROW:schema` (pyarrow, like pyarrow's own writer, takes the schema metadata from there).
pub fn encode_file(path: &Path, batch: &RecordBatch, kv: &[(String, String)]) -> Result<Vec<u8>> {
    let mut meta = batch.schema().metadata().clone();
    for (k, v) in kv {
        meta.insert(k.clone(), v.clone());
    }
    let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(meta));
    let batch = batch
        .clone()
        .with_schema(schema.clone())
        .map_err(|e| perr(path, e))?;
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(writer_properties(kv)))
        .map_err(|e| perr(path, e))?;
    w.write(&batch).map_err(|e| perr(path, e))?;
    w.close().map_err(|e| perr(path, e))?;
    Ok(buf)
}

/// Footer position and metadata of a complete parquet file held in memory.
fn parse_footer_bytes(path: &Path, bytes: &[u8]) -> Result<(u64, ParquetMetaData)> {
    let n = bytes.len();
    if n < 12 || &bytes[n - 4..] != MAGIC || &bytes[..4] != MAGIC {
        return Err(Error::corrupt(
            path,
            "not a parquet file (missing PAR1 magic)",
        ));
    }
    let mut len4 = [0u8; 4];
    len4.copy_from_slice(&bytes[n - 8..n - 4]);
    let mlen = u32::from_le_bytes(len4) as usize;
    if mlen + 12 > n {
        return Err(Error::corrupt(
            path,
            format!("footer length {mlen} exceeds file size {n}"),
        ));
    }
    let start = n - 8 - mlen;
    let md =
        ParquetMetaDataReader::decode_metadata(&bytes[start..n - 8]).map_err(|e| perr(path, e))?;
    Ok((start as u64, md))
}

/// Reads the footer of the file at `path`: (footer start, file length, metadata).
fn read_footer(path: &Path) -> Result<(u64, u64, ParquetMetaData)> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    if len < 12 {
        return Err(Error::corrupt(
            path,
            format!("{len} bytes is too short for a parquet file"),
        ));
    }
    let mut head = [0u8; 4];
    f.read_exact(&mut head)
        .map_err(|e| Error::io("read", path, e))?;
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::Start(len - 8))
        .map_err(|e| Error::io("seek", path, e))?;
    f.read_exact(&mut tail)
        .map_err(|e| Error::io("read", path, e))?;
    if &head != MAGIC || &tail[4..] != MAGIC {
        return Err(Error::corrupt(
            path,
            "not a complete parquet file (missing PAR1 magic; footer lost?)",
        ));
    }
    let mlen = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if mlen + 12 > len {
        return Err(Error::corrupt(
            path,
            format!("footer length {mlen} exceeds file size {len}"),
        ));
    }
    let start = len - 8 - mlen;
    let mut meta = vec![0u8; mlen as usize];
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("seek", path, e))?;
    f.read_exact(&mut meta)
        .map_err(|e| Error::io("read", path, e))?;
    let md = ParquetMetaDataReader::decode_metadata(&meta).map_err(|e| perr(path, e))?;
    Ok((start, len, md))
}

fn shift(v: Option<i64>, delta: i64) -> Option<i64> {
    v.map(|x| x + delta)
}

/// Moves every file offset of a row group by `delta` bytes and gives it `ordinal`.
fn shift_row_group(
    path: &Path,
    rg: &RowGroupMetaData,
    delta: i64,
    ordinal: usize,
) -> Result<RowGroupMetaData> {
    let mut cols = Vec::with_capacity(rg.num_columns());
    for c in rg.columns() {
        let b = c
            .clone()
            .into_builder()
            .set_data_page_offset(c.data_page_offset() + delta)
            .set_dictionary_page_offset(shift(c.dictionary_page_offset(), delta))
            .set_index_page_offset(shift(c.index_page_offset(), delta))
            .set_offset_index_offset(shift(c.offset_index_offset(), delta))
            .set_column_index_offset(shift(c.column_index_offset(), delta))
            .set_bloom_filter_offset(shift(c.bloom_filter_offset(), delta));
        cols.push(b.build().map_err(|e| perr(path, e))?);
    }
    let mut b = rg
        .clone()
        .into_builder()
        .set_column_metadata(cols)
        .set_ordinal(ordinal as i32);
    if let Some(fo) = rg.file_offset() {
        b = b.set_file_offset(fo + delta);
    }
    b.build().map_err(|e| perr(path, e))
}

fn encode_footer(path: &Path, md: &ParquetMetaData) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ParquetMetaDataWriter::new(&mut out, md)
        .finish()
        .map_err(|e| perr(path, e))?;
    Ok(out)
}

fn totals(md: &ParquetMetaData, file_bytes: u64) -> Appended {
    Appended {
        row_groups: md.num_row_groups(),
        rows_total: md
            .row_groups()
            .iter()
            .map(|r| r.num_rows().max(0) as u64)
            .sum(),
        file_bytes,
    }
}

/// The Arrow fields a file's footer describes (metadata left out: only the columns count).
fn arrow_fields(path: &Path, md: &ParquetMetaData) -> Result<arrow_schema::Fields> {
    let fm = md.file_metadata();
    let s = parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| perr(path, e))?;
    Ok(s.fields().clone())
}

/// One batch = one new row group at the end of `path` (created if absent).
/// `kv` = extra key-value metadata besides `ARROW:schema`. Errors if the schema differs from
/// the file's.
pub fn append_batch(
    path: &Path,
    batch: &RecordBatch,
    kv: &[(String, String)],
    journal: &mut Journal,
) -> Result<Appended> {
    append_impl(path, batch, kv, journal, None)
}

/// Like [`append_batch`], but the file's last row group (which must hold exactly the rows
/// of `last`) is replaced by one row group holding `last` followed by `batch`. Only that
/// tail group is rewritten, so the cost stays bounded by its size while the footer grows
/// one entry per merged group instead of one per batch.
pub fn append_batch_merging_last(
    path: &Path,
    last: &RecordBatch,
    batch: &RecordBatch,
    kv: &[(String, String)],
    journal: &mut Journal,
) -> Result<Appended> {
    let combined = arrow_select::concat::concat_batches(&batch.schema(), [last, batch])
        .map_err(|e| perr(path, e))?;
    append_impl(path, &combined, kv, journal, Some(last.num_rows()))
}

/// Footers parsed by this process, keyed by path, valid while the file keeps the length we
/// left it with (an append always makes a file longer; a rollback makes it shorter).
struct CachedFooter {
    len: u64,
    footer_start: u64,
    md: ParquetMetaData,
}

static FOOTERS: std::sync::Mutex<
    Option<std::collections::HashMap<std::path::PathBuf, CachedFooter>>,
> = std::sync::Mutex::new(None);

/// The footer of `path`, taken out of the cache (no copy) when it is current, else read.
fn footer_cached(path: &Path) -> Result<(u64, ParquetMetaData)> {
    let len = fs::metadata(path)
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    {
        let mut cache = FOOTERS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_mut().and_then(|m| m.remove(path)) {
            if c.len == len {
                return Ok((c.footer_start, c.md));
            }
        }
    }
    let (start, _len, md) = read_footer(path)?;
    Ok((start, md))
}

fn remember_footer(path: &Path, len: u64, footer_start: u64, md: ParquetMetaData) {
    let mut cache = FOOTERS.lock().unwrap_or_else(|p| p.into_inner());
    cache.get_or_insert_with(Default::default).insert(
        path.to_path_buf(),
        CachedFooter {
            len,
            footer_start,
            md,
        },
    );
}

pub fn forget_footer(path: &Path) {
    if let Some(m) = FOOTERS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        m.remove(path);
    }
}

/// Byte offset where a row group's first column chunk starts.
fn row_group_start(rg: &RowGroupMetaData) -> Option<u64> {
    rg.columns()
        .iter()
        .map(|c| {
            c.dictionary_page_offset()
                .unwrap_or(c.data_page_offset())
                .min(c.data_page_offset())
        })
        .min()
        .map(|x| x.max(4) as u64)
}

fn append_impl(
    path: &Path,
    batch: &RecordBatch,
    kv: &[(String, String)],
    journal: &mut Journal,
    replace_last_rows: Option<usize>,
) -> Result<Appended> {
    let encoded = encode_file(path, batch, kv)?;
    if !path.exists() {
        if replace_last_rows.is_some() {
            return Err(perr(
                path,
                "cannot merge into the last row group of a file that does not exist",
            ));
        }
        let (fs_start, md) = parse_footer_bytes(path, &encoded)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
        }
        journal.record_create(path)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        f.write_all(&encoded)
            .map_err(|e| Error::io("write", path, e))?;
        let out = totals(&md, encoded.len() as u64);
        remember_footer(path, encoded.len() as u64, fs_start, md);
        return Ok(out);
    }
    let (footer_start, target) = footer_cached(path)?;
    let (new_footer_start, fresh) = parse_footer_bytes(path, &encoded)?;
    if target.file_metadata().schema() != fresh.file_metadata().schema()
        || arrow_fields(path, &target)? != arrow_fields(path, &fresh)?
    {
        return Err(Error::Mismatch(format!(
            "{}: the new row group's schema differs from the file's (file columns: {:?}; new: {:?})",
            path.display(),
            target.file_metadata().schema_descr().columns().iter().map(|c| c.path().string()).collect::<Vec<_>>(),
            fresh.file_metadata().schema_descr().columns().iter().map(|c| c.path().string()).collect::<Vec<_>>(),
        )));
    }
    if fresh.num_row_groups() != 1 {
        return Err(perr(
            path,
            format!(
                "encoder produced {} row groups for one batch",
                fresh.num_row_groups()
            ),
        ));
    }
    let mut groups: Vec<RowGroupMetaData> =
        ParquetMetaDataBuilder::new_from_metadata(target).take_row_groups();
    // Where the new row group's bytes go: after the old body, or over the last row group.
    let write_at = match replace_last_rows {
        None => footer_start,
        Some(rows) => {
            let last = groups
                .pop()
                .ok_or_else(|| perr(path, "no row group to merge into"))?;
            if last.num_rows() as usize != rows {
                return Err(perr(
                    path,
                    format!(
                        "last row group has {} rows, expected {rows} to merge",
                        last.num_rows()
                    ),
                ));
            }
            row_group_start(&last).ok_or_else(|| perr(path, "last row group has no columns"))?
        }
    };
    // Body of the fresh file: everything between its magic and its footer.
    let body = &encoded[4..new_footer_start as usize];
    let delta = write_at as i64 - 4;
    let shifted = shift_row_group(path, fresh.row_group(0), delta, groups.len())?;
    groups.push(shifted);
    let md = ParquetMetaDataBuilder::new(fresh.file_metadata().clone())
        .set_row_groups(groups)
        .build();
    let footer = encode_footer(path, &md)?;

    journal.record_tail(path, write_at)?;
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open for append", path, e))?;
    f.set_len(write_at)
        .map_err(|e| Error::io("truncate footer", path, e))?;
    f.seek(SeekFrom::Start(write_at))
        .map_err(|e| Error::io("seek", path, e))?;
    f.write_all(body)
        .map_err(|e| Error::io("append row group", path, e))?;
    f.write_all(&footer)
        .map_err(|e| Error::io("write footer", path, e))?;
    let new_footer_at = write_at + body.len() as u64;
    let file_bytes = new_footer_at + footer.len() as u64;
    let out = totals(&md, file_bytes);
    remember_footer(path, file_bytes, new_footer_at, md);
    Ok(out)
}

pub fn truncate_row_groups(path: &Path, keep: usize, journal: &mut Journal) -> Result<()> {
    forget_footer(path);
    let (footer_start, _len, md) = read_footer(path)?;
    if md.num_row_groups() <= keep {
        return Ok(());
    }
    // The dropped data starts at the first byte of row group `keep`.
    let cut = md.row_groups()[keep..]
        .iter()
        .flat_map(|rg| rg.columns().iter().map(|c| c.byte_range().0))
        .min()
        .unwrap_or(footer_start)
        .max(4);
    let mut kept = Vec::with_capacity(keep);
    for rg in &md.row_groups()[..keep] {
        let mut cols = Vec::with_capacity(rg.num_columns());
        for c in rg.columns() {
            // Index structures written after the data would be cut away with it.
            let past = |o: Option<i64>| o.filter(|&x| (x as u64) < cut);
            let mut b = c.clone().into_builder();
            if past(c.offset_index_offset()).is_none() {
                b = b
                    .set_offset_index_offset(None)
                    .set_offset_index_length(None);
            }
            if past(c.column_index_offset()).is_none() {
                b = b
                    .set_column_index_offset(None)
                    .set_column_index_length(None);
            }
            if past(c.bloom_filter_offset()).is_none() {
                b = b
                    .set_bloom_filter_offset(None)
                    .set_bloom_filter_length(None);
            }
            cols.push(b.build().map_err(|e| perr(path, e))?);
        }
        kept.push(
            rg.clone()
                .into_builder()
                .set_column_metadata(cols)
                .build()
                .map_err(|e| perr(path, e))?,
        );
    }
    let new_md = ParquetMetaDataBuilder::new(md.file_metadata().clone())
        .set_row_groups(kept)
        .build();
    let footer = encode_footer(path, &new_md)?;
    journal.record_tail(path, cut)?;
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open for repair", path, e))?;
    f.set_len(cut).map_err(|e| Error::io("truncate", path, e))?;
    f.seek(SeekFrom::Start(cut))
        .map_err(|e| Error::io("seek", path, e))?;
    f.write_all(&footer)
        .map_err(|e| Error::io("write footer", path, e))?;
    Ok(())
}

/// Row count of every row group of `path`, in file order.
pub fn row_group_rows(path: &Path) -> Result<Vec<u64>> {
    let (_, _, md) = read_footer(path)?;
    Ok(md
        .row_groups()
        .iter()
        .map(|r| r.num_rows().max(0) as u64)
        .collect())
}

/// Reads every record batch of a parquet file (small metadata files and tests). The file is
/// checked first ([`check_pages`]): the parquet reader sizes its buffers from the page
/// headers, so a 2 KB file whose page claims 2 GiB would take 2 GiB.
pub fn read_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    check_pages(path, &mut f)?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| perr(path, e))?
        .build()
        .map_err(|e| perr(path, e))?;
    reader.map(|b| b.map_err(|e| perr(path, e))).collect()
}

/// Largest expansion of a SNAPPY page (a 3-byte copy tag yields at most 64 bytes).
const SNAPPY_MAX_RATIO: u64 = 22;
/// Largest expansion accepted for the other codecs (gzip, zstd, ... can do more; reel and
/// LeRobot write SNAPPY metadata).
const OTHER_MAX_RATIO: u64 = 64;

/// Checks, before the parquet reader allocates anything from them, the sizes a file declares:
/// the rows of its row groups (a metadata table holds at least a byte per row), each column
/// chunk's byte range (inside the file), and each page header in it (its data inside the
/// chunk, and its uncompressed size within what its codec can expand to).
fn check_pages(path: &Path, f: &mut File) -> Result<()> {
    let (_, len, md) = read_footer(path)?;
    let bad = |m: String| Error::corrupt(path, m);
    let rows: i64 = md
        .row_groups()
        .iter()
        .map(|r| r.num_rows().max(0))
        .fold(0i64, |a, b| a.saturating_add(b));
    if md.row_groups().iter().any(|r| r.num_rows() < 0) || rows as u64 > len {
        return Err(bad(format!(
            "row groups declare {rows} rows in a {len}-byte file"
        )));
    }
    for (g, rg) in md.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c
                .dictionary_page_offset()
                .unwrap_or_else(|| c.data_page_offset());
            let size = c.compressed_size();
            let end = start.checked_add(size);
            if start < 4 || size < 0 || end.is_none_or(|e| e as u64 > len) {
                return Err(bad(format!(
                    "row group {g}: column chunk at {start} of {size} bytes is outside the {len}-byte file"
                )));
            }
            let ratio = match c.compression() {
                Compression::UNCOMPRESSED => 1,
                Compression::SNAPPY => SNAPPY_MAX_RATIO,
                _ => OTHER_MAX_RATIO,
            };
            let mut chunk = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(start as u64))
                .map_err(|e| Error::io("seek", path, e))?;
            f.read_exact(&mut chunk)
                .map_err(|e| Error::io("read", path, e))?;
            let mut at = 0usize;
            while at < chunk.len() {
                let mut r = Compact { b: &chunk, i: at };
                let page = r.page_header().ok_or_else(|| {
                    bad(format!(
                        "row group {g}: unreadable page header at byte {}",
                        start as usize + at
                    ))
                })?;
                let data_end = r.i as u64 + page.compressed;
                if data_end > chunk.len() as u64
                    || page.uncompressed > ratio * page.compressed + 1024
                {
                    return Err(bad(format!(
                        "row group {g}: the page at byte {} declares {} bytes ({} uncompressed) that its column chunk cannot hold",
                        start as usize + at,
                        page.compressed,
                        page.uncompressed
                    )));
                }
                at = data_end as usize;
            }
        }
    }
    Ok(())
}

/// The sizes of one page header.
struct PageSizes {
    uncompressed: u64,
    compressed: u64,
}

/// Just enough of thrift's compact protocol to read a parquet page header's sizes (fields 2
/// and 3) and skip the rest; nesting is bounded.
struct Compact<'a> {
    b: &'a [u8],
    i: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.i)?;
        self.i += 1;
        Some(v)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for k in 0..10 {
            let x = self.byte()?;
            v |= ((x & 0x7f) as u64) << (7 * k);
            if x & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip_bytes(&mut self, n: u64) -> Option<()> {
        let end = self.i.checked_add(usize::try_from(n).ok()?)?;
        (end <= self.b.len()).then(|| self.i = end)
    }

    /// Skips one value of compact type `ty`, `depth` containers deep.
    fn skip(&mut self, ty: u8, depth: usize) -> Option<()> {
        if depth > 16 {
            return None;
        }
        match ty {
            1 | 2 => Some(()),
            3 => self.skip_bytes(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.skip_bytes(8),
            8 => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => n as u64,
                };
                // Every element takes at least a byte: a count beyond the buffer is corrupt.
                if n > (self.b.len() - self.i) as u64 {
                    return None;
                }
                let et = h & 0x0f;
                for _ in 0..n {
                    self.skip(if et == 1 || et == 2 { 3 } else { et }, depth + 1)?;
                }
                Some(())
            }
            11 => {
                let n = self.varint()?;
                if n == 0 {
                    return Some(());
                }
                if n > (self.b.len() - self.i) as u64 {
                    return None;
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.skip(kv >> 4, depth + 1)?;
                    self.skip(kv & 0x0f, depth + 1)?;
                }
                Some(())
            }
            12 => self.fields(depth + 1, |_, _, r, d| r.skip_field(d)),
            _ => None,
        }
    }

    fn skip_field(&mut self, (ty, depth): (u8, usize)) -> Option<()> {
        self.skip(ty, depth)
    }

    /// Walks the fields of a struct, calling `f(id, type, self, (type, depth))` for each.
    fn fields(
        &mut self,
        depth: usize,
        mut f: impl FnMut(i16, u8, &mut Self, (u8, usize)) -> Option<()>,
    ) -> Option<()> {
        if depth > 16 {
            return None;
        }
        let mut id = 0i16;
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Some(());
            }
            let ty = h & 0x0f;
            id = match h >> 4 {
                0 => i16::try_from(self.zigzag()?).ok()?,
                d => id.checked_add(d as i16)?,
            };
            f(id, ty, self, (ty, depth))?;
        }
    }

    /// A `PageHeader`: its uncompressed and compressed sizes (both required, non-negative).
    fn page_header(&mut self) -> Option<PageSizes> {
        let (mut unc, mut comp) = (None, None);
        self.fields(0, |id, ty, r, d| match (id, ty) {
            (2, 5) => {
                unc = u64::try_from(r.zigzag()?).ok();
                unc.map(|_| ())
            }
            (3, 5) => {
                comp = u64::try_from(r.zigzag()?).ok();
                comp.map(|_| ())
            }
            _ => r.skip_field(d),
        })?;
        Some(PageSizes {
            uncompressed: unc?,
            compressed: comp?,
        })
    }
}

/// Key-value metadata of the file at `path` (besides nothing: every pair, `ARROW:schema` included).
pub fn key_value_metadata(path: &Path) -> Result<Vec<(String, String)>> {
    let (_, _, md) = read_footer(path)?;
    Ok(md
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, FixedSizeListArray, Float32Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};
    use reel_core::journal::recover;

    fn batch(start: i64, n: usize) -> RecordBatch {
        let item = Arc::new(Field::new("element", DataType::Float32, true));
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::FixedSizeList(item.clone(), 6), true),
            Field::new("index", DataType::Int64, true),
        ]));
        let vals = Float32Array::from(
            (0..n * 6)
                .map(|i| start as f32 + i as f32 * 0.5)
                .collect::<Vec<_>>(),
        );
        let list = FixedSizeListArray::try_new(item, 6, Arc::new(vals), None).unwrap();
        let idx = Int64Array::from((start..start + n as i64).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(list), Arc::new(idx)]).unwrap()
    }

    fn kv() -> Vec<(String, String)> {
        vec![("reel".into(), "test".into())]
    }

    fn journal(root: &Path) -> Journal {
        Journal::begin(&root.join(".reel/journal"), root, false).unwrap()
    }

    #[test]
    fn append_three_keeps_old_bytes_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let p = root.join("data/chunk-000/file-000.parquet");
        let mut j = journal(root);
        let a = append_batch(&p, &batch(0, 5), &kv(), &mut j).unwrap();
        j.commit().unwrap();
        assert_eq!((a.row_groups, a.rows_total), (1, 5));
        for (k, (start, n)) in [(5i64, 7usize), (12, 3)].into_iter().enumerate() {
            let before = fs::read(&p).unwrap();
            let (fs_, _, _) = read_footer(&p).unwrap();
            let mut j = journal(root);
            let a = append_batch(&p, &batch(start, n), &kv(), &mut j).unwrap();
            j.commit().unwrap();
            let after = fs::read(&p).unwrap();
            assert_eq!(
                &after[..fs_ as usize],
                &before[..fs_ as usize],
                "bytes before the old footer must not change"
            );
            assert_eq!(a.row_groups, k + 2);
            assert_eq!(a.file_bytes, after.len() as u64);
        }
        assert_eq!(row_group_rows(&p).unwrap(), vec![5, 7, 3]);
        let batches = read_batches(&p).unwrap();
        let idx: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(idx, (0..15).collect::<Vec<_>>());
        let last = batches.last().unwrap();
        let l = last
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        let v = l.value(l.len() - 1);
        let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(v.value(5), 12.0 + (2 * 6 + 5) as f32 * 0.5);
        assert!(key_value_metadata(&p)
            .unwrap()
            .iter()
            .any(|(k, v)| k == "reel" && v == "test"));
        assert!(key_value_metadata(&p)
            .unwrap()
            .iter()
            .any(|(k, _)| k == "ARROW:schema"));

        // pyarrow must see 3 row groups and fixed_size_list<element: float>[6].
        if let Some(o) = reel_testkit::python_with(&["pyarrow"], "the pyarrow read-back") {
            let out = o
                .command()
                .arg("-c")
                .arg("import sys, pyarrow.parquet as pq; f = pq.ParquetFile(sys.argv[1]); t = f.read(); print(f.metadata.num_row_groups); print(t.schema.field('v').type); print(t.num_rows); print(t.column('index').to_pylist() == list(range(15)))")
                .arg(&p)
                .output()
                .unwrap();
            let s = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{s} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                s.lines().collect::<Vec<_>>(),
                vec!["3", "fixed_size_list<element: float>[6]", "15", "True"]
            );
        }
    }

    #[test]
    fn crash_mid_append_is_rolled_back_byte_for_byte() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let p = root.join("f.parquet");
        let mut j = journal(root);
        append_batch(&p, &batch(0, 4), &kv(), &mut j).unwrap();
        j.commit().unwrap();
        let before = fs::read(&p).unwrap();
        let mut j = journal(root);
        append_batch(&p, &batch(4, 9), &kv(), &mut j).unwrap();
        assert_ne!(fs::read(&p).unwrap(), before);
        drop(j); // crash before commit
        assert_eq!(recover(&root.join(".reel/journal"), root).unwrap(), 1);
        assert_eq!(fs::read(&p).unwrap(), before);
        assert_eq!(row_group_rows(&p).unwrap(), vec![4]);

        // A crash during the very first append removes the file.
        let q = root.join("new/g.parquet");
        let mut j = journal(root);
        append_batch(&q, &batch(0, 2), &kv(), &mut j).unwrap();
        drop(j);
        recover(&root.join(".reel/journal"), root).unwrap();
        assert!(!q.exists());
    }

    #[test]
    fn schema_mismatch_and_truncate() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let p = root.join("f.parquet");
        let mut j = journal(root);
        append_batch(&p, &batch(0, 4), &kv(), &mut j).unwrap();
        let one = fs::read(&p).unwrap();
        append_batch(&p, &batch(4, 3), &kv(), &mut j).unwrap();
        append_batch(&p, &batch(7, 2), &kv(), &mut j).unwrap();
        j.commit().unwrap();
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "index",
                DataType::Int64,
                true,
            )])),
            vec![Arc::new(Int64Array::from(vec![1i64]))],
        )
        .unwrap();
        let mut j = journal(root);
        let e = append_batch(&p, &other, &kv(), &mut j).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e}");
        truncate_row_groups(&p, 1, &mut j).unwrap();
        assert_eq!(row_group_rows(&p).unwrap(), vec![4]);
        let idx: Vec<i64> = read_batches(&p)
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(idx, vec![0, 1, 2, 3]);
        // The data bytes are those of the original one-row-group file; only the footer is
        // re-encoded (optional size statistics are not carried over).
        let (one_footer, _) = parse_footer_bytes(&p, &one).unwrap();
        let (cut_footer, _, _) = read_footer(&p).unwrap();
        assert_eq!(cut_footer, one_footer);
        assert_eq!(
            fs::read(&p).unwrap()[..cut_footer as usize],
            one[..one_footer as usize]
        );
        j.commit().unwrap();
        assert!(read_footer(&root.join("missing.parquet")).is_err());
        fs::write(root.join("junk.parquet"), b"PAR1 not really").unwrap();
        assert!(matches!(
            row_group_rows(&root.join("junk.parquet")).unwrap_err(),
            Error::Corrupt { .. }
        ));
    }
}
