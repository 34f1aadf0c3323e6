//! Side streams: named series of samples at their own rate (servo reads at 500 Hz, an IMU,
//! audio at 48 kHz), each sample with its capture time on the camera frames' clock
//! (`reel_core::monotonic_ns`, CLOCK_MONOTONIC), stored per episode beside LeRobot's tables:
//! `meta/reel/streams/<stream>/chunk-CCC/episode-EEEEEE.parquet`.
//!
//! LeRobot stores one row per tick; these files are where it never looks (its loader reads
//! `data/` and `meta/episodes/`, its resume appends to its own files, `aggregate_datasets`
//! copies what it knows), so all three ignore them and a LeRobot resume leaves them untouched.
//! They are written inside the episode's journaled transaction ([`write_episode`], called
//! by the committer), so a crash loses at most the episode in progress of every stream.
//!
//! A stream is declared by its first sample of an episode: its dtype and width (values per
//! sample) then hold for the episode; a sample of another dtype or width, or a time before
//! the stream's previous sample, is refused with an error naming the stream. The buffer
//! ([`StreamBuffers`]) grows in fixed-size chunks, so adding a sample never copies the
//! episode's earlier samples (no reallocation spike on the loop's thread).
//!
//! File schema: `t_ns` (int64, monotonic ns) and `value` (fixed-size list of the stream's
//! dtype, `width` long), one row per sample, in time order; the key-value metadata names
//! the stream, the episode and the width.

use crate::parquet_append::{self, read_batches};
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch,
};
use arrow_schema::{DataType, Field, Schema};
use reel_core::journal::Journal;
use reel_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Episodes per folder of a stream.
pub const EPISODES_PER_CHUNK: u64 = 1000;
/// Values per chunk of a stream's buffer.
const CHUNK_VALUES: usize = 1 << 16;
/// Longest stream name.
pub const MAX_NAME_LEN: usize = 64;

/// A stream's value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleDtype {
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl SampleDtype {
    /// The name NumPy and LeRobot use.
    pub fn name(self) -> &'static str {
        match self {
            SampleDtype::I16 => "int16",
            SampleDtype::I32 => "int32",
            SampleDtype::I64 => "int64",
            SampleDtype::F32 => "float32",
            SampleDtype::F64 => "float64",
        }
    }

    /// Parses a NumPy dtype name.
    pub fn parse(s: &str) -> Result<SampleDtype> {
        Ok(match s {
            "int16" => SampleDtype::I16,
            "int32" => SampleDtype::I32,
            "int64" => SampleDtype::I64,
            "float32" => SampleDtype::F32,
            "float64" => SampleDtype::F64,
            other => {
                return Err(Error::invalid(format!(
                "stream dtype '{other}' is not supported (int16, int32, int64, float32, float64)"
            )))
            }
        })
    }

    fn arrow(self) -> DataType {
        match self {
            SampleDtype::I16 => DataType::Int16,
            SampleDtype::I32 => DataType::Int32,
            SampleDtype::I64 => DataType::Int64,
            SampleDtype::F32 => DataType::Float32,
            SampleDtype::F64 => DataType::Float64,
        }
    }
}

