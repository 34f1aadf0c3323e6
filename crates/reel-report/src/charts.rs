//! Every figure of the report and the live page, drawn as SVG with `plotters`: line charts
//! (with optional markers and a horizontal limit) and stacked areas. Long series are reduced
//! to at most [`MAX_POINTS`] points by keeping each bucket's maximum, so peaks stay visible.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::RGBColor;

/// Most points drawn per series (longer series keep each bucket's maximum).
pub const MAX_POINTS: usize = 1500;

/// Chart size in pixels.
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 240;

/// Colours, in order, for sections and cameras.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

const BAD: RGBColor = RGBColor(214, 39, 40);

/// One named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// What a chart shows besides its series.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Points drawn as red dots (missed deadlines, repeated frames), with their legend name.
    pub markers: Option<Series>,
    /// A horizontal red line (the tick budget) with its legend name.
    pub limit: Option<(f64, String)>,
    /// Draw points as dots too, and label x with whole numbers (trends across episodes).
    pub dots: bool,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing a chart: {e}")
}

/// Keeps at most [`MAX_POINTS`] points: each bucket of consecutive points becomes its
/// point of largest y.
pub fn reduce(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS);
    points
        .chunks(per)
        .filter_map(|c| c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)))
        .collect()
}

fn x_range(series: &[&[(f64, f64)]]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for s in series {
        for &(x, _) in *s {
            if x.is_finite() {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    (lo, hi)
}

fn y_max(series: &[&[(f64, f64)]], limit: Option<f64>) -> f64 {
    let m = series
        .iter()
        .flat_map(|s| s.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(0.0f64, f64::max);
    // Show the limit only when it is within reach of the data (else it flattens everything:
    // a 33 ms budget over 0.05 ms ticks); its value is in the caption either way.
    let m = match limit {
        Some(l) if l <= m * 3.0 => m.max(l),
        _ => m,
    };
    if m <= 0.0 {
        1.0
    } else {
        m * 1.12
    }
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The frame every figure shares: caption, axes, the series `body` draws, then `extras` (the
/// limit line and the red markers) and the legend.
#[allow(clippy::too_many_arguments)]
fn draw(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (x0, x1, y0, y1): (f64, f64, f64, f64),
    extras: &Extras,
    markers: Option<&[(f64, f64)]>,
    body: impl FnOnce(&mut Chart<'_, '_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let whole = |x: &f64| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        let span = (x1 - x0).round().max(1.0) as usize;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215));
        if extras.dots {
            mesh.x_labels((span + 1).min(12)).x_label_formatter(&whole);
        }
        mesh.draw().map_err(err)?;
        body(&mut chart)?;
        if let Some((l, name)) = &extras.limit {
            if *l <= y1 {
                chart
                    .draw_series(LineSeries::new(
                        vec![(x0, *l), (x1, *l)],
                        BAD.stroke_width(1),
                    ))
                    .map_err(err)?
                    .label(name.clone())
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BAD));
            }
        }
        if let (Some(m), Some(pts)) = (&extras.markers, markers) {
            if !pts.is_empty() {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, BAD.filled())))
                    .map_err(err)?
                    .label(m.name.clone())
                    .legend(|(x, y)| Circle::new((x + 7, y), 3, BAD.filled()));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A line chart: one line per series (colours from [`PALETTE`]), plus `extras`.
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    extras: &Extras,
) -> Result<String, String> {
    let reduced: Vec<Vec<(f64, f64)>> = series.iter().map(|s| reduce(&s.points)).collect();
    let markers = extras.markers.as_ref().map(|m| reduce(&m.points));
    let mut all: Vec<&[(f64, f64)]> = reduced.iter().map(|v| v.as_slice()).collect();
    if let Some(m) = &markers {
        all.push(m);
    }
    let (x0, x1) = x_range(&all);
    let y1 = y_max(&all, extras.limit.as_ref().map(|l| l.0));
    draw(
        title,
        x_desc,
        y_desc,
        (x0, x1, 0.0, y1),
        extras,
        markers.as_deref(),
        |chart| {
            for (i, (s, pts)) in series.iter().zip(&reduced).enumerate() {
                let c = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                    });
                if extras.dots {
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                        .map_err(err)?;
                }
            }
            Ok(())
        },
    )
}

/// Keeps at most about [`MAX_POINTS`] points of a signed signal: each bucket of consecutive
/// points becomes its lowest and its highest point, in time order (the envelope survives: an
/// audio wave stays a band, a servo step stays a step).
pub fn envelope(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for c in points.chunks(per) {
        let lo = c.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
        let hi = c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo.0 <= hi.0 {
                out.extend([lo, hi]);
            } else {
                out.extend([hi, lo]);
            }
        }
    }
    out
}

