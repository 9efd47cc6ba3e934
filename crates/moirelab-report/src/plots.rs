//! Curve plots (PNG and SVG) drawn with plotters and an embedded DejaVu Sans, so no system
//! font or fontconfig is needed. The same chart description renders to `plots/*.png|svg`
//! and to the SVG inlined in the HTML pages.

use crate::load::RunData;
use crate::{ReportError, Result};
use moirelab_core::fsio::{write_atomic, write_atomic_with};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Register the embedded font once; plotters' bitmap backend panics on text without it.
pub(crate) fn ensure_font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "embedded DejaVuSans.ttf is not a valid font".to_string())
    })
    .clone()
    .map_err(|msg| ReportError::Plot {
        name: "font".into(),
        msg,
    })
}

/// Tableau-10 colours: distinguishable and colour-blind friendlier than plotters' palette.
pub(crate) const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// (epoch, value), ascending in epoch.
    pub points: Vec<(f64, f64)>,
    /// Index into the palette.
    pub color: usize,
    pub dashed: bool,
}

/// A line chart over epochs.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem under `plots/` and anchor id in the pages.
    pub name: String,
    pub title: String,
    /// Horizontal axis caption ("epoch" for curves over training).
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

impl Chart {
    fn new(name: &str, title: &str, y_label: &str) -> Self {
        Chart {
            name: name.into(),
            title: title.into(),
            x_label: "epoch".into(),
            y_label: y_label.into(),
            series: Vec::new(),
        }
    }

    fn push(&mut self, name: String, points: Vec<(f64, f64)>, color: usize, dashed: bool) {
        let points: Vec<(f64, f64)> = points.into_iter().filter(|p| p.1.is_finite()).collect();
        if !points.is_empty() {
            self.series.push(Series {
                name,
                points,
                color,
                dashed,
            });
        }
    }

    /// The points that can be drawn ([`plottable`]) and how many were left out.
    fn drawn(&self) -> (Vec<Vec<(f64, f64)>>, usize) {
        let mut left_out = 0;
        let kept = self
            .series
            .iter()
            .map(|s| {
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| plottable(x) && plottable(y))
                    .collect();
                left_out += s.points.len() - pts.len();
                pts
            })
            .collect();
        (kept, left_out)
    }

    /// Axis ranges of `points` (the drawn ones); always finite.
    fn bounds(points: &[Vec<(f64, f64)>]) -> ((f64, f64), (f64, f64)) {
        let pts = points.iter().flatten();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 - x0 < 1.0 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        ((x0, x1), y_range(y0, y1))
    }
}

/// Values of a larger magnitude are left out of a chart, and its title says how many: no
/// metric gets there, and near `f64::MAX` the padded axis overflows to infinity, on which
/// plotters' choice of axis labels never ends.
pub const ABSURD: f64 = 1e100;

/// Whether a value can be drawn: finite and within ±[`ABSURD`].
pub(crate) fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= ABSURD
}

/// The vertical axis for values `lo..=hi`: padded by 8 % of the span (5 % of the magnitude
/// for a flat series, at least 1e-3), with 0 on the axis when it is close. Finite whatever
/// the input: values are clamped to ±[`ABSURD`] first, and without values it is 0..1.
pub(crate) fn y_range(lo: f64, hi: f64) -> (f64, f64) {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.clamp(-ABSURD, ABSURD), hi.clamp(-ABSURD, ABSURD));
    // A flat series still gets a readable range around its value.
    let pad = ((hi - lo) * 0.08)
        .max(hi.abs().max(lo.abs()) * 0.05)
        .max(1e-3);
    let (mut y0, y1) = (lo - pad, hi + pad);
    // Shares and accuracies live in [0, 1]; keep 0 on the axis when close to it.
    if y0 > 0.0 && y0 < 0.25 * y1 {
        y0 = 0.0;
    }
    (y0, y1)
}

/// A chart title that says how many points were left out as not [`plottable`].
pub(crate) fn title_with_left_out(title: &str, left_out: usize) -> String {
    match left_out {
        0 => title.to_string(),
        n => format!("{title} ({n} value(s) beyond ±1e100 left out)"),
    }
}

