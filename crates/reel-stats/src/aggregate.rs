//! Whole-column statistics and their merging: LeRobot's `get_feature_stats` for a numeric
//! column (spec §4.2) and `aggregate_stats` (§4.4), which folds each new episode's stats
//! into the dataset's running `stats.json`.

use crate::{quantile_key, FeatureStats, RunningQuantileStats, QUANTILES};
use reel_core::{Error, Result};

/// LeRobot `get_feature_stats(array, axis=0)` for a numeric column: `rows` is N*D values,
/// row-major (N vectors of length `dim`).
///
/// With N >= 2 this is one [`RunningQuantileStats`] update; with N == 1 it is min, max,
/// mean, population std (0) and every quantile equal to the mean, as LeRobot does. `count`
/// is N. Errors on empty input, `dim == 0`, a length that is not a multiple of `dim`, or a
/// non-finite value.
pub fn vector_stats(rows: &[f64], dim: usize) -> Result<FeatureStats> {
    if dim == 0 {
        return Err(Error::invalid(
            "statistics need vectors of length at least 1 (got 0)",
        ));
    }
    if rows.is_empty() {
        return Err(Error::invalid(
            "cannot compute statistics of an empty column",
        ));
    }
    if rows.len() % dim != 0 {
        return Err(Error::invalid(format!(
            "{} values is not a whole number of vectors of length {dim}",
            rows.len()
        )));
    }
    let n = rows.len() / dim;
    if n >= 2 {
        let mut rs = RunningQuantileStats::new(dim);
        rs.update(rows)?;
        let mut stats = rs.get_statistics()?;
        stats.count = n as u64;
        return Ok(stats);
    }
    // A single vector: np.min / np.max / np.mean / np.std of one row, quantiles = mean.
    if let Some((i, v)) = rows.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(format!(
            "statistics input has a non-finite value {v} at row 0, dimension {i}"
        )));
    }
    let mean = rows.to_vec();
    Ok(FeatureStats {
        min: rows.to_vec(),
        max: rows.to_vec(),
        std: vec![0.0; dim],
        count: n as u64,
        quantiles: QUANTILES
            .iter()
            .map(|&q| (quantile_key(q), mean.clone()))
            .collect(),
        mean,
    })
}

/// Pairwise `aggregate_stats` (§4.4): count = sum of counts; mean = count-weighted mean;
/// std from the parallel-variance formula `sum c_j (s_j^2 + (m_j - mean)^2) / count`;
/// min and max element-wise; each quantile key of `a` that `b` also has is merged as the
/// element-wise **min** for `qNN` with NN <= 50 and the **max** above (a conservative
/// envelope, not a true quantile). Quantiles missing from either input are dropped, as are
/// keys that do not read `q<number>`; the result keeps `a`'s quantile order.
///
/// Degenerate inputs never panic: where the vectors of `a` and `b` have different lengths,
/// an element present in only one input is taken from it (with its std, or 0 if its std is
/// missing); when both counts are 0 the means and variances are averaged with equal weights.
pub fn aggregate(a: &FeatureStats, b: &FeatureStats) -> FeatureStats {
    let count = a.count + b.count;
    let (wa, wb, total) = if count == 0 {
        (1.0, 1.0, 2.0)
    } else {
        (a.count as f64, b.count as f64, count as f64)
    };
    let n = a.mean.len().max(b.mean.len());
    let mut mean = Vec::with_capacity(n);
    let mut std = Vec::with_capacity(n);
    for i in 0..n {
        match (a.mean.get(i), b.mean.get(i)) {
            (Some(&ma), Some(&mb)) => {
                let sa = a.std.get(i).copied().unwrap_or(0.0);
                let sb = b.std.get(i).copied().unwrap_or(0.0);
                // numpy: (means * counts).sum(axis=0) / total_count
                let m = (ma * wa + mb * wb) / total;
                let (da, db) = (ma - m, mb - m);
                // numpy: ((variances + delta**2) * counts).sum(axis=0) / total_count
                let var = ((sa * sa + da * da) * wa + (sb * sb + db * db) * wb) / total;
                mean.push(m);
                std.push(var.sqrt());
            }
            (Some(&m), None) => {
                mean.push(m);
                std.push(a.std.get(i).copied().unwrap_or(0.0));
            }
            (None, Some(&m)) => {
                mean.push(m);
                std.push(b.std.get(i).copied().unwrap_or(0.0));
            }
            (None, None) => {}
        }
    }
    let quantiles = a
        .quantiles
        .iter()
        .filter_map(|(key, qa)| {
            let (_, qb) = b.quantiles.iter().find(|(k, _)| k == key)?;
            let level: f64 = key.strip_prefix('q')?.parse().ok()?;
            let merged = if level <= 50.0 {
                elementwise(qa, qb, f64::min)
            } else {
                elementwise(qa, qb, f64::max)
            };
            Some((key.clone(), merged))
        })
        .collect();
    FeatureStats {
        min: elementwise(&a.min, &b.min, f64::min),
        max: elementwise(&a.max, &b.max, f64::max),
        mean,
        std,
        count,
        quantiles,
    }
}

/// Aggregates many stats by folding [`aggregate`] left to right (the running dataset stats
/// absorb one episode at a time, as LeRobot does after every `save_episode`). `None` for an
/// empty slice.
pub fn aggregate_all(items: &[FeatureStats]) -> Option<FeatureStats> {
    let (first, rest) = items.split_first()?;
    Some(rest.iter().fold(first.clone(), |acc, s| aggregate(&acc, s)))
}

/// `f(a[i], b[i])` where both exist, the present value where only one does.
fn elementwise(a: &[f64], b: &[f64], f: fn(f64, f64) -> f64) -> Vec<f64> {
    (0..a.len().max(b.len()))
        .filter_map(|i| match (a.get(i), b.get(i)) {
            (Some(&x), Some(&y)) => Some(f(x, y)),
            (Some(&x), None) | (None, Some(&x)) => Some(x),
            (None, None) => None,
        })
        .collect()
}