/// The values of one or more samples, row after row (`width` values per sample).
#[derive(Debug, Clone, Copy)]
pub enum SampleValues<'a> {
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl SampleValues<'_> {
    pub fn dtype(&self) -> SampleDtype {
        match self {
            SampleValues::I16(_) => SampleDtype::I16,
            SampleValues::I32(_) => SampleDtype::I32,
            SampleValues::I64(_) => SampleDtype::I64,
            SampleValues::F32(_) => SampleDtype::F32,
            SampleValues::F64(_) => SampleDtype::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SampleValues::I16(v) => v.len(),
            SampleValues::I32(v) => v.len(),
            SampleValues::I64(v) => v.len(),
            SampleValues::F32(v) => v.len(),
            SampleValues::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A growable buffer kept in fixed-size chunks (pushing never moves earlier values).
#[derive(Debug, Clone)]
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T: Copy> Chunked<T> {
    fn new() -> Chunked<T> {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn extend(&mut self, mut vals: &[T]) {
        while !vals.is_empty() {
            let room = match self.chunks.last() {
                Some(c) if c.len() < CHUNK_VALUES => CHUNK_VALUES - c.len(),
                _ => {
                    self.chunks.push(Vec::with_capacity(CHUNK_VALUES));
                    CHUNK_VALUES
                }
            };
            let n = room.min(vals.len());
            if let Some(c) = self.chunks.last_mut() {
                c.extend_from_slice(&vals[..n]);
            }
            self.len += n;
            vals = &vals[n..];
        }
    }

    fn to_vec(&self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Store {
    I16(Chunked<i16>),
    I32(Chunked<i32>),
    I64(Chunked<i64>),
    F32(Chunked<f32>),
    F64(Chunked<f64>),
}

impl Store {
    fn new(d: SampleDtype) -> Store {
        match d {
            SampleDtype::I16 => Store::I16(Chunked::new()),
            SampleDtype::I32 => Store::I32(Chunked::new()),
            SampleDtype::I64 => Store::I64(Chunked::new()),
            SampleDtype::F32 => Store::F32(Chunked::new()),
            SampleDtype::F64 => Store::F64(Chunked::new()),
        }
    }

    /// Appends `v`; false when its dtype is not the store's.
    fn extend(&mut self, v: SampleValues<'_>) -> bool {
        match (self, v) {
            (Store::I16(s), SampleValues::I16(v)) => s.extend(v),
            (Store::I32(s), SampleValues::I32(v)) => s.extend(v),
            (Store::I64(s), SampleValues::I64(v)) => s.extend(v),
            (Store::F32(s), SampleValues::F32(v)) => s.extend(v),
            (Store::F64(s), SampleValues::F64(v)) => s.extend(v),
            _ => return false,
        }
        true
    }

    fn array(&self) -> ArrayRef {
        match self {
            Store::I16(s) => Arc::new(Int16Array::from(s.to_vec())),
            Store::I32(s) => Arc::new(Int32Array::from(s.to_vec())),
            Store::I64(s) => Arc::new(Int64Array::from(s.to_vec())),
            Store::F32(s) => Arc::new(Float32Array::from(s.to_vec())),
            Store::F64(s) => Arc::new(Float64Array::from(s.to_vec())),
        }
    }
}

/// One stream's samples of the episode in progress.
#[derive(Debug, Clone)]
pub struct StreamSamples {
    pub name: String,
    pub dtype: SampleDtype,
    pub width: usize,
    t_ns: Chunked<i64>,
    values: Store,
    last_ns: i64,
}

impl StreamSamples {
    /// Samples buffered.
    pub fn len(&self) -> usize {
        self.t_ns.len
    }

    pub fn is_empty(&self) -> bool {
        self.t_ns.len == 0
    }
}

/// Checks a stream name: it becomes a folder name, so `[A-Za-z0-9_.-]`, not starting with a
/// dot, at most [`MAX_NAME_LEN`] characters.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "stream name '{name}' is not valid: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ . - (not starting with a dot)"
        )))
    }
}

/// The samples of every stream of the episode in progress.
#[derive(Debug, Clone, Default)]
pub struct StreamBuffers {
    streams: Vec<StreamSamples>,
    /// The interval of the clock the episode's streams cover, when the loop that fed them
    /// cut them by time (`reel record`: from the first tick's start to the episode's end).
    span: Option<(i64, i64)>,
}

impl StreamBuffers {
    /// Adds `t_ns.len()` samples of `stream` (`values` holds `width` values per sample, row
    /// after row). Refuses, naming the stream, a bad name, a dtype or width other than the
    /// stream's first sample's in this episode, values that do not fill the rows, and times
    /// that go backwards; nothing is added then.
    pub fn add(&mut self, stream: &str, t_ns: &[i64], values: SampleValues<'_>) -> Result<()> {
        if t_ns.is_empty() {
            return Ok(());
        }
        if values.is_empty() || !values.len().is_multiple_of(t_ns.len()) {
            return Err(Error::invalid(format!(
                "stream '{stream}': {} value(s) for {} sample(s): each sample needs the same number (at least 1)",
                values.len(),
                t_ns.len()
            )));
        }
        let width = values.len() / t_ns.len();
        let idx = match self.streams.iter().position(|s| s.name == stream) {
            Some(i) => i,
            None => {
                check_name(stream)?;
                self.streams.push(StreamSamples {
                    name: stream.to_string(),
                    dtype: values.dtype(),
                    width,
                    t_ns: Chunked::new(),
                    values: Store::new(values.dtype()),
                    last_ns: i64::MIN,
                });
                self.streams.len() - 1
            }
        };
        let s = &mut self.streams[idx];
        if s.dtype != values.dtype() || s.width != width {
            return Err(Error::invalid(format!(
                "stream '{stream}' holds {} x {} per sample in this episode; got {} x {width}",
                s.width,
                s.dtype.name(),
                values.dtype().name()
            )));
        }
        let mut last = s.last_ns;
        for &t in t_ns {
            if t < last || t < 0 {
                return Err(Error::invalid(format!(
                    "stream '{stream}': sample time {t} ns is before the previous sample's ({last} ns) or negative; times must be monotonic (reel.now_ns() clock)"
                )));
            }
            last = t;
        }
        s.t_ns.extend(t_ns);
        s.values.extend(values);
        s.last_ns = last;
        Ok(())
    }