fn rgb(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Draw `chart` onto any plotters backend.
pub fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<()> {
    ensure_font()?;
    let err = |e: &dyn std::fmt::Display| ReportError::Plot {
        name: chart.name.clone(),
        msg: e.to_string(),
    };
    area.fill(&WHITE).map_err(|e| err(&e))?;
    let (points, left_out) = chart.drawn();
    let ((x0, x1), (y0, y1)) = Chart::bounds(&points);
    let mut ctx = ChartBuilder::on(area)
        .caption(title_with_left_out(&chart.title, left_out), (FAMILY, 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (s, pts) in chart.series.iter().zip(&points) {
        let color = rgb(s.color);
        let style = color.stroke_width(2);
        let anno = if s.dashed {
            ctx.draw_series(DashedLineSeries::new(pts.iter().copied(), 6, 4, style))
                .map_err(|e| err(&e))?
        } else {
            ctx.draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(|e| err(&e))?
        };
        let dashed = s.dashed;
        anno.label(s.name.as_str()).legend(move |(x, y)| {
            if dashed {
                PathElement::new(vec![(x, y), (x + 6, y)], color.stroke_width(2))
            } else {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            }
        });
        // Markers so a single epoch still shows as a point.
        ctx.draw_series(
            pts.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
        )
        .map_err(|e| err(&e))?;
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FAMILY, 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    area.present().map_err(|e| err(&e))?;
    Ok(())
}

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 400;

/// The chart as an SVG document string (inlined into the pages).
pub fn to_svg(chart: &Chart) -> Result<String> {
    let mut buf = String::new();
    {
        let area = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&area, chart)?;
    }
    Ok(buf)
}

/// Write `dir/<name>.svg` and `dir/<name>.png` atomically; returns both paths.
pub fn write_chart(dir: &Path, chart: &Chart) -> Result<Vec<PathBuf>> {
    let svg_path = dir.join(format!("{}.svg", chart.name));
    write_atomic(&svg_path, to_svg(chart)?.as_bytes())?;
    let png_path = dir.join(format!("{}.png", chart.name));
    let mut rgb_buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb_buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&area, chart)?;
    }
    let img =
        image::RgbImage::from_raw(WIDTH, HEIGHT, rgb_buf).ok_or_else(|| ReportError::Plot {
            name: chart.name.clone(),
            msg: "bitmap buffer has the wrong size".into(),
        })?;
    write_atomic_with(&png_path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
    })
    .map_err(|e| match e {
        moirelab_core::fsio::AtomicError::Io(c) => ReportError::Core(c),
        moirelab_core::fsio::AtomicError::Produce(e) => ReportError::Encode {
            path: png_path.clone(),
            what: "PNG plot",
            msg: e.to_string(),
        },
    })?;
    Ok(vec![png_path, svg_path])
}

const SPLITS: [&str; 3] = ["train", "val", "test"];

fn split_color(split: &str) -> usize {
    SPLITS.iter().position(|s| *s == split).unwrap_or(7)
}

/// Per-split series of one epoch-metric getter.
fn split_series(
    run: &RunData,
    chart: &mut Chart,
    label: &str,
    color_offset: usize,
    dashed: bool,
    get: impl Fn(&moirelab_core::run::EpochMetrics) -> Option<f64>,
) {
    let mut by_split: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for e in run.epoch_metrics() {
        if let Some(v) = get(e) {
            by_split
                .entry(e.split.as_str())
                .or_default()
                .push((f64::from(e.epoch), v));
        }
    }
    let mut splits: Vec<&str> = by_split.keys().copied().collect();
    splits.sort_by_key(|s| (split_color(s), s.to_string()));
    for s in splits {
        let mut pts = by_split.remove(s).unwrap_or_default();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let name = if label.is_empty() {
            s.to_string()
        } else {
            format!("{s} {label}")
        };
        chart.push(name, pts, split_color(s) + color_offset, dashed);
    }
}

