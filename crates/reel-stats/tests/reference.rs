//! Ports of LeRobot's `tests/datasets/test_compute_stats.py` (spec §8.4) and of the
//! `stats.json` values observed on a LeRobot-written dataset (§1.10), checked against the
//! numbers LeRobot's tests expect or against values worked out by hand.

use reel_stats::{
    aggregate, aggregate_all, vector_stats, FeatureStats, RunningQuantileStats, DEFAULT_BINS,
    QUANTILES,
};

fn close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() <= tol,
            "{actual:?} vs {expected:?} (tol {tol})"
        );
    }
}

/// Deterministic pseudo-random numbers in [0, 1) (a 64-bit LCG), for reproducible data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of 12 uniforms - 6), shifted by `mu`.
    fn normalish(&mut self, mu: f64) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0 + mu
    }
}

fn keys(s: &FeatureStats) -> Vec<&str> {
    s.quantiles.iter().map(|(k, _)| k.as_str()).collect()
}

fn stats(min: &[f64], max: &[f64], mean: &[f64], std: &[f64], count: u64) -> FeatureStats {
    FeatureStats {
        min: min.to_vec(),
        max: max.to_vec(),
        mean: mean.to_vec(),
        std: std.to_vec(),
        count,
        quantiles: Vec::new(),
    }
}

const SAMPLE: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

#[test]
fn get_feature_stats_axis_0_keepdims() {
    let s = vector_stats(&SAMPLE, 3).unwrap();
    assert_eq!(s.min, vec![1.0, 2.0, 3.0]);
    assert_eq!(s.max, vec![7.0, 8.0, 9.0]);
    assert_eq!(s.mean, vec![4.0, 5.0, 6.0]);
    close(&s.std, &[2.44948974; 3], 1e-8);
    assert_eq!(s.count, 3);
    assert_eq!(keys(&s), ["q01", "q10", "q50", "q90", "q99"]);
}

#[test]
fn get_feature_stats_axis_1_via_transpose() {
    // LeRobot's axis=(1,) reduces each row: feed the transpose.
    let t = [1.0, 4.0, 7.0, 2.0, 5.0, 8.0, 3.0, 6.0, 9.0];
    let s = vector_stats(&t, 3).unwrap();
    assert_eq!(s.min, vec![1.0, 4.0, 7.0]);
    assert_eq!(s.max, vec![3.0, 6.0, 9.0]);
    assert_eq!(s.mean, vec![2.0, 5.0, 8.0]);
    close(&s.std, &[0.81649658; 3], 1e-8);
}

#[test]
fn get_feature_stats_no_axis_via_flatten() {
    // axis=None flattens; LeRobot then reports count = len(array) = 3 rows, we report the 9
    // values fed (callers wanting LeRobot's count overwrite it).
    let s = vector_stats(&SAMPLE, 1).unwrap();
    assert_eq!((s.min[0], s.max[0], s.mean[0]), (1.0, 9.0, 5.0));
    close(&s.std, &[2.5819889], 1e-7);
    assert_eq!(s.count, 9);
}

#[test]
fn get_feature_stats_empty_and_bad_shapes_are_errors() {
    assert!(vector_stats(&[], 3).is_err());
    assert!(vector_stats(&[1.0, 2.0], 0).is_err());
    let e = vector_stats(&[1.0, 2.0, 3.0, 4.0], 3).unwrap_err();
    assert!(e.to_string().contains("length 3"), "{e}");
    let e = vector_stats(&[1.0, f64::NAN, 3.0, 4.0], 2).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    assert!(vector_stats(&[f64::INFINITY], 1).is_err());
}

#[test]
fn get_feature_stats_single_value() {
    let s = vector_stats(&[1337.0], 1).unwrap();
    assert_eq!(
        (s.min[0], s.max[0], s.mean[0], s.std[0], s.count),
        (1337.0, 1337.0, 1337.0, 0.0, 1)
    );
    assert_eq!(keys(&s), ["q01", "q10", "q50", "q90", "q99"]);
    assert!(s.quantiles.iter().all(|(_, v)| v == &vec![1337.0]));
}