    /// The streams, in order of first sample.
    pub fn streams(&self) -> &[StreamSamples] {
        &self.streams
    }

    pub fn is_empty(&self) -> bool {
        self.streams.iter().all(|s| s.is_empty())
    }

    pub fn clear(&mut self) {
        self.streams.clear();
        self.span = None;
    }

    /// Records the interval `[from_ns, to_ns]` the episode's samples were cut to (stored as
    /// `reel.from_ns` / `reel.to_ns` in each stream file's metadata).
    pub fn set_span(&mut self, from_ns: i64, to_ns: i64) {
        self.span = Some((from_ns, to_ns));
    }

    /// The interval set by [`set_span`](Self::set_span).
    pub fn span(&self) -> Option<(i64, i64)> {
        self.span
    }
}

/// `root/meta/reel/streams/<stream>/chunk-CCC/episode-EEEEEE.parquet`.
pub fn stream_file(root: &Path, stream: &str, episode_index: u64) -> PathBuf {
    streams_dir(root)
        .join(stream)
        .join(format!("chunk-{:03}", episode_index / EPISODES_PER_CHUNK))
        .join(format!("episode-{episode_index:06}.parquet"))
}

/// `root/meta/reel/streams`.
pub fn streams_dir(root: &Path) -> PathBuf {
    root.join("meta").join("reel").join("streams")
}

fn batch(s: &StreamSamples) -> Result<RecordBatch> {
    let item = Arc::new(Field::new("item", s.dtype.arrow(), false));
    let list = FixedSizeListArray::try_new(item.clone(), s.width as i32, s.values.array(), None)
        .map_err(|e| Error::invalid(format!("stream '{}': {e}", s.name)))?;
    let schema = Schema::new(vec![
        Field::new("t_ns", DataType::Int64, false),
        Field::new(
            "value",
            DataType::FixedSizeList(item, s.width as i32),
            false,
        ),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int64Array::from(s.t_ns.to_vec())), Arc::new(list)],
    )
    .map_err(|e| Error::invalid(format!("stream '{}': {e}", s.name)))
}

/// Writes every stream of episode `episode_index` (one file each) inside the episode's
/// transaction `j`. A file already there (left by a dataset whose episodes were removed
/// since) is replaced, its old content kept in the journal.
pub fn write_episode(
    root: &Path,
    episode_index: u64,
    buffers: &StreamBuffers,
    j: &mut Journal,
) -> Result<()> {
    for s in buffers.streams().iter().filter(|s| !s.is_empty()) {
        let path = stream_file(root, &s.name, episode_index);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
        }
        if path.exists() {
            j.record_replace(&path)?;
            std::fs::remove_file(&path)
                .map_err(|e| Error::io("remove stale stream file", &path, e))?;
        }
        let mut kv = vec![
            ("reel.stream".to_string(), s.name.clone()),
            ("reel.episode_index".to_string(), episode_index.to_string()),
            ("reel.width".to_string(), s.width.to_string()),
        ];
        if let Some((from, to)) = buffers.span {
            kv.push(("reel.from_ns".to_string(), from.to_string()));
            kv.push(("reel.to_ns".to_string(), to.to_string()));
        }
        parquet_append::append_batch(&path, &batch(s)?, &kv, j)?;
    }
    Ok(())
}

