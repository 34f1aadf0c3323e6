//! `meta/tasks.parquet` (spec §1.9): a pandas frame indexed by the task string with one
//! column `task_index`. The `pandas` schema metadata is what makes LeRobot's loader return
//! task strings instead of integers, so it is written exactly as pandas 2.3.3/pyarrow do.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use reel_core::journal::{write_atomic, Journal};
use reel_core::{Error, Result};

use crate::parquet_append::{encode_file, read_batches};
use crate::paths;

/// The `pandas` key-value metadata pandas writes for this frame (spec §1.9, verbatim).
pub const PANDAS_METADATA: &str = r#"{"index_columns": ["task"], "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}], "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": null}, {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}], "attributes": {}, "creator": {"library": "pyarrow", "version": "26.0.1"}, "pandas_version": "2.3.3"}"#;

/// Rewrites `root/meta/tasks.parquet` with `tasks` (position = task_index), atomically and
/// journaled.
pub fn write(root: &Path, tasks: &[String], journal: &mut Journal) -> Result<()> {
    let path = paths::tasks_file(root);
    let schema = Arc::new(Schema::new(vec![
        Field::new("task_index", DataType::Int64, true),
        Field::new("task", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                (0..tasks.len() as i64).collect::<Vec<i64>>(),
            )),
            Arc::new(StringArray::from(tasks.to_vec())),
        ],
    )
    .map_err(|e| Error::invalid(format!("building tasks table: {e}")))?;
    let bytes = encode_file(
        &path,
        &batch,
        &[("pandas".to_string(), PANDAS_METADATA.to_string())],
    )?;
    journal.record_replace(&path)?;
    write_atomic(&path, &bytes, false)
}

/// Reads `root/meta/tasks.parquet`; position in the result = task_index. Errors
/// ([`Error::Corrupt`]) unless the indices are exactly 0..n-1.
pub fn read(root: &Path) -> Result<Vec<String>> {
    let path = paths::tasks_file(root);
    let mut pairs: Vec<(i64, String)> = Vec::new();
    for b in read_batches(&path)? {
        let idx = b
            .column_by_name("task_index")
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>().cloned())
            .ok_or_else(|| Error::corrupt(&path, "column 'task_index' (int64) missing"))?;
        let names = b
            .column_by_name("task")
            .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
            .ok_or_else(|| Error::corrupt(&path, "column 'task' (string) missing"))?;
        for i in 0..b.num_rows() {
            if idx.is_null(i) || names.is_null(i) {
                return Err(Error::corrupt(
                    &path,
                    format!("row {i} has a null task or task_index"),
                ));
            }
            pairs.push((idx.value(i), names.value(i).to_string()));
        }
    }
    pairs.sort_by_key(|p| p.0);
    for (pos, (i, t)) in pairs.iter().enumerate() {
        if *i != pos as i64 {
            return Err(Error::corrupt(
                &path,
                format!(
                    "task_index values must be 0..{}; task '{t}' has {i}",
                    pairs.len().saturating_sub(1)
                ),
            ));
        }
    }
    Ok(pairs.into_iter().map(|p| p.1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_append::key_value_metadata;

    #[test]
    fn write_read_and_rollback() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let jp = root.join(".reel/journal");
        let mut j = Journal::begin(&jp, root, false).unwrap();
        write(root, &["pick the cube".into(), "dé".into()], &mut j).unwrap();
        j.commit().unwrap();
        assert_eq!(
            read(root).unwrap(),
            vec!["pick the cube".to_string(), "dé".to_string()]
        );
        let kv = key_value_metadata(&paths::tasks_file(root)).unwrap();
        assert!(kv
            .iter()
            .any(|(k, v)| k == "pandas" && v == PANDAS_METADATA));
        let mut j = Journal::begin(&jp, root, false).unwrap();
        write(root, &["x".into()], &mut j).unwrap();
        assert_eq!(read(root).unwrap(), vec!["x".to_string()]);
        j.rollback().unwrap();
        assert_eq!(read(root).unwrap().len(), 2);
    }
}
