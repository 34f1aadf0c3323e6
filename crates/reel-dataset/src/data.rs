//! The data parquet (`data/chunk-CCC/file-FFF.parquet`, spec §1.7): its Arrow schema, its
//! `huggingface` metadata, and the per-episode column buffers that become one row group.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use reel_core::feature::DEFAULT_FEATURES;
use reel_core::{Dtype, Error, Feature, Features, Result, RowValues, Value};
use reel_stats::FeatureStats;

use crate::pyjson::{self, PyValue};

/// Arrow scalar type of a reel dtype (video has no data column).
fn arrow_type(d: Dtype) -> DataType {
    match d {
        Dtype::Float32 => DataType::Float32,
        Dtype::Float64 => DataType::Float64,
        Dtype::Int64 => DataType::Int64,
        Dtype::Bool => DataType::Boolean,
        Dtype::String | Dtype::Video => DataType::Utf8,
    }
}

/// The column type of a feature: a scalar for shape [1], `fixed_size_list<element: T>[n]` for
/// shape [n], nested fixed-size lists (outermost = first dimension) for more dimensions.
fn column_type(f: &Feature) -> DataType {
    let base = arrow_type(f.dtype);
    if f.dtype == Dtype::String || f.shape == [1] {
        return base;
    }
    f.shape.iter().rev().fold(base, |inner, &n| {
        DataType::FixedSizeList(Arc::new(Field::new("element", inner, true)), n as i32)
    })
}

/// The Arrow schema of the data parquet: the non-video features in order, then `timestamp`
/// (float32) and `frame_index`, `episode_index`, `index`, `task_index` (int64). All nullable,
/// as pyarrow writes them.
pub fn data_schema(features: &Features) -> SchemaRef {
    let mut fields: Vec<Field> = features
        .iter()
        .filter(|(_, f)| f.dtype != Dtype::Video)
        .map(|(n, f)| Field::new(n, column_type(f), true))
        .collect();
    for (n, d) in DEFAULT_FEATURES {
        fields.push(Field::new(n, arrow_type(d), true));
    }
    Arc::new(Schema::new(fields))
}

fn hf_value(d: Dtype) -> PyValue {
    PyValue::Dict(vec![
        ("dtype".into(), PyValue::Str(d.as_str().into())),
        ("_type".into(), PyValue::Str("Value".into())),
    ])
}

fn hf_feature(f: &Feature) -> PyValue {
    if f.dtype == Dtype::String || f.shape == [1] {
        hf_value(f.dtype)
    } else if f.shape.len() == 1 {
        PyValue::Dict(vec![
            ("feature".into(), hf_value(f.dtype)),
            ("length".into(), PyValue::Int(f.shape[0] as i128)),
            ("_type".into(), PyValue::Str("List".into())),
        ])
    } else {
        PyValue::Dict(vec![
            (
                "shape".into(),
                PyValue::List(f.shape.iter().map(|&s| PyValue::Int(s as i128)).collect()),
            ),
            ("dtype".into(), PyValue::Str(f.dtype.as_str().into())),
            (
                "_type".into(),
                PyValue::Str(format!("Array{}D", f.shape.len())),
            ),
        ])
    }
}