/// One stream of one episode as stored, values widened to f64 (what the report draws and
/// the tests compare; the Python reader returns the stored dtype).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredStream {
    pub name: String,
    pub dtype: String,
    pub width: usize,
    pub t_ns: Vec<i64>,
    /// `t_ns.len() * width` values, row after row.
    pub values: Vec<f64>,
    /// The interval the episode's samples were cut to (`reel.from_ns`/`reel.to_ns`), when
    /// the loop that recorded them stored it.
    pub span: Option<(i64, i64)>,
}

fn widen(a: &dyn Array, path: &Path) -> Result<Vec<f64>> {
    let any = a.as_any();
    if let Some(v) = any.downcast_ref::<Float64Array>() {
        return Ok(v.values().to_vec());
    }
    if let Some(v) = any.downcast_ref::<Float32Array>() {
        return Ok(v.values().iter().map(|x| *x as f64).collect());
    }
    if let Some(v) = any.downcast_ref::<Int16Array>() {
        return Ok(v.values().iter().map(|x| *x as f64).collect());
    }
    if let Some(v) = any.downcast_ref::<Int32Array>() {
        return Ok(v.values().iter().map(|x| *x as f64).collect());
    }
    if let Some(v) = any.downcast_ref::<Int64Array>() {
        return Ok(v.values().iter().map(|x| *x as f64).collect());
    }
    Err(Error::corrupt(
        path,
        format!("stream values of type {} are not supported", a.data_type()),
    ))
}

/// Reads stream `stream` of episode `episode_index`; `None` when the episode has none.
/// Checks what it reads: the columns and their types, and that times never go backwards.
pub fn read_episode(root: &Path, stream: &str, episode_index: u64) -> Result<Option<StoredStream>> {
    check_name(stream)?;
    let path = stream_file(root, stream, episode_index);
    if !path.is_file() {
        return Ok(None);
    }
    let mut out = StoredStream {
        name: stream.to_string(),
        ..Default::default()
    };
    for b in read_batches(&path)? {
        let t = b
            .column_by_name("t_ns")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| Error::corrupt(&path, "stream file has no int64 column t_ns"))?;
        let v = b
            .column_by_name("value")
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>())
            .ok_or_else(|| Error::corrupt(&path, "stream file has no list column value"))?;
        let width = v.value_length().max(0) as usize;
        if out.width != 0 && out.width != width {
            return Err(Error::corrupt(
                &path,
                "stream width changes inside the file",
            ));
        }
        out.width = width;
        out.dtype = match v.value_type() {
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
            other => {
                return Err(Error::corrupt(
                    &path,
                    format!("stream values of type {other}"),
                ))
            }
        }
        .to_string();
        let vals = v.values();
        let start = v.offset() * width;
        let n = b
            .num_rows()
            .checked_mul(width)
            .filter(|n| start.checked_add(*n).is_some_and(|e| e <= vals.len()));
        let Some(n) = n else {
            return Err(Error::corrupt(
                &path,
                "stream values do not fill their rows",
            ));
        };
        let flat = widen(vals.slice(start, n).as_ref(), &path)?;
        out.t_ns.extend_from_slice(t.values());
        out.values.extend(flat);
    }
    if out.t_ns.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::corrupt(&path, "stream times go backwards"));
    }
    let kv = parquet_append::key_value_metadata(&path)?;
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    out.span = get("reel.from_ns").zip(get("reel.to_ns"));
    Ok(Some(out))
}