#[test]
fn aggregate_feature_stats_two_singletons() {
    let a = stats(&[1.0], &[10.0], &[5.0], &[2.0], 1);
    let b = stats(&[2.0], &[12.0], &[6.0], &[2.5], 1);
    let r = aggregate(&a, &b);
    assert_eq!(r.min, vec![1.0]);
    assert_eq!(r.max, vec![12.0]);
    assert_eq!(r.mean, vec![5.5]);
    close(&r.std, &[2.318405], 1e-6);
    assert_eq!(r.count, 2);
}

#[test]
fn aggregate_stats_example() {
    // test_aggregate_stats: the image feature (3 channels) and the state feature.
    let img_a = stats(
        &[1.0, 2.0, 3.0],
        &[10.0, 20.0, 30.0],
        &[5.5, 10.5, 15.5],
        &[2.87, 5.87, 8.87],
        10,
    );
    let img_b = stats(
        &[2.0, 1.0, 0.0],
        &[15.0, 10.0, 5.0],
        &[8.5, 5.5, 2.5],
        &[3.42, 2.42, 1.42],
        15,
    );
    let r = aggregate(&img_a, &img_b);
    assert_eq!(r.min, vec![1.0, 1.0, 0.0]);
    assert_eq!(r.max, vec![15.0, 20.0, 30.0]);
    close(&r.mean, &[7.3, 7.5, 7.7], 1e-12);
    // assert_allclose(atol=1e-4, rtol=1e-4)
    for (a, e) in r.std.iter().zip([3.5317, 4.8267, 8.5581]) {
        assert!((a - e).abs() <= 1e-4 + 1e-4 * e, "{a} vs {e}");
    }
    assert_eq!(r.count, 25);

    let st = aggregate(
        &stats(&[1.0], &[10.0], &[5.5], &[2.87], 10),
        &stats(&[2.0], &[15.0], &[8.5], &[3.42], 15),
    );
    assert_eq!((st.min[0], st.max[0], st.count), (1.0, 15.0, 25));
    close(&st.mean, &[7.3], 1e-12);
    assert!((st.std[0] - 3.5317).abs() <= 1e-4 + 1e-4 * 3.5317);
}

#[test]
fn frame_index_0_to_19_by_hand() {
    // frame_index of a 20-frame episode at 30 fps, int64 in LeRobot, so computed in float64.
    let rows: Vec<f64> = (0..20).map(f64::from).collect();
    let s = vector_stats(&rows, 1).unwrap();
    assert_eq!(
        (s.min[0], s.max[0], s.mean[0], s.count),
        (0.0, 19.0, 9.5, 20)
    );
    // mean of squares = 2470 / 20 = 123.5; 123.5 - 9.5^2 = 33.25.
    assert_eq!(s.std[0], 33.25f64.sqrt());
    // First edge = 0 - 1e-10 and target 0.2 <= cumsum[0] = 1: q01 is the first edge.
    assert_eq!(s.quantile("q01").unwrap(), &[-1e-10]);
    // Edges: linspace(-1e-10, 19 + 1e-10, 5001); value v sits in bin floor((v + 1e-10) / step).
    let start = -1e-10;
    let step = (19.0 + 1e-10 - start) / 5000.0;
    let edge = |j: f64| j * step + start;
    let bin = |v: f64| ((v - start) / step).floor();
    // q10: target 2 is reached in value 1's bin, holding 1 count with 1 below: its right edge.
    close(s.quantile("q10").unwrap(), &[edge(bin(1.0) + 1.0)], 1e-12);
    // q50: target 10 -> value 9's bin, right edge.
    close(s.quantile("q50").unwrap(), &[edge(bin(9.0) + 1.0)], 1e-12);
    // q90: target 18 -> value 17's bin, right edge.
    close(s.quantile("q90").unwrap(), &[edge(bin(17.0) + 1.0)], 1e-12);
    // q99: target 19.8 -> value 19's bin (the last, 4999), 0.8 of the way through it.
    assert_eq!(bin(19.0), 4999.0);
    close(
        s.quantile("q99").unwrap(),
        &[edge(4999.0) + 0.8 * step],
        1e-12,
    );
}

