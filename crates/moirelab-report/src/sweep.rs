//! The page of a parameter sweep (`moirelab sweep`): one row per grid cell with its swept
//! values and the shortcut numbers of its run, `table.csv` with the same rows, and line charts
//! of those numbers against the first swept key, one line per value of the other keys.
//!
//! The caller reads the runs (it knows which cells finished) and hands over plain rows; this
//! module only formats them. Pages link each cell's gallery when it exists.

use crate::plots::{plottable, title_with_left_out, y_range};
use crate::util::{csp_hash, esc, url_path};
use crate::{ReportError, Result};
use moirelab_core::fsio::write_atomic;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const CSS: &str = include_str!("../assets/report.css");

/// One grid cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepRow {
    /// Cell (and run folder) name.
    pub name: String,
    /// One value per swept key, in [`SweepPage::keys`] order.
    pub values: Vec<String>,
    /// `finished`, `pending`, `interrupted`, … Only finished cells carry numbers.
    pub status: String,
    /// Run folder relative to the page's folder.
    pub run: PathBuf,
    pub test_accuracy: Option<f64>,
    pub aligned_accuracy: Option<f64>,
    pub conflicting_accuracy: Option<f64>,
    /// Lifts of the attack-class maps at the best epoch.
    pub flag_lift: Option<f64>,
    pub face_lift: Option<f64>,
    /// Best lift over the screen-artifact regions, with the region's name.
    pub artifact_lift: Option<(String, f64)>,
}

/// Everything on the sweep page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepPage {
    pub title: String,
    /// Lines under the title (base config, fixed overrides).
    pub about: Vec<String>,
    /// Swept keys, in grid order; the first one is the charts' horizontal axis.
    pub keys: Vec<String>,
    /// Values of each swept key, in grid order (the charts' category order).
    pub key_values: Vec<Vec<String>>,
    pub rows: Vec<SweepRow>,
    /// (label, page path relative to the page's folder) of compare pages.
    pub compares: Vec<(String, PathBuf)>,
}

fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// `table.csv`: one line per cell, empty fields where a cell has no number.
pub fn sweep_csv(page: &SweepPage) -> String {
    let mut head: Vec<String> = vec!["cell".into()];
    head.extend(page.keys.iter().cloned());
    head.extend(
        [
            "status",
            "test_acc",
            "aligned_acc",
            "conflicting_acc",
            "flag_lift",
            "face_lift",
            "artifact_lift",
            "artifact_region",
            "run",
        ]
        .map(String::from),
    );
    let mut out = moirelab_core::csv::line(&head);
    out.push('\n');
    for r in &page.rows {
        let mut f: Vec<String> = vec![r.name.clone()];
        f.extend(r.values.iter().cloned());
        f.push(r.status.clone());
        f.extend(
            [
                r.test_accuracy,
                r.aligned_accuracy,
                r.conflicting_accuracy,
                r.flag_lift,
                r.face_lift,
                r.artifact_lift.as_ref().map(|a| a.1),
            ]
            .map(num),
        );
        f.push(
            r.artifact_lift
                .as_ref()
                .map(|a| a.0.clone())
                .unwrap_or_default(),
        );
        f.push(r.run.display().to_string());
        out.push_str(&moirelab_core::csv::line(&f));
        out.push('\n');
    }
    out
}

/// One line of a sweep chart: a value per category of the first key (`None`: no number).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
    pub color: usize,
    pub dashed: bool,
}

/// A chart over the categories of the first swept key.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepChart {
    /// File stem under `plots/`.
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<SweepSeries>,
}