/// Names of the dataset's streams (sorted).
pub fn names(root: &Path) -> Result<Vec<String>> {
    let dir = streams_dir(root);
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(&dir).map_err(|e| Error::io("read dir", &dir, e))? {
        let e = e.map_err(|e| Error::io("read dir", &dir, e))?;
        if let Some(n) = e.file_name().to_str() {
            if e.path().is_dir() && check_name(n).is_ok() {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_samples_and_keeps_good_ones() {
        let mut b = StreamBuffers::default();
        b.add("joints", &[10, 20], SampleValues::F32(&[1., 2., 3., 4.]))
            .unwrap();
        assert!(b.add("joints", &[30], SampleValues::F32(&[1.])).is_err()); // width
        assert!(b
            .add("joints", &[30], SampleValues::F64(&[1., 2.]))
            .is_err()); // dtype
        assert!(b
            .add("joints", &[15], SampleValues::F32(&[1., 2.]))
            .is_err()); // backwards
        assert!(b
            .add("joints", &[40, 50], SampleValues::F32(&[1., 2., 3.]))
            .is_err());
        assert!(b.add("../x", &[1], SampleValues::F32(&[1.])).is_err());
        assert!(b.add(".hidden", &[1], SampleValues::F32(&[1.])).is_err());
        b.add("joints", &[20, 30], SampleValues::F32(&[5., 6., 7., 8.]))
            .unwrap();
        assert_eq!(b.streams()[0].len(), 4);
        let e = b
            .add("joints", &[1], SampleValues::F32(&[1., 2.]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("joints") && e.contains("monotonic"), "{e}");
    }

    #[test]
    fn chunked_buffer_keeps_every_value_in_order() {
        let mut c = Chunked::<i64>::new();
        let vals: Vec<i64> = (0..(CHUNK_VALUES as i64 * 2 + 17)).collect();
        for part in vals.chunks(1000) {
            c.extend(part);
        }
        assert_eq!(c.chunks.len(), 3);
        assert_eq!(c.to_vec(), vals);
    }

    #[test]
    fn writes_in_a_transaction_reads_back_and_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let jp = root.join("journal");
        let mut b = StreamBuffers::default();
        let t: Vec<i64> = (0..48_000).map(|i| 1_000_000_000 + i * 20_833).collect();
        let audio: Vec<i16> = (0..48_000).map(|i| (i % 3000) as i16 - 1500).collect();
        b.add("audio", &t, SampleValues::I16(&audio)).unwrap();
        let jt: Vec<i64> = (0..500).map(|i| 1_000_000_000 + i * 2_000_000).collect();
        let joints: Vec<f32> = (0..3000).map(|i| i as f32 * 0.5).collect();
        b.add("servo", &jt, SampleValues::F32(&joints)).unwrap();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        write_episode(root, 3, &b, &mut j).unwrap();
        j.commit().unwrap();
        assert_eq!(names(root).unwrap(), vec!["audio", "servo"]);
        let a = read_episode(root, "audio", 3).unwrap().unwrap();
        assert_eq!(a.dtype, "int16");
        assert_eq!(a.width, 1);
        assert_eq!(a.t_ns, t);
        assert_eq!(
            a.values,
            audio.iter().map(|x| *x as f64).collect::<Vec<_>>()
        );
        let s = read_episode(root, "servo", 3).unwrap().unwrap();
        assert_eq!((s.width, s.t_ns.len()), (6, 500));
        assert_eq!(s.values[6 * 7 + 2], ((6 * 7 + 2) as f32 * 0.5) as f64);
        assert!(read_episode(root, "servo", 4).unwrap().is_none());

        // A rolled-back episode leaves no file; a replaced leftover is restored.
        let leftover = stream_file(root, "servo", 4);
        std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
        std::fs::write(&leftover, b"leftover").unwrap();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        write_episode(root, 4, &b, &mut j).unwrap();
        assert!(stream_file(root, "audio", 4).is_file());
        j.rollback().unwrap();
        assert!(!stream_file(root, "audio", 4).exists());
        assert_eq!(std::fs::read(&leftover).unwrap(), b"leftover");
    }

    #[test]
    fn mutated_files_give_errors_not_panics() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut b = StreamBuffers::default();
        let t: Vec<i64> = (0..200).collect();
        let v: Vec<f64> = (0..400).map(|i| i as f64).collect();
        b.add("imu", &t, SampleValues::F64(&v)).unwrap();
        let mut j = Journal::begin(&root.join("journal"), root, false).unwrap();
        write_episode(root, 0, &b, &mut j).unwrap();
        j.commit().unwrap();
        let path = stream_file(root, "imu", 0);
        let good = std::fs::read(&path).unwrap();
        let mut seed = 0x9e3779b97f4a7c15u64;
        for round in 0..300 {
            let mut m = good.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match round % 3 {
                0 => m.truncate((seed as usize) % good.len()),
                _ => {
                    for k in 0..4 {
                        let at = ((seed >> (k * 8)) as usize) % m.len();
                        m[at] ^= (seed >> 32) as u8 | 1;
                    }
                }
            }
            std::fs::write(&path, &m).unwrap();
            crate::parquet_append::forget_footer(&path);
            // Must return (Ok or Err), never panic.
            let _ = read_episode(root, "imu", 0);
        }
    }
}