#[test]
fn stats_json_excerpt_two_episodes() {
    // stats.json of a dataset with episodes of 20 and 15 frames (§1.10):
    // "frame_index": {"min": [0.0], "max": [19.0], "mean": [8.428571428571429],
    //                 "std": [5.341405455954263], "count": [35], "q01": [-1e-10], ...}
    let ep0: Vec<f64> = (0..20).map(f64::from).collect();
    let ep1: Vec<f64> = (0..15).map(f64::from).collect();
    let r = aggregate(
        &vector_stats(&ep0, 1).unwrap(),
        &vector_stats(&ep1, 1).unwrap(),
    );
    assert_eq!((r.min[0], r.max[0], r.count), (0.0, 19.0, 35));
    assert_eq!(r.mean[0], 8.428571428571429);
    assert_eq!(r.std[0], 5.341405455954263);
    assert_eq!(r.quantile("q01").unwrap(), &[-1e-10]);
    assert_eq!(keys(&r), ["q01", "q10", "q50", "q90", "q99"]);
}

#[test]
fn running_quantile_stats_initialization() {
    let rs = RunningQuantileStats::new(3);
    assert_eq!((rs.count(), rs.dim(), rs.bins()), (0, 3, DEFAULT_BINS));
    assert_eq!(RunningQuantileStats::with_bins(3, 1000).bins(), 1000);
    assert!(rs.bin_edges(0).is_none() && rs.histogram(0).is_none());
}

#[test]
fn running_quantile_stats_single_and_multiple_batches() {
    let mut g = Lcg(42);
    let d1: Vec<f64> = (0..200).map(|_| g.normalish(0.0)).collect(); // 100 x 2
    let d2: Vec<f64> = (0..300).map(|_| g.normalish(1.0)).collect(); // 150 x 2
    let mut rs = RunningQuantileStats::new(2);
    rs.update(&d1).unwrap();
    assert_eq!(rs.count(), 100);
    assert_eq!(rs.histogram(1).unwrap().iter().sum::<u64>(), 100);
    rs.update(&d2).unwrap();
    assert_eq!(rs.count(), 250);
    let all: Vec<f64> = d1.iter().chain(&d2).copied().collect();
    let s = rs.get_statistics().unwrap();
    for i in 0..2 {
        let col: Vec<f64> = all.iter().skip(i).step_by(2).copied().collect();
        let mean = col.iter().sum::<f64>() / 250.0;
        let std = (col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 250.0).sqrt();
        assert!((s.mean[i] - mean).abs() < 1e-10, "{} vs {mean}", s.mean[i]);
        assert!((s.std[i] - std).abs() < 1e-6, "{} vs {std}", s.std[i]);
        let min = col.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(s.min[i], min);
        // Every value is still in the histogram after the re-fit.
        assert_eq!(rs.histogram(i).unwrap().iter().sum::<u64>(), 250);
    }
}

#[test]
fn quantiles_present_and_monotone() {
    let mut g = Lcg(7);
    let data: Vec<f64> = (0..2000).map(|_| g.normalish(0.0)).collect();
    let s = vector_stats(&data, 2).unwrap();
    assert_eq!(keys(&s), ["q01", "q10", "q50", "q90", "q99"]);
    assert_eq!(QUANTILES.len(), s.quantiles.len());
    for w in s.quantiles.windows(2) {
        for i in 0..2 {
            assert!(w[0].1[i] <= w[1].1[i], "{:?}", s.quantiles);
        }
    }
    for i in 0..2 {
        assert!(s.min[i] - 1e-9 <= s.quantiles[0].1[i] && s.quantiles[4].1[i] <= s.max[i] + 1e-9);
        assert!(s.quantiles[0].1[i] < s.quantiles[4].1[i]);
    }
}

#[test]
fn q50_of_uniform_ramp_is_the_median() {
    let ramp: Vec<f64> = (0..=10_000).map(|i| f64::from(i) / 10_000.0).collect();
    let s = vector_stats(&ramp, 1).unwrap();
    let bin_width = 1.0 / 5000.0;
    for (key, expected) in [
        ("q01", 0.01),
        ("q10", 0.10),
        ("q50", 0.5),
        ("q90", 0.9),
        ("q99", 0.99),
    ] {
        let q = s.quantile(key).unwrap()[0];
        assert!(
            (q - expected).abs() <= bin_width,
            "{key}: {q} vs {expected}"
        );
    }
}

