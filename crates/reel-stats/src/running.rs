//! `RunningQuantileStats`: LeRobot's streaming per-dimension statistics (count, mean,
//! mean of squares, min, max) plus one fixed-size histogram per dimension from which the
//! quantiles are read (spec §4.1). It exists so that a feature can be summarised batch by
//! batch (one video frame at a time) without keeping the data.
//!
//! Binning reproduces `numpy.histogram` on LeRobot's `linspace` edges exactly, but finds the
//! bin of a value in O(1): the index is computed arithmetically from the edges and then
//! corrected by one where floating-point rounding put it on the wrong side of an edge.

use crate::{quantile_key, FeatureStats, DEFAULT_BINS, QUANTILES};
use reel_core::{Error, Result};

/// Padding LeRobot puts around the first batch's `[min, max]` range.
const FIRST_BATCH_PAD: f64 = 1e-10;
/// Relative padding (times `max - min`) LeRobot uses when the range is re-fitted.
const REFIT_PAD: f64 = 1e-10;

/// Per-dimension histograms and moments, updated batch by batch, as LeRobot's
/// `RunningQuantileStats` (5000 bins by default).
#[derive(Debug, Clone)]
pub struct RunningQuantileStats {
    dim: usize,
    bins: usize,
    count: u64,
    mean: Vec<f64>,
    mean_sq: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    /// `dim * bins` counts, dimension-major.
    hist: Vec<u64>,
    /// One binner (edges plus lookup constants) per dimension.
    edges: Vec<Edges>,
}

/// The `bins + 1` edges of one dimension, as `numpy.linspace` builds them, plus what the
/// O(1) lookup needs.
#[derive(Debug, Clone)]
pub(crate) struct Edges {
    e: Vec<f64>,
    start: f64,
    /// `1 / step`; infinite or NaN when all edges coincide (the lookup then falls back to a
    /// binary search).
    inv_step: f64,
}

impl Edges {
    /// `numpy.linspace(start, stop, bins + 1)` in f64, operation for operation:
    /// `y = arange(n) * step; y += start; y[-1] = stop`, with `y = arange(n) / div * delta`
    /// when `step == 0`.
    pub(crate) fn linspace(start: f64, stop: f64, bins: usize) -> Self {
        let n = bins + 1;
        let div = bins as f64;
        let delta = stop - start;
        let step = delta / div;
        let mut e = Vec::with_capacity(n);
        if step == 0.0 {
            for i in 0..n {
                e.push((i as f64) / div * delta + start);
            }
        } else {
            for i in 0..n {
                e.push((i as f64) * step + start);
            }
        }
        if let Some(last) = e.last_mut() {
            *last = stop;
        }
        Edges {
            e,
            start,
            inv_step: 1.0 / step,
        }
    }

    fn bins(&self) -> usize {
        self.e.len() - 1
    }

    /// The number of edges `e` with `pred(e)` true, where `pred` is true on a prefix of the
    /// edges; `guess` is an estimate of that number. Checks the guess and its two neighbours,
    /// then falls back to a binary search.
    #[inline]
    fn count_prefix(&self, guess: usize, pred: impl Fn(f64) -> bool) -> usize {
        let e = &self.e;
        let n = e.len();
        let ok = |g: usize| (g == 0 || pred(e[g - 1])) && (g == n || !pred(e[g]));
        let g = guess.min(n);
        if ok(g) {
            return g;
        }
        if g < n && ok(g + 1) {
            return g + 1;
        }
        if g >= 1 && ok(g - 1) {
            return g - 1;
        }
        e.partition_point(|&x| pred(x))
    }

    /// Estimated number of edges `<= v` from the arithmetic of `linspace`.
    #[inline]
    fn guess(&self, v: f64) -> usize {
        let t = (v - self.start) * self.inv_step;
        // `as` saturates: negative and NaN give 0, huge values give usize::MAX.
        (t as usize).saturating_add(1)
    }