/// A line chart of signals that may be negative (side streams): the y axis spans the data's
/// range, each series reduced by [`envelope`].
pub fn signed_lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, String> {
    let reduced: Vec<Vec<(f64, f64)>> = series.iter().map(|s| envelope(&s.points)).collect();
    let all: Vec<&[(f64, f64)]> = reduced.iter().map(|v| v.as_slice()).collect();
    let (x0, x1) = x_range(&all);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(_, y) in all.iter().flat_map(|s| s.iter()) {
        if y.is_finite() {
            lo = lo.min(y);
            hi = hi.max(y);
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    draw(
        title,
        x_desc,
        y_desc,
        (x0, x1, lo - pad, hi + pad),
        &Extras::default(),
        None,
        |chart| {
            for (i, (s, pts)) in series.iter().zip(&reduced).enumerate() {
                let c = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(1)))
                    .map_err(err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                    });
            }
            Ok(())
        },
    )
}

/// A stacked area chart: `layers` (name, y per x) stacked bottom-up over `x`, plus `extras`.
pub fn stacked(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x: &[f64],
    layers: &[(String, Vec<f64>)],
    extras: &Extras,
) -> Result<String, String> {
    // Cumulative tops of each layer, reduced on the total (same buckets for every layer).
    let n = x.len();
    let mut tops: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    let mut acc = vec![0.0f64; n];
    for (_, ys) in layers {
        for (a, y) in acc.iter_mut().zip(ys) {
            *a += *y;
        }
        tops.push(acc.clone());
    }
    let keep: Vec<usize> = if n <= MAX_POINTS {
        (0..n).collect()
    } else {
        let per = n.div_ceil(MAX_POINTS);
        (0..n)
            .collect::<Vec<_>>()
            .chunks(per)
            .filter_map(|c| c.iter().copied().max_by(|a, b| acc[*a].total_cmp(&acc[*b])))
            .collect()
    };
    let total: Vec<(f64, f64)> = keep.iter().map(|&i| (x[i], acc[i])).collect();
    let markers = extras.markers.as_ref().map(|m| reduce(&m.points));
    let mut all: Vec<&[(f64, f64)]> = vec![&total];
    if let Some(m) = &markers {
        all.push(m);
    }
    let (x0, x1) = x_range(&all);
    let y1 = y_max(&all, extras.limit.as_ref().map(|l| l.0));
    draw(
        title,
        x_desc,
        y_desc,
        (x0, x1, 0.0, y1),
        extras,
        markers.as_deref(),
        |chart| {
            // Top layer first, so each lower layer paints over the part below its top.
            for (li, (name, _)) in layers.iter().enumerate().rev() {
                let c = PALETTE[li % PALETTE.len()];
                let pts: Vec<(f64, f64)> = keep.iter().map(|&i| (x[i], tops[li][i])).collect();
                chart
                    .draw_series(AreaSeries::new(pts, 0.0, c.filled()).border_style(c))
                    .map_err(err)?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled())
                    });
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_keeps_peaks_and_bounds_points() {
        let mut pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        pts[4321].1 = 50.0;
        let r = reduce(&pts);
        assert!(r.len() <= MAX_POINTS);
        assert!(r.iter().any(|p| p.1 == 50.0 && p.0 == 4321.0));
        assert_eq!(reduce(&pts[..10]).len(), 10);
    }

    #[test]
    fn draws_svg_with_every_series_and_marker() {
        let s = vec![
            Series::new("front", (0..30).map(|i| (i as f64, i as f64)).collect()),
            Series::new("wrist", (0..30).map(|i| (i as f64, 2.0)).collect()),
        ];
        let ex = Extras {
            markers: Some(Series::new("repeated", vec![(3.0, 3.0)])),
            limit: Some((20.0, "budget".into())),
            dots: false,
        };
        let svg = lines("age", "s", "ms", &s, &ex).unwrap();
        assert!(svg.starts_with("<svg"));
        for name in ["front", "wrist", "repeated", "budget", "age"] {
            assert!(svg.contains(name), "{name} missing");
        }
        let x: Vec<f64> = (0..5).map(|i| i as f64).collect();
        let layers = vec![
            ("observe".to_string(), vec![1.0; 5]),
            ("record".to_string(), vec![2.0; 5]),
        ];
        let svg = stacked("tick", "s", "ms", &x, &layers, &Extras::default()).unwrap();
        assert!(svg.contains("observe") && svg.contains("record"));
        // Empty input still draws (an axis and a caption), never panics.
        assert!(lines("none", "s", "ms", &[], &Extras::default()).is_ok());
        assert!(stacked("none", "s", "ms", &[], &[], &Extras::default()).is_ok());
    }
}