/// Attention share (CAM mass) per region over epochs for one method and target: solid for
/// shortcut-aligned probes, dashed for conflicting ones; overall when probes were not split.
pub(crate) fn attention_series(
    run: &RunData,
    method: &str,
    target: &str,
    color_of: &mut dyn FnMut(&str) -> usize,
    name_prefix: &str,
) -> Vec<Series> {
    type Pts = BTreeMap<String, Vec<(f64, f64)>>;
    let (mut aligned, mut conflicting, mut overall): (Pts, Pts, Pts) = Default::default();
    for c in run.cam_metrics() {
        if c.method != method || c.target.as_str() != target {
            continue;
        }
        let x = f64::from(c.epoch);
        for (map, src) in [
            (&mut aligned, &c.aligned),
            (&mut conflicting, &c.conflicting),
            (&mut overall, &c.regions),
        ] {
            for (r, s) in src {
                map.entry(r.clone()).or_default().push((x, s.mass));
            }
        }
    }
    let mut out = Vec::new();
    let split = !aligned.is_empty() || !conflicting.is_empty();
    let mut add = |region: &str, suffix: &str, mut pts: Vec<(f64, f64)>, dashed: bool| {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts.retain(|p| p.1.is_finite());
        if !pts.is_empty() {
            out.push(Series {
                name: format!("{name_prefix}{region}{suffix}"),
                points: pts,
                color: color_of(region),
                dashed,
            });
        }
    };
    if split {
        for (r, pts) in aligned {
            add(&r, " aligned", pts, false);
        }
        for (r, pts) in conflicting {
            add(&r, " conflicting", pts, true);
        }
    } else {
        for (r, pts) in overall {
            add(&r, "", pts, false);
        }
    }
    out
}

/// (method, target) pairs that have CAM metric lines, in first-seen order.
pub(crate) fn cam_keys(run: &RunData) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for c in run.cam_metrics() {
        let k = (c.method.clone(), c.target.as_str().to_string());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// The charts of one run: loss, accuracy, PAD error rates, attention share per method and
/// target. Charts without data are left out.
pub fn run_charts(run: &RunData) -> Vec<Chart> {
    let mut charts = Vec::new();
    let mut loss = Chart::new("loss", "Loss", "cross-entropy");
    split_series(run, &mut loss, "", 0, false, |e| Some(e.loss));
    charts.push(loss);

    let mut acc = Chart::new("accuracy", "Accuracy", "accuracy");
    split_series(run, &mut acc, "", 0, false, |e| Some(e.accuracy));
    split_series(run, &mut acc, "balanced", 0, true, |e| {
        Some(e.balanced_accuracy)
    });
    charts.push(acc);

    // The shortcut story in one chart: accuracy on probes whose shortcut attribute agrees
    // with the label (aligned, solid) vs disagrees (conflicting, dashed).
    let mut groups = Chart::new(
        "shortcut-groups",
        "Shortcut-aligned vs conflicting accuracy",
        "accuracy",
    );
    split_series(run, &mut groups, "aligned", 0, false, |e| {
        e.aligned_accuracy
    });
    split_series(run, &mut groups, "conflicting", 0, true, |e| {
        e.conflicting_accuracy
    });
    split_series(run, &mut groups, "worst group", 4, true, |e| {
        e.worst_group_accuracy
    });
    charts.push(groups);

    let mut pad = Chart::new("pad", "PAD error rates", "rate");
    split_series(run, &mut pad, "EER", 0, false, |e| {
        e.pad.as_ref().map(|p| p.eer)
    });
    split_series(run, &mut pad, "APCER", 4, true, |e| {
        e.pad.as_ref().map(|p| p.apcer)
    });
    split_series(run, &mut pad, "BPCER", 6, true, |e| {
        e.pad.as_ref().map(|p| p.bpcer)
    });
    charts.push(pad);

    let mut regions: Vec<String> = Vec::new();
    for (method, target) in cam_keys(run) {
        let mut color_of = |r: &str| {
            if !regions.iter().any(|x| x == r) {
                regions.push(r.to_string());
            }
            regions.iter().position(|x| x == r).unwrap_or(0)
        };
        let series = attention_series(run, &method, &target, &mut color_of, "");
        let safe: String = format!("attention-{method}-{target}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        charts.push(Chart {
            name: safe,
            title: format!("Attention share per region ({method}, {target} class)"),
            x_label: "epoch".into(),
            y_label: "share of CAM mass".into(),
            series,
        });
    }
    charts.retain(|c| !c.series.is_empty());
    charts
}