#[test]
fn constant_data_gives_the_constant_for_every_quantile() {
    let data = vec![1.0; 300]; // 100 x 3
    let s = vector_stats(&data, 3).unwrap();
    assert_eq!(s.std, vec![0.0; 3]);
    for (_, q) in &s.quantiles {
        close(q, &[1.0; 3], 1e-9);
    }
    // A constant dimension next to one that widens: the constant one's edges collapse to a
    // point on the re-fit (pad = 0) and its quantiles stay the constant.
    let mut rs = RunningQuantileStats::new(2);
    rs.update(&[5.0, 0.0, 5.0, 1.0]).unwrap();
    rs.update(&[5.0, 2.0, 5.0, -3.0]).unwrap();
    assert!(rs.bin_edges(0).unwrap().iter().all(|&e| e == 5.0));
    let s = rs.get_statistics().unwrap();
    for (_, q) in &s.quantiles {
        assert_eq!(q[0], 5.0);
    }
    assert_eq!(rs.histogram(0).unwrap().iter().sum::<u64>(), 4);
}

#[test]
fn histogram_edges_widen_to_new_min_max() {
    let mut rs = RunningQuantileStats::new(2);
    rs.update(&[0.0, 1.0, 0.1, 1.1, 0.2, 1.2]).unwrap();
    let e0 = rs.bin_edges(0).unwrap().to_vec();
    let e1 = rs.bin_edges(1).unwrap().to_vec();
    assert_eq!(e0.len(), 5001);
    assert_eq!((e0[0], e0[5000]), (0.0 - 1e-10, 0.2 + 1e-10));
    rs.update(&[10.0, -10.0, 11.0, -11.0]).unwrap();
    let n0 = rs.bin_edges(0).unwrap();
    let n1 = rs.bin_edges(1).unwrap();
    assert_ne!(e0, n0);
    assert_ne!(e1, n1);
    assert!(n0[0] <= 0.0 && n0[5000] >= 11.0);
    assert!(n1[0] <= -11.0 && n1[5000] >= 1.2);
    // pad = (max - min) * 1e-10
    assert_eq!(n0[0], 0.0 - 11.0 * 1e-10);
    assert_eq!(n1[5000], 1.2 + (1.2 - -11.0) * 1e-10);
    assert_eq!(rs.histogram(0).unwrap().iter().sum::<u64>(), 5);
    assert_eq!(rs.histogram(1).unwrap().iter().sum::<u64>(), 5);
    assert_eq!(rs.count(), 5);
}

#[test]
fn less_than_two_vectors_is_an_error() {
    let mut rs = RunningQuantileStats::new(1);
    let e = rs.get_statistics().unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot compute statistics for less than 2 vectors."
    );
    rs.update(&[1.0]).unwrap();
    let e = rs.get_statistics().unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot compute statistics for less than 2 vectors."
    );
    rs.update(&[2.0]).unwrap();
    assert_eq!(rs.get_statistics().unwrap().count, 2);
}