    /// The bin `numpy.histogram(values, bins=edges)` puts `v` in: bins are half-open
    /// `[e[j], e[j+1])` except the last, which also holds `e[bins]`; values outside the edges
    /// (and NaN) belong to no bin.
    #[inline]
    pub(crate) fn bin_of(&self, v: f64) -> Option<usize> {
        let nb = self.bins();
        let (first, last) = (self.e[0], self.e[nb]);
        if !(v >= first && v <= last) {
            return None;
        }
        if v == last {
            return Some(nb - 1);
        }
        // v < last: the bin is (number of edges <= v) - 1, which lies in 0..nb.
        let le = self.count_prefix(self.guess(v), |e| e <= v);
        Some(le.saturating_sub(1).min(nb - 1))
    }

    /// LeRobot's re-binning target for an old bin centre `c`:
    /// `clip(searchsorted(new_edges, c, side="left") - 1, 0, bins - 1)`.
    #[inline]
    fn rebin_target(&self, c: f64) -> usize {
        let nb = self.bins();
        let lt = self.count_prefix(self.guess(c), |e| e < c);
        lt.saturating_sub(1).min(nb - 1)
    }
}

impl RunningQuantileStats {
    /// Statistics over vectors of length `dim`, with LeRobot's 5000 histogram bins.
    pub fn new(dim: usize) -> Self {
        Self::with_bins(dim, DEFAULT_BINS)
    }

