//! LeRobot's features dict ⇄ the library's [`Features`].
//!
//! In: `{name: {"dtype": str, "shape": tuple|list, "names": list|None, "info": ...}}`, as
//! `hw_to_dataset_features` builds it. LeRobot's default columns (`timestamp`, `frame_index`,
//! `episode_index`, `index`, `task_index`) are the writer's own and are skipped when present;
//! `info` is written by the writer from the real video and ignored. Out: the same shape, with
//! shapes as tuples (as LeRobot's `load_info` returns them).

use crate::errors::{to_py, value_error};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use reel_core::{Dtype, Feature, Features, DEFAULT_FEATURES_NAMES};

/// Parses a features dict (see the module doc); errors name the feature.
pub(crate) fn from_py(d: &Bound<'_, PyAny>) -> PyResult<Features> {
    let d = d.cast::<PyDict>().map_err(|_| {
        value_error("features must be a dict {name: {\"dtype\", \"shape\", \"names\"}}")
    })?;
    let mut out = Features::new();
    for (k, v) in d.iter() {
        let name: String = k
            .extract()
            .map_err(|_| value_error(format!("feature names must be strings, got {k:?}")))?;
        if DEFAULT_FEATURES_NAMES.contains(&name.as_str()) {
            continue;
        }
        let spec = v.cast::<PyDict>().map_err(|_| {
            value_error(format!(
                "feature '{name}': expected a dict with dtype, shape, names"
            ))
        })?;
        let dtype: String = spec
            .get_item("dtype")?
            .ok_or_else(|| value_error(format!("feature '{name}': no dtype")))?
            .extract()
            .map_err(|_| value_error(format!("feature '{name}': dtype must be a string")))?;
        let dtype =
            Dtype::parse(&dtype).map_err(|e| to_py(e.context(format!("feature '{name}'"))))?;
        let shape_obj = spec
            .get_item("shape")?
            .ok_or_else(|| value_error(format!("feature '{name}': no shape")))?;
        let shape: Vec<usize> = shape_obj.extract().map_err(|_| {
            value_error(format!(
                "feature '{name}': shape must be a tuple or list of non-negative ints, got {shape_obj}"
            ))
        })?;
        let names = match spec.get_item("names")? {
            None => None,
            Some(n) if n.is_none() => None,
            Some(n) => Some(n.extract::<Vec<String>>().map_err(|_| {
                value_error(format!(
                    "feature '{name}': names must be a list of strings or None, got {n}"
                ))
            })?),
        };
        // LeRobot's depth cameras are `(h, w, 1)` with `info.is_depth_map` (as
        // `hw_to_dataset_features` builds them); reel reads the one channel as depth. An
        // `info` that says otherwise is refused rather than guessed.
        let flagged = spec
            .get_item("info")?
            .and_then(|i| {
                i.cast::<PyDict>()
                    .ok()
                    .and_then(|i| i.get_item("is_depth_map").ok().flatten())
            })
            .map(|b| b.is_truthy().unwrap_or(false));
        let one_channel = shape.len() == 3 && shape[2] == 1;
        if dtype == Dtype::Video && flagged.is_some_and(|d| d != one_channel) {
            return Err(value_error(format!(
                "camera '{name}': shape {shape:?} with info.is_depth_map={}: reel records depth maps as (height, width, 1) with is_depth_map true, RGB cameras as (height, width, 3)",
                flagged.unwrap_or(false)
            )));
        }
        out.push(
            name.clone(),
            Feature {
                dtype,
                shape,
                names,
            },
        )
        .map_err(to_py)?;
    }
    Ok(out)
}

/// The features as a dict (see the module doc).
pub(crate) fn to_py_dict<'py>(py: Python<'py>, f: &Features) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, feat) in f.iter() {
        let e = PyDict::new(py);
        e.set_item("dtype", PyString::new(py, feat.dtype.as_str()))?;
        e.set_item("shape", PyTuple::new(py, &feat.shape)?)?;
        match &feat.names {
            Some(n) => e.set_item("names", PyList::new(py, n)?)?,
            None => e.set_item("names", py.None())?,
        }
        if feat.is_depth() {
            let info = PyDict::new(py);
            info.set_item("is_depth_map", true)?;
            e.set_item("info", info)?;
        }
        d.set_item(name, e)?;
    }
    Ok(d)
}