/// Write `plots/<name>.png|svg` for every chart of the run; returns the written paths.
pub fn write_curves(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let run = crate::load::load_run(run_dir)?;
    write_curves_for(&run)
}

pub(crate) fn write_curves_for(run: &RunData) -> Result<Vec<PathBuf>> {
    let dir = run.dir.join("plots");
    let mut out = Vec::new();
    for chart in run_charts(run) {
        out.extend(write_chart(&dir, &chart)?);
    }
    Ok(out)
}

/// Cascading parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency
/// maps") as a chart: Spearman ρ between the trained model's maps and the maps after
/// re-initialising the top `step` parameter groups, mean over images with ±1 std dashed.
/// A faithful method falls towards 0 as layers are randomised; a flat curve near 1 means the
/// maps do not depend on the weights (an edge detector, not an explanation).
///
/// `steps`: `(step, mean, std)` in cascade order, step 0 = the trained model.
pub fn sanity_chart(method: &str, steps: &[(usize, f64, f64)]) -> Chart {
    let mut c = Chart::new(
        &format!(
            "sanity-{}",
            method.replace(|ch: char| !ch.is_ascii_alphanumeric(), "_")
        ),
        &format!("Cascading randomisation, {method}"),
        "Spearman rank correlation",
    );
    c.x_label = "parameter groups re-initialised (top-down)".into();
    let pts = |f: &dyn Fn(f64, f64) -> f64| -> Vec<(f64, f64)> {
        steps
            .iter()
            .map(|&(s, m, sd)| (s as f64, f(m, sd)))
            .collect()
    };
    c.push("mean".into(), pts(&|m, _| m), 0, false);
    c.push("mean + std".into(), pts(&|m, s| m + s), 0, true);
    c.push("mean - std".into(), pts(&|m, s| m - s), 0, true);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_near_f64_max_are_left_out_counted_and_the_axes_stay_finite() {
        let mut c = Chart::new("loss", "Loss", "cross-entropy");
        let pts = vec![(1.0, 1.7e308), (2.0, -1.7e308), (3.0, 0.5), (4.0, 0.25)];
        c.push("train".into(), pts, 0, false);
        let (drawn, left_out) = c.drawn();
        assert_eq!(left_out, 2);
        assert_eq!(drawn[0], [(3.0, 0.5), (4.0, 0.25)]);
        let ((x0, x1), (y0, y1)) = Chart::bounds(&drawn);
        assert!([x0, x1, y0, y1].iter().all(|v| v.is_finite()));
        assert!(y0 <= 0.25 && y1 >= 0.5, "{y0}..{y1}");
        // The range itself never overflows, whatever it is given.
        for (lo, hi) in [(-1.7e308, 1.7e308), (f64::MIN, f64::MAX), (1e308, 1e308)] {
            let (a, b) = y_range(lo, hi);
            assert!(a.is_finite() && b.is_finite() && (b - a).is_finite() && a < b);
        }
        assert_eq!(y_range(f64::MAX, f64::MIN), (0.0, 1.0), "no values");
        // Nothing drawable left: a default range, not MAX..MIN.
        let mut only = Chart::new("x", "X", "x");
        only.push("a".into(), vec![(1.0, 1e300)], 0, false);
        let (drawn, n) = only.drawn();
        assert_eq!(n, 1);
        let ((x0, x1), (y0, y1)) = Chart::bounds(&drawn);
        assert!(x0 < x1 && y0 < y1 && [x0, x1, y0, y1].iter().all(|v| v.is_finite()));
        let svg = to_svg(&c).unwrap();
        assert!(svg.contains("2 value(s) beyond"), "the chart says so");
    }
}