/// The `huggingface` key-value metadata of the data parquet:
/// `{"info": {"features": {...}}, "fingerprint": "<16 hex>"}` as `json.dumps` writes it. The
/// fingerprint is a hash of the features JSON (HF uses a random-ish hash; readers ignore it).
pub fn hf_metadata(features: &Features) -> String {
    let mut items: Vec<(String, PyValue)> = features
        .iter()
        .filter(|(_, f)| f.dtype != Dtype::Video)
        .map(|(n, f)| (n.to_string(), hf_feature(f)))
        .collect();
    for (n, d) in DEFAULT_FEATURES {
        items.push((n.to_string(), hf_value(d)));
    }
    let feats = PyValue::Dict(items);
    let fp = fnv1a64(pyjson::dumps_compact(&feats).as_bytes());
    pyjson::dumps_compact(&PyValue::Dict(vec![
        (
            "info".into(),
            PyValue::Dict(vec![("features".into(), feats)]),
        ),
        ("fingerprint".into(), PyValue::Str(format!("{fp:016x}"))),
    ]))
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// The values of one non-video column for the rows of an episode, flattened row-major.
#[derive(Debug, Clone)]
enum Column {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl Column {
    fn new(d: Dtype) -> Column {
        match d {
            Dtype::Float32 => Column::F32(Vec::new()),
            Dtype::Float64 => Column::F64(Vec::new()),
            Dtype::Int64 => Column::I64(Vec::new()),
            Dtype::Bool => Column::Bool(Vec::new()),
            Dtype::String | Dtype::Video => Column::Str(Vec::new()),
        }
    }
    fn clear(&mut self) {
        match self {
            Column::F32(v) => v.clear(),
            Column::F64(v) => v.clear(),
            Column::I64(v) => v.clear(),
            Column::Bool(v) => v.clear(),
            Column::Str(v) => v.clear(),
        }
    }
    fn truncate(&mut self, n: usize) {
        match self {
            Column::F32(v) => v.truncate(n),
            Column::F64(v) => v.truncate(n),
            Column::I64(v) => v.truncate(n),
            Column::Bool(v) => v.truncate(n),
            Column::Str(v) => v.truncate(n),
        }
    }
    fn as_f64(&self) -> Option<Vec<f64>> {
        match self {
            Column::F32(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Column::F64(v) => Some(v.clone()),
            Column::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Column::Bool(v) => Some(v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect()),
            Column::Str(_) => None,
        }
    }
    fn to_array(&self) -> ArrayRef {
        match self {
            Column::F32(v) => Arc::new(Float32Array::from(v.clone())),
            Column::F64(v) => Arc::new(Float64Array::from(v.clone())),
            Column::I64(v) => Arc::new(Int64Array::from(v.clone())),
            Column::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Column::Str(v) => Arc::new(StringArray::from(v.clone())),
        }
    }
}

/// Accumulates the non-video values of one episode, row by row (each push only appends to
/// plain vectors), and turns them into the episode's row group and statistics.
#[derive(Debug, Clone)]
pub struct ColumnBuffers {
    /// (feature name, numel, values) for each non-video feature, in features order.
    columns: Vec<(String, usize, Column)>,
    task_index: Vec<i64>,
}

impl ColumnBuffers {
    pub fn new(features: &Features) -> Self {
        let columns = features
            .iter()
            .filter(|(_, f)| f.dtype != Dtype::Video)
            .map(|(n, f)| {
                (
                    n.to_string(),
                    if f.dtype == Dtype::String {
                        1
                    } else {
                        f.numel()
                    },
                    Column::new(f.dtype),
                )
            })
            .collect();
        ColumnBuffers {
            columns,
            task_index: Vec::new(),
        }
    }

    /// Appends one row. Every non-video feature must be present with its declared dtype and
    /// length; video values and unknown names are ignored (the writer validates rows).
    pub fn push(&mut self, row: &RowValues, task_index: i64) -> Result<()> {
        // Check everything first so a bad row leaves the buffers untouched.
        for (name, numel, col) in &self.columns {
            let v = row
                .get(name)
                .ok_or_else(|| Error::invalid(format!("frame is missing feature '{name}'")))?;
            let ok = match (col, v) {
                (Column::F32(_), Value::F32(x)) => x.len() == *numel,
                (Column::F64(_), Value::F64(x)) => x.len() == *numel,
                (Column::I64(_), Value::I64(x)) => x.len() == *numel,
                (Column::Bool(_), Value::Bool(x)) => x.len() == *numel,
                (Column::Str(_), Value::Str(_)) => true,
                _ => false,
            };
            if !ok {
                return Err(Error::invalid(format!(
                    "feature '{name}': expected {numel} values of the declared dtype, got {v:?}"
                )));
            }
        }
        for (name, _, col) in &mut self.columns {
            match (col, row.get(name)) {
                (Column::F32(c), Some(Value::F32(x))) => c.extend_from_slice(x),
                (Column::F64(c), Some(Value::F64(x))) => c.extend_from_slice(x),
                (Column::I64(c), Some(Value::I64(x))) => c.extend_from_slice(x),
                (Column::Bool(c), Some(Value::Bool(x))) => c.extend_from_slice(x),
                (Column::Str(c), Some(Value::Str(x))) => c.push(x.clone()),
                _ => {}
            }
        }
        self.task_index.push(task_index);
        Ok(())
    }

    /// Number of rows pushed.
    pub fn len(&self) -> usize {
        self.task_index.len()
    }

    /// True when no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.task_index.is_empty()
    }

    /// Forgets every row (keeps the allocations).
    pub fn clear(&mut self) {
        for (_, _, c) in &mut self.columns {
            c.clear();
        }
        self.task_index.clear();
    }

    /// Drops the rows after the first `n` (an episode cut short).
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        for (_, numel, c) in &mut self.columns {
            let per = if matches!(c, Column::Str(_)) {
                1
            } else {
                *numel
            };
            c.truncate(n * per);
        }
        self.task_index.truncate(n);
    }

    fn check_features(&self, features: &Features) -> Result<()> {
        let keys = features.data_keys();
        if keys.len() != self.columns.len()
            || keys.iter().zip(&self.columns).any(|(k, (n, _, _))| k != n)
        {
            return Err(Error::invalid(format!(
                "column buffers hold {:?}, the features declare {keys:?}",
                self.columns
                    .iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
            )));
        }
        Ok(())
    }

    /// The episode's rows as one record batch with [`data_schema`]: `timestamp` =
    /// float32(frame_index / fps) computed in f64, `index` from `first_index`.
    pub fn to_batch(
        &self,
        features: &Features,
        episode_index: i64,
        first_index: i64,
        fps: u32,
    ) -> Result<RecordBatch> {
        self.check_features(features)?;
        if fps == 0 {
            return Err(Error::invalid("fps must be positive"));
        }
        let schema = data_schema(features);
        let n = self.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for ((_, _, col), field) in self.columns.iter().zip(schema.fields().iter()) {
            let flat = col.to_array();
            arrays.push(nest(flat, field.data_type())?);
        }
        arrays.push(Arc::new(Float32Array::from(
            (0..n)
                .map(|i| (i as f64 / fps as f64) as f32)
                .collect::<Vec<f32>>(),
        )));
        arrays.push(Arc::new(Int64Array::from(
            (0..n as i64).collect::<Vec<i64>>(),
        )));
        arrays.push(Arc::new(Int64Array::from(vec![episode_index; n])));
        arrays.push(Arc::new(Int64Array::from(
            (0..n as i64).map(|i| first_index + i).collect::<Vec<i64>>(),
        )));
        arrays.push(Arc::new(Int64Array::from(self.task_index.clone())));
        RecordBatch::try_new(schema, arrays)
            .map_err(|e| Error::invalid(format!("building the data batch: {e}")))
    }

    /// The episode statistics of every numeric non-video feature (strings have none) and of
    /// the five default columns, as LeRobot's `compute_episode_stats` (timestamp from
    /// frame_index / fps in f64).
    pub fn stats(
        &self,
        features: &Features,
        episode_index: i64,
        first_index: i64,
        fps: u32,
    ) -> Result<Vec<(String, FeatureStats)>> {
        self.check_features(features)?;
        if fps == 0 {
            return Err(Error::invalid("fps must be positive"));
        }
        let n = self.len();
        if n == 0 {
            return Err(Error::invalid(
                "cannot compute statistics of an empty episode",
            ));
        }
        let mut out = Vec::new();
        for (name, numel, col) in &self.columns {
            if let Some(rows) = col.as_f64() {
                out.push((name.clone(), feature_stats(&rows, *numel)?));
            }
        }
        let ts: Vec<f64> = (0..n).map(|i| i as f64 / fps as f64).collect();
        let fi: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let ep = vec![episode_index as f64; n];
        let idx: Vec<f64> = (0..n).map(|i| (first_index + i as i64) as f64).collect();
        let ti: Vec<f64> = self.task_index.iter().map(|&t| t as f64).collect();
        for (name, rows) in [
            ("timestamp", ts),
            ("frame_index", fi),
            ("episode_index", ep),
            ("index", idx),
            ("task_index", ti),
        ] {
            out.push((name.to_string(), feature_stats(&rows, 1)?));
        }
        Ok(out)
    }
}

/// Per-feature statistics of `rows` (N×dim, row-major): reel-stats' LeRobot-exact
/// `get_feature_stats`.
fn feature_stats(rows: &[f64], dim: usize) -> Result<FeatureStats> {
    reel_stats::vector_stats(rows, dim)
}

/// Wraps a flat values array into the (possibly nested) fixed-size-list type `dt`.
fn nest(flat: ArrayRef, dt: &DataType) -> Result<ArrayRef> {
    match dt {
        DataType::FixedSizeList(item, n) => {
            let inner = nest(flat, item.data_type())?;
            let arr = FixedSizeListArray::try_new(item.clone(), *n, inner, None)
                .map_err(|e| Error::invalid(format!("building a fixed-size list column: {e}")))?;
            Ok(Arc::new(arr))
        }
        _ => Ok(flat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn feats() -> Features {
        Features::new()
            .with("action", Feature::vector_f32(&["a", "b"]))
            .unwrap()
            .with(
                "gripper",
                Feature {
                    dtype: Dtype::Float64,
                    shape: vec![1],
                    names: None,
                },
            )
            .unwrap()
            .with("cam", Feature::video(4, 4))
            .unwrap()
            .with(
                "note",
                Feature {
                    dtype: Dtype::String,
                    shape: vec![1],
                    names: None,
                },
            )
            .unwrap()
    }

    #[test]
    fn schema_batch_and_metadata() {
        let f = feats();
        let s = data_schema(&f);
        let names: Vec<&str> = s.fields().iter().map(|x| x.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "action",
                "gripper",
                "note",
                "timestamp",
                "frame_index",
                "episode_index",
                "index",
                "task_index"
            ]
        );
        assert_eq!(
            s.field(0).data_type(),
            &DataType::FixedSizeList(Arc::new(Field::new("element", DataType::Float32, true)), 2)
        );
        assert_eq!(s.field(1).data_type(), &DataType::Float64);
        assert!(s.fields().iter().all(|x| x.is_nullable()));
        let hf = hf_metadata(&f);
        assert!(hf.starts_with("{\"info\": {\"features\": {\"action\": {\"feature\": {\"dtype\": \"float32\", \"_type\": \"Value\"}, \"length\": 2, \"_type\": \"List\"}, \"gripper\": {\"dtype\": \"float64\", \"_type\": \"Value\"}, \"note\": {\"dtype\": \"string\", \"_type\": \"Value\"}, \"timestamp\": {\"dtype\": \"float32\", \"_type\": \"Value\"}"), "{hf}");
        assert!(hf.contains("\"fingerprint\": \"") && hf.ends_with("\"}"));

        let mut b = ColumnBuffers::new(&f);
        for i in 0..3 {
            let row = RowValues::new("t")
                .with("action", Value::F32(vec![i as f32, -(i as f32)]))
                .with("gripper", Value::F64(vec![0.5 * i as f64]))
                .with("note", Value::Str(format!("n{i}")));
            b.push(&row, 0).unwrap();
        }
        let bad = RowValues::new("t")
            .with("action", Value::F32(vec![1.0]))
            .with("gripper", Value::F64(vec![1.0]))
            .with("note", Value::Str("x".into()));
        assert!(b.push(&bad, 0).is_err());
        assert_eq!(b.len(), 3);
        let batch = b.to_batch(&f, 4, 100, 30).unwrap();
        assert_eq!(batch.num_rows(), 3);
        let ts = batch
            .column(3)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert_eq!(ts.values().to_vec(), vec![0.0, 0.033333335, 0.06666667]);
        let idx = batch
            .column(6)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(idx.values().to_vec(), vec![100, 101, 102]);
        let act = batch
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        let row2 = act.value(2);
        assert_eq!(
            row2.as_any()
                .downcast_ref::<Float32Array>()
                .unwrap()
                .values()
                .to_vec(),
            vec![2.0, -2.0]
        );

        let st = b.stats(&f, 4, 100, 30).unwrap();
        let keys: Vec<&str> = st.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "action",
                "gripper",
                "timestamp",
                "frame_index",
                "episode_index",
                "index",
                "task_index"
            ]
        );
        assert_eq!(st[0].1.min, vec![0.0, -2.0]);
        assert_eq!(st[0].1.max, vec![2.0, 0.0]);
        assert_eq!(st[0].1.mean, vec![1.0, -1.0]);
        assert_eq!(st[0].1.count, 3);
        assert_eq!(st[5].1.mean, vec![101.0]);
        assert!((st[2].1.max[0] - 2.0 / 30.0).abs() < 1e-15);
        b.truncate(1);
        assert_eq!(b.to_batch(&f, 0, 0, 30).unwrap().num_rows(), 1);
        b.clear();
        assert!(b.is_empty());
        assert!(b.stats(&f, 0, 0, 30).is_err());
    }
}