#[test]
fn dimension_mismatch_is_an_error_and_leaves_state_alone() {
    let mut rs = RunningQuantileStats::new(2);
    rs.update(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let e = rs.update(&[1.0, 2.0, 3.0]).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    let e = rs.update_rows(&[1.0, 2.0, 3.0], 3).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    assert!(rs.update(&[]).is_err());
    assert!(rs.update(&[f64::NAN, 1.0]).is_err());
    assert_eq!(rs.count(), 2);
    assert_eq!(rs.get_statistics().unwrap().mean, vec![2.0, 3.0]);
    assert!(RunningQuantileStats::new(0).update(&[1.0]).is_err());
}

#[test]
fn reshape_of_3d_input_is_row_major_flatten() {
    // (2, 2, 3) data flattened to (-1, 3): 4 vectors.
    let data: Vec<f64> = (0..12).map(f64::from).collect();
    let mut rs = RunningQuantileStats::new(3);
    rs.update(&data).unwrap();
    let s = rs.get_statistics().unwrap();
    assert_eq!(s.count, 4);
    assert_eq!(s.mean, vec![4.5, 5.5, 6.5]);
}

#[test]
fn large_dataset_with_1000_bins() {
    let mut g = Lcg(3);
    let data: Vec<f64> = (0..50_000).map(|_| g.next()).collect();
    let mut rs = RunningQuantileStats::with_bins(5, 1000);
    rs.update(&data).unwrap();
    let s = rs.get_statistics().unwrap();
    assert_eq!(s.count, 10_000);
    for i in 0..5 {
        assert_eq!(rs.histogram(i).unwrap().len(), 1000);
        assert!((s.quantile("q50").unwrap()[i] - 0.5).abs() < 0.03);
    }
}

#[test]
fn aggregate_quantile_envelopes() {
    let mut a = stats(&[0.0], &[10.0], &[5.0], &[1.0], 10);
    let mut b = stats(&[1.0], &[12.0], &[6.0], &[2.0], 10);
    a.quantiles = vec![
        ("q01".into(), vec![0.1]),
        ("q10".into(), vec![1.0]),
        ("q50".into(), vec![5.0]),
        ("q90".into(), vec![9.0]),
        ("q99".into(), vec![9.9]),
    ];
    b.quantiles = vec![
        ("q99".into(), vec![11.9]),
        ("q01".into(), vec![1.1]),
        ("q10".into(), vec![0.5]),
        ("q50".into(), vec![6.0]),
        ("q90".into(), vec![8.0]),
    ];
    let r = aggregate(&a, &b);
    assert_eq!(keys(&r), ["q01", "q10", "q50", "q90", "q99"]);
    assert_eq!(r.quantile("q01").unwrap(), &[0.1]);
    assert_eq!(r.quantile("q10").unwrap(), &[0.5]);
    assert_eq!(r.quantile("q50").unwrap(), &[5.0]);
    assert_eq!(r.quantile("q90").unwrap(), &[9.0]);
    assert_eq!(r.quantile("q99").unwrap(), &[11.9]);

    // Mixed: quantiles missing in either input are dropped.
    b.quantiles.retain(|(k, _)| k != "q10" && k != "q99");
    let r = aggregate(&a, &b);
    assert_eq!(keys(&r), ["q01", "q50", "q90"]);
    let r = aggregate(&stats(&[0.0], &[1.0], &[0.5], &[0.1], 3), &a);
    assert!(r.quantiles.is_empty());
}

#[test]
fn incremental_aggregation_widens_envelopes() {
    let mut g = Lcg(11);
    let episodes: Vec<FeatureStats> = (0..4)
        .map(|k| {
            let data: Vec<f64> = (0..400).map(|_| g.normalish(f64::from(k))).collect();
            vector_stats(&data, 2).unwrap()
        })
        .collect();
    let mut running = episodes[0].clone();
    for ep in &episodes[1..] {
        let next = aggregate(&running, ep);
        for i in 0..2 {
            assert!(next.min[i] <= running.min[i] && next.max[i] >= running.max[i]);
            assert!(next.quantile("q01").unwrap()[i] <= running.quantile("q01").unwrap()[i]);
            assert!(next.quantile("q99").unwrap()[i] >= running.quantile("q99").unwrap()[i]);
        }
        assert_eq!(next.count, running.count + ep.count);
        running = next;
    }
    assert_eq!(aggregate_all(&episodes), Some(running.clone()));
    assert_eq!(running.count, 800);
    assert!(aggregate_all(&[]).is_none());
    assert_eq!(aggregate_all(&episodes[..1]), Some(episodes[0].clone()));
}

#[test]
fn aggregate_mean_and_std_equal_those_of_concatenated_data() {
    let mut g = Lcg(5);
    let a: Vec<f64> = (0..90).map(|_| g.normalish(0.0)).collect();
    let b: Vec<f64> = (0..60).map(|_| g.normalish(2.0)).collect();
    let all: Vec<f64> = a.iter().chain(&b).copied().collect();
    let r = aggregate(&vector_stats(&a, 3).unwrap(), &vector_stats(&b, 3).unwrap());
    let whole = vector_stats(&all, 3).unwrap();
    close(&r.mean, &whole.mean, 1e-12);
    close(&r.std, &whole.std, 1e-9);
    assert_eq!(
        (r.min.clone(), r.max.clone(), r.count),
        (whole.min, whole.max, 50)
    );
}

#[test]
fn aggregate_never_panics_on_degenerate_inputs() {
    let zero = stats(&[1.0], &[1.0], &[1.0], &[0.0], 0);
    let other = stats(&[3.0], &[3.0], &[3.0], &[0.0], 0);
    let r = aggregate(&zero, &other);
    assert_eq!((r.mean[0], r.std[0], r.count), (2.0, 1.0, 0));
    let long = stats(&[0.0, 5.0], &[1.0, 6.0], &[0.5, 5.5], &[0.1, 0.2], 4);
    let r = aggregate(&zero, &long);
    assert_eq!(r.mean.len(), 2);
    assert_eq!((r.mean[1], r.std[1], r.min[1]), (5.5, 0.2, 5.0));
}