/// The sweep's charts: conflicting-group accuracy, flag (solid) and face (dashed) lift, and
/// artifact lift against the first key, one line per combination of the other keys' values.
/// Charts without a single number are left out.
pub fn sweep_charts(page: &SweepPage) -> Vec<SweepChart> {
    let Some(categories) = page.key_values.first() else {
        return Vec::new();
    };
    // Lines: the other keys' value combinations in first-seen (grid) order.
    let mut lines: Vec<Vec<String>> = Vec::new();
    for r in &page.rows {
        let rest = r.values.get(1..).unwrap_or_default().to_vec();
        if !lines.contains(&rest) {
            lines.push(rest);
        }
    }
    let line_name = |rest: &[String]| -> String {
        if rest.is_empty() {
            return "all cells".into();
        }
        page.keys[1..]
            .iter()
            .zip(rest)
            .map(|(k, v)| format!("{}={v}", short_key(k)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let series = |get: &dyn Fn(&SweepRow) -> Option<f64>, suffix: &str, dashed: bool| {
        lines
            .iter()
            .enumerate()
            .map(|(i, rest)| SweepSeries {
                name: format!("{}{suffix}", line_name(rest)),
                values: categories
                    .iter()
                    .map(|c| {
                        page.rows
                            .iter()
                            .find(|r| {
                                r.values.first() == Some(c)
                                    && r.values.get(1..).unwrap_or_default() == rest.as_slice()
                            })
                            .and_then(get)
                            .filter(|v| v.is_finite())
                    })
                    .collect(),
                color: i,
                dashed,
            })
            .collect::<Vec<_>>()
    };
    let x_label = page.keys.first().cloned().unwrap_or_default();
    let chart = |name: &str, title: &str, y: &str, series: Vec<SweepSeries>| SweepChart {
        name: name.into(),
        title: title.into(),
        x_label: x_label.clone(),
        y_label: y.into(),
        categories: categories.clone(),
        series,
    };
    let mut lifts = series(&|r| r.flag_lift, " flag", false);
    lifts.extend(series(&|r| r.face_lift, " face", true));
    let charts = vec![
        chart(
            "conflicting-accuracy",
            "Accuracy on shortcut-conflicting test images",
            "accuracy",
            series(&|r| r.conflicting_accuracy, "", false),
        ),
        chart(
            "shortcut-lift",
            "Flag (solid) and face (dashed) lift, screen maps",
            "lift",
            lifts,
        ),
        chart(
            "artifact-lift",
            "Screen-artifact lift, screen maps",
            "lift",
            series(&|r| r.artifact_lift.as_ref().map(|a| a.1), "", false),
        ),
    ];
    charts
        .into_iter()
        .map(|mut c| {
            c.series.retain(|s| s.values.iter().any(Option::is_some));
            c
        })
        .filter(|c| !c.series.is_empty())
        .collect()
}

/// `data.knobs.rho-flag` -> `rho-flag`.
pub fn short_key(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Draw a sweep chart as an SVG document.
pub fn sweep_chart_svg(chart: &SweepChart) -> Result<String> {
    crate::plots::ensure_font()?;
    let err = |e: &dyn std::fmt::Display| ReportError::Plot {
        name: chart.name.clone(),
        msg: e.to_string(),
    };
    let vals = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied());
    let left_out = vals.clone().filter(|v| !plottable(*v)).count();
    let (lo, hi) = vals
        .filter(|v| plottable(*v))
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (y0, y1) = y_range(lo, hi);
    // `a..b` of i32 is inclusive in plotters: one segment per category is `0..n - 1`.
    let last = chart.categories.len().saturating_sub(1) as i32;
    let mut buf = String::new();
    {
        let area = SVGBackend::with_string(&mut buf, (crate::plots::WIDTH, crate::plots::HEIGHT))
            .into_drawing_area();
        area.fill(&WHITE).map_err(|e| err(&e))?;
        let mut ctx = ChartBuilder::on(&area)
            .caption(
                title_with_left_out(&chart.title, left_out),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((0..last).into_segmented(), y0..y1)
            .map_err(|e| err(&e))?;
        let cats = chart.categories.clone();
        ctx.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(RGBColor(235, 235, 235))
            .x_labels(cats.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => cats.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| err(&e))?;
        for s in &chart.series {
            let (r, g, b) = crate::plots::PALETTE[s.color % crate::plots::PALETTE.len()];
            let color = RGBColor(r, g, b);
            let pts: Vec<(SegmentValue<i32>, f64)> = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.filter(|v| plottable(*v))
                        .map(|v| (SegmentValue::CenterOf(i as i32), v))
                })
                .collect();
            let style = color.stroke_width(2);
            let anno = if s.dashed {
                ctx.draw_series(DashedLineSeries::new(pts.iter().cloned(), 6, 4, style))
                    .map_err(|e| err(&e))?
            } else {
                ctx.draw_series(LineSeries::new(pts.iter().cloned(), style))
                    .map_err(|e| err(&e))?
            };
            let dashed = s.dashed;
            anno.label(s.name.as_str()).legend(move |(x, y)| {
                let len = if dashed { 6 } else { 16 };
                PathElement::new(vec![(x, y), (x + len, y)], color.stroke_width(2))
            });
            ctx.draw_series(
                pts.iter()
                    .map(|p| Circle::new(p.clone(), 3, color.filled())),
            )
            .map_err(|e| err(&e))?;
        }
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        area.present().map_err(|e| err(&e))?;
    }
    Ok(buf)
}

fn cell_num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

/// Write `out_dir/table.csv`, `out_dir/plots/<chart>.svg` and `out_dir/index.html` (no
/// script; inline CSS allowed by its hash). Returns the page's path.
pub fn write_sweep_report(out_dir: &Path, page: &SweepPage) -> Result<PathBuf> {
    write_atomic(&out_dir.join("table.csv"), sweep_csv(page).as_bytes())?;
    let mut body = format!(
        "<header><h1>{}</h1>{}</header>\n",
        esc(&page.title),
        page.about
            .iter()
            .map(|l| format!("<p class=\"sub\">{}</p>", esc(l)))
            .collect::<String>()
    );
    let done = page.rows.iter().filter(|r| r.status == "finished").count();
    body.push_str(&format!(
        "<h2>Cells</h2>\n<p class=\"note\">{done} of {} cells finished. Lifts are those of the \
         screen-class Grad-CAM maps (the probes the model calls screen recordings) at the best \
         epoch; 1 = no preference for the region. <a href=\"table.csv\">table.csv</a></p>\n",
        page.rows.len()
    ));
    body.push_str("<table class=\"metrics\"><thead><tr><th>cell</th>");
    for k in &page.keys {
        body.push_str(&format!("<th>{}</th>", esc(k)));
    }
    body.push_str(
        "<th>status</th><th>test acc</th><th>aligned acc</th><th>conflicting acc</th>\
         <th>flag lift</th><th>face lift</th><th>artifact lift</th><th>gallery</th></tr></thead>\
         <tbody>\n",
    );
    for r in &page.rows {
        body.push_str(&format!("<tr><th class=\"run-name\">{}</th>", esc(&r.name)));
        for v in &r.values {
            body.push_str(&format!("<td>{}</td>", esc(v)));
        }
        let art = r
            .artifact_lift
            .as_ref()
            .map(|(reg, l)| format!("{l:.3} ({reg})"))
            .unwrap_or_else(|| "–".into());
        let gallery = r.run.join("report").join("index.html");
        let link = if out_dir.join(&gallery).is_file() {
            format!("<a href=\"{}\">gallery</a>", esc(&url_path(&gallery)))
        } else {
            "–".into()
        };
        body.push_str(&format!(
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{link}</td></tr>\n",
            esc(&r.status),
            cell_num(r.test_accuracy),
            cell_num(r.aligned_accuracy),
            cell_num(r.conflicting_accuracy),
            cell_num(r.flag_lift),
            cell_num(r.face_lift),
            esc(&art),
        ));
    }
    body.push_str("</tbody></table>\n");
    if !page.compares.is_empty() {
        body.push_str("<h2>Compare pages</h2>\n<ul>");
        for (label, path) in &page.compares {
            body.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                esc(&url_path(path)),
                esc(label)
            ));
        }
        body.push_str("</ul>\n");
    }
    let charts = sweep_charts(page);
    body.push_str("<h2>Against the first swept key</h2>\n");
    if charts.is_empty() {
        body.push_str("<p class=\"note\">No finished cell has numbers yet.</p>\n");
    } else {
        body.push_str("<div class=\"charts\">");
        for c in &charts {
            let svg = sweep_chart_svg(c)?;
            let rel = Path::new("plots").join(format!("{}.svg", c.name));
            write_atomic(&out_dir.join(&rel), svg.as_bytes())?;
            body.push_str(&format!(
                "<figure class=\"chart\" id=\"chart-{}\">{svg}<figcaption><a href=\"{}\">SVG</a>\
                 </figcaption></figure>",
                esc(&c.name),
                esc(&url_path(&rel))
            ));
        }
        body.push_str("</div>\n");
    }
    let csp = format!(
        "default-src 'none'; img-src 'self' file: data:; style-src {}; base-uri 'none'; \
         form-action 'none'",
        csp_hash(CSS)
    );
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"moirelab-report {ver}\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        title = esc(&page.title),
        ver = env!("CARGO_PKG_VERSION"),
    );
    let path = out_dir.join("index.html");
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rho: &str, arch: &str, status: &str, conflicting: f64) -> SweepRow {
        SweepRow {
            name: format!("rho-flag={rho}_arch={arch}"),
            values: vec![rho.into(), arch.into()],
            status: status.into(),
            run: PathBuf::from(format!("runs/{rho}-{arch}")),
            conflicting_accuracy: (status == "finished").then_some(conflicting),
            flag_lift: (status == "finished").then_some(10.0 * conflicting),
            artifact_lift: (status == "finished").then(|| ("moire".to_string(), 2.0)),
            ..Default::default()
        }
    }

    fn page() -> SweepPage {
        SweepPage {
            title: "sweep".into(),
            keys: vec!["data.knobs.rho-flag".into(), "model.arch".into()],
            key_values: vec![
                vec!["0.5".into(), "0.95".into()],
                vec!["shallow".into(), "vgg".into()],
            ],
            rows: vec![
                row("0.5", "shallow", "finished", 0.9),
                row("0.5", "vgg", "finished", 0.8),
                row("0.95", "shallow", "finished", 0.3),
                row("0.95", "vgg", "interrupted", 0.0),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn charts_have_one_line_per_other_value_and_skip_unfinished_cells() {
        let charts = sweep_charts(&page());
        let names: Vec<&str> = charts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["conflicting-accuracy", "shortcut-lift", "artifact-lift"]
        );
        let c = &charts[0];
        assert_eq!(c.categories, ["0.5", "0.95"]);
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.series[0].name, "arch=shallow");
        assert_eq!(c.series[0].values, [Some(0.9), Some(0.3)]);
        assert_eq!(c.series[1].values, [Some(0.8), None]);
        // No face numbers at all: the dashed face lines are left out.
        assert_eq!(charts[1].series.len(), 2);
        assert!(charts[1].series.iter().all(|s| !s.dashed));
        let svg = sweep_chart_svg(c).unwrap();
        assert!(
            svg.contains("0.95") && svg.contains("arch=shallow"),
            "{svg}"
        );
        // A single category still draws.
        let mut one = c.clone();
        one.categories.truncate(1);
        one.series.iter_mut().for_each(|s| s.values.truncate(1));
        assert!(sweep_chart_svg(&one).unwrap().contains("0.5"));
    }

    #[test]
    fn values_near_f64_max_are_left_out_and_said_so() {
        let mut c = sweep_charts(&page()).remove(0);
        c.series[0].values = vec![Some(1.7e308), Some(-1.7e308)];
        let svg = sweep_chart_svg(&c).unwrap();
        assert!(svg.contains("2 value(s) beyond"), "{svg}");
    }

    #[test]
    fn csv_has_a_line_per_cell_and_blanks_for_missing_numbers() {
        let mut p = page();
        p.rows[0].values[1] = "a,\"b\"".into();
        let csv = sweep_csv(&p);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("cell,data.knobs.rho-flag,model.arch,status,test_acc"));
        assert!(lines[1].contains("\"a,\"\"b\"\"\""), "{}", lines[1]);
        assert!(
            lines[4].contains(",interrupted,,,,,,,,runs/0.95-vgg"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn page_links_existing_galleries_only_and_escapes_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = page();
        p.rows[1].values[1] = "<b>".into();
        let gallery = dir.path().join("runs/0.5-shallow/report");
        std::fs::create_dir_all(&gallery).unwrap();
        std::fs::write(gallery.join("index.html"), "x").unwrap();
        let path = write_sweep_report(dir.path(), &p).unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("href=\"runs/0.5-shallow/report/index.html\""));
        assert!(!html.contains("runs/0.5-vgg/report"));
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"));
        assert!(dir.path().join("table.csv").is_file());
        assert!(dir.path().join("plots/conflicting-accuracy.svg").is_file());
    }
}