    /// Statistics over vectors of length `dim` with `bins` histogram bins per dimension
    /// (at least 1; 0 is treated as 1).
    pub fn with_bins(dim: usize, bins: usize) -> Self {
        RunningQuantileStats {
            dim,
            bins: bins.max(1),
            count: 0,
            mean: Vec::new(),
            mean_sq: Vec::new(),
            min: Vec::new(),
            max: Vec::new(),
            hist: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// The vector length D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of histogram bins per dimension.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Number of vectors seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The current bin edges of dimension `i` (`bins + 1` values); `None` before the first
    /// update or for `i >= dim`.
    pub fn bin_edges(&self, i: usize) -> Option<&[f64]> {
        self.edges.get(i).map(|e| e.e.as_slice())
    }

    /// The current histogram of dimension `i` (`bins` counts); `None` before the first
    /// update or for `i >= dim`.
    pub fn histogram(&self, i: usize) -> Option<&[u64]> {
        if i < self.edges.len() {
            self.hist.get(i * self.bins..(i + 1) * self.bins)
        } else {
            None
        }
    }

    /// Feeds M vectors: `rows` holds M*D values, row-major (M vectors of length D).
    ///
    /// Errors (and leaves the state untouched) when the length is not a multiple of D, the
    /// batch is empty, D is 0, or a value is not finite.
    pub fn update(&mut self, rows: &[f64]) -> Result<()> {
        self.update_rows(rows, self.dim)
    }

    /// As [`update`](Self::update), with the caller's idea of the vector length `dim`: errors
    /// with LeRobot's message when it differs from the length this instance was created for.
    pub fn update_rows(&mut self, rows: &[f64], dim: usize) -> Result<()> {
        if dim != self.dim {
            return Err(Error::invalid(format!(
                "The length of new vectors does not match the initialized vector length \
                 ({dim} instead of {})",
                self.dim
            )));
        }
        let d = self.dim;
        if d == 0 {
            return Err(Error::invalid(
                "statistics need vectors of length at least 1 (got 0)",
            ));
        }
        if rows.is_empty() {
            return Err(Error::invalid(
                "cannot update statistics with an empty batch",
            ));
        }
        if rows.len() % d != 0 {
            return Err(Error::invalid(format!(
                "The length of new vectors does not match the initialized vector length: \
                 {} values is not a whole number of vectors of length {d}",
                rows.len()
            )));
        }
        let m = rows.len() / d;
        let mut bmin = vec![f64::INFINITY; d];
        let mut bmax = vec![f64::NEG_INFINITY; d];
        let mut sum = vec![0.0f64; d];
        let mut sum_sq = vec![0.0f64; d];
        for (r, row) in rows.chunks_exact(d).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    return Err(Error::invalid(format!(
                        "statistics input has a non-finite value {v} at row {r}, dimension {i}"
                    )));
                }
                bmin[i] = bmin[i].min(v);
                bmax[i] = bmax[i].max(v);
                sum[i] += v;
                sum_sq[i] += v * v;
            }
        }
        let mf = m as f64;
        let bmean: Vec<f64> = sum.iter().map(|s| s / mf).collect();
        let bmean_sq: Vec<f64> = sum_sq.iter().map(|s| s / mf).collect();
        self.apply_moments(m as u64, &bmin, &bmax, &bmean, &bmean_sq);
        for row in rows.chunks_exact(d) {
            for (i, &v) in row.iter().enumerate() {
                if let Some(j) = self.edges[i].bin_of(v) {
                    self.hist[i * self.bins + j] += 1;
                }
            }
        }
        Ok(())
    }

    /// Feeds a batch given as, per dimension, the number of times each value occurs
    /// (`counts[i][v]` = occurrences of the value `v as f64` in dimension i; each dimension
    /// must count the same number of vectors M > 0). Equivalent to feeding those M vectors
    /// with [`update`](Self::update), including the moments: with integer values the sums are
    /// exact, so the result is identical.
    pub(crate) fn update_value_counts(&mut self, counts: &[[u64; 256]]) -> Result<()> {
        if counts.len() != self.dim || self.dim == 0 {
            return Err(Error::invalid(format!(
                "The length of new vectors does not match the initialized vector length \
                 ({} instead of {})",
                counts.len(),
                self.dim
            )));
        }
        let m: u64 = counts[0].iter().sum();
        if m == 0 {
            return Err(Error::invalid(
                "cannot update statistics with an empty batch",
            ));
        }
        let d = self.dim;
        let mut bmin = vec![0.0; d];
        let mut bmax = vec![0.0; d];
        let mut bmean = vec![0.0; d];
        let mut bmean_sq = vec![0.0; d];
        for (i, c) in counts.iter().enumerate() {
            let mi: u64 = c.iter().sum();
            if mi != m {
                return Err(Error::invalid(format!(
                    "value counts cover {mi} vectors in dimension {i} but {m} in dimension 0"
                )));
            }
            let lo = c.iter().position(|&n| n > 0).unwrap_or(0);
            let hi = c.iter().rposition(|&n| n > 0).unwrap_or(0);
            let (mut s, mut s2) = (0u64, 0u64);
            for (v, &n) in c.iter().enumerate() {
                let v = v as u64;
                s += n * v;
                s2 += n * v * v;
            }
            bmin[i] = lo as f64;
            bmax[i] = hi as f64;
            bmean[i] = s as f64 / m as f64;
            bmean_sq[i] = s2 as f64 / m as f64;
        }
        self.apply_moments(m, &bmin, &bmax, &bmean, &bmean_sq);
        for (i, c) in counts.iter().enumerate() {
            for (v, &n) in c.iter().enumerate() {
                if n > 0 {
                    if let Some(j) = self.edges[i].bin_of(v as f64) {
                        self.hist[i * self.bins + j] += n;
                    }
                }
            }
        }
        Ok(())
    }

    /// LeRobot's `update` up to (not including) the histogram fill: first-batch
    /// initialisation or min/max widening with a histogram re-fit, then the running moments.
    fn apply_moments(
        &mut self,
        m: u64,
        bmin: &[f64],
        bmax: &[f64],
        bmean: &[f64],
        bmean_sq: &[f64],
    ) {
        let d = self.dim;
        if self.count == 0 {
            self.mean = bmean.to_vec();
            self.mean_sq = bmean_sq.to_vec();
            self.min = bmin.to_vec();
            self.max = bmax.to_vec();
            self.hist = vec![0; d * self.bins];
            self.edges = (0..d)
                .map(|i| {
                    Edges::linspace(
                        bmin[i] - FIRST_BATCH_PAD,
                        bmax[i] + FIRST_BATCH_PAD,
                        self.bins,
                    )
                })
                .collect();
        } else {
            let mut changed = false;
            for i in 0..d {
                if bmin[i] < self.min[i] {
                    self.min[i] = bmin[i];
                    changed = true;
                }
                if bmax[i] > self.max[i] {
                    self.max[i] = bmax[i];
                    changed = true;
                }
            }
            if changed {
                self.refit_histograms();
            }
        }
        self.count += m;
        let w = m as f64 / self.count as f64;
        for i in 0..d {
            self.mean[i] += (bmean[i] - self.mean[i]) * w;
            self.mean_sq[i] += (bmean_sq[i] - self.mean_sq[i]) * w;
        }
    }

    /// LeRobot's `_adjust_histograms`: every dimension gets new edges on its current
    /// `[min, max]` (padded by `(max - min) * 1e-10`), and each old non-empty bin's count moves
    /// to the new bin holding the old bin's centre. O(dim * bins).
    fn refit_histograms(&mut self) {
        let nb = self.bins;
        for i in 0..self.dim {
            let pad = (self.max[i] - self.min[i]) * REFIT_PAD;
            let new_edges = Edges::linspace(self.min[i] - pad, self.max[i] + pad, nb);
            let old_edges = &self.edges[i].e;
            let mut new_hist = vec![0u64; nb];
            let old_hist = &self.hist[i * nb..(i + 1) * nb];
            for (j, &n) in old_hist.iter().enumerate() {
                if n > 0 {
                    let centre = (old_edges[j] + old_edges[j + 1]) / 2.0;
                    new_hist[new_edges.rebin_target(centre)] += n;
                }
            }
            self.hist[i * nb..(i + 1) * nb].copy_from_slice(&new_hist);
            self.edges[i] = new_edges;
        }
    }

    /// LeRobot's `get_statistics()`: min, max, mean, population std
    /// (`sqrt(max(0, mean_sq - mean^2))`), count and the five histogram quantiles.
    pub fn get_statistics(&self) -> Result<FeatureStats> {
        if self.count < 2 {
            return Err(Error::invalid(
                "Cannot compute statistics for less than 2 vectors.",
            ));
        }
        let std = self
            .mean
            .iter()
            .zip(&self.mean_sq)
            .map(|(m, sq)| (sq - m * m).max(0.0).sqrt())
            .collect();
        let quantiles = QUANTILES
            .iter()
            .map(|&q| {
                let values = (0..self.dim).map(|i| self.quantile(i, q)).collect();
                (quantile_key(q), values)
            })
            .collect();
        Ok(FeatureStats {
            min: self.min.clone(),
            max: self.max.clone(),
            mean: self.mean.clone(),
            std,
            count: self.count,
            quantiles,
        })
    }

    /// Quantile `q` of dimension `i`, read off the histogram with linear interpolation
    /// inside the bin (LeRobot's `_compute_single_quantile`).
    fn quantile(&self, i: usize, q: f64) -> f64 {
        let nb = self.bins;
        let hist = &self.hist[i * nb..(i + 1) * nb];
        let edges = &self.edges[i].e;
        let target = q * self.count as f64;
        // k = first index with cumsum[k] >= target (searchsorted, side="left").
        let mut cum = 0.0f64;
        let mut prev = 0.0f64;
        let mut k = nb;
        for (j, &n) in hist.iter().enumerate() {
            prev = cum;
            cum += n as f64;
            if cum >= target {
                k = j;
                break;
            }
        }
        if k == 0 {
            return edges[0];
        }
        if k >= nb {
            return edges[nb];
        }
        let in_bin = cum - prev;
        if in_bin == 0.0 {
            return edges[k];
        }
        let frac = (target - prev) / in_bin;
        edges[k] + frac * (edges[k + 1] - edges[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy.histogram's rule, by definition: the last j with e[j] <= v, except that
    /// v == e[last] goes to the last bin.
    fn reference_bin(e: &[f64], v: f64) -> Option<usize> {
        let nb = e.len() - 1;
        if !(v >= e[0] && v <= e[nb]) {
            return None;
        }
        if v == e[nb] {
            return Some(nb - 1);
        }
        Some(e.iter().filter(|&&x| x <= v).count() - 1)
    }

    #[test]
    fn linspace_matches_numpy_layout() {
        let e = Edges::linspace(-1e-10, 19.0 + 1e-10, 5000);
        assert_eq!(e.e.len(), 5001);
        assert_eq!(e.e[0], -1e-10);
        assert_eq!(e.e[5000], 19.0 + 1e-10);
        let step = (19.0 + 1e-10 - (-1e-10)) / 5000.0;
        assert_eq!(e.e[1234], 1234.0 * step + -1e-10);
        let flat = Edges::linspace(3.0, 3.0, 10);
        assert!(flat.e.iter().all(|&x| x == 3.0));
    }

    #[test]
    fn bin_of_agrees_with_numpy_rule_on_edges_and_between() {
        for (lo, hi, nb) in [
            (-1e-10, 255.0 + 1e-10, 5000),
            (0.1, 0.7, 7),
            (-11.0, 1.2, 5000),
            (5.0, 5.0, 50),
        ] {
            let e = Edges::linspace(lo, hi, nb);
            let mut probes: Vec<f64> = e.e.clone();
            for w in e.e.windows(2) {
                probes.push((w[0] + w[1]) / 2.0);
                probes.push(f64::from_bits(w[0].to_bits().wrapping_sub(1)));
                probes.push(f64::from_bits(w[1].to_bits().wrapping_add(1)));
            }
            probes.extend([lo - 1.0, hi + 1.0, f64::NAN, 0.0, 1.0, 255.0]);
            for v in probes {
                assert_eq!(
                    e.bin_of(v),
                    reference_bin(&e.e, v),
                    "v={v} lo={lo} hi={hi} nb={nb}"
                );
            }
        }
    }

    #[test]
    fn rebin_target_is_searchsorted_left_minus_one() {
        let e = Edges::linspace(-11.0 - 2.2e-9, 11.0 + 2.2e-9, 5000);
        for c in [-12.0, -11.0, -0.3, 0.0, 1.2, 10.999, 11.0, 20.0] {
            let lt = e.e.iter().filter(|&&x| x < c).count();
            assert_eq!(e.rebin_target(c), lt.saturating_sub(1).min(4999), "c={c}");
        }
        for &x in e.e.iter().step_by(97) {
            let lt = e.e.iter().filter(|&&y| y < x).count();
            assert_eq!(e.rebin_target(x), lt.saturating_sub(1).min(4999));
        }
    }

    #[test]
    fn value_counts_equal_row_updates() {
        let mut rows = Vec::new();
        let mut counts = vec![[0u64; 256]; 3];
        for k in 0..500u64 {
            for (c, count) in counts.iter_mut().enumerate() {
                let v = ((k * 37 + c as u64 * 11) % 200 + 20) as usize;
                rows.push(v as f64);
                count[v] += 1;
            }
        }
        let mut a = RunningQuantileStats::new(3);
        let mut b = RunningQuantileStats::new(3);
        a.update(&rows).unwrap();
        b.update_value_counts(&counts).unwrap();
        // A second, wider batch re-fits the histograms in both.
        let rows2 = [0.0, 255.0, 3.0, 250.0, 1.0, 7.0];
        let mut counts2 = vec![[0u64; 256]; 3];
        for row in rows2.chunks(3) {
            for (c, &v) in row.iter().enumerate() {
                counts2[c][v as usize] += 1;
            }
        }
        a.update(&rows2).unwrap();
        b.update_value_counts(&counts2).unwrap();
        assert_eq!(a.get_statistics().unwrap(), b.get_statistics().unwrap());
        assert_eq!(a.histogram(1), b.histogram(1));
    }
}
