//! The offline pages. Static parts (header, tables, config, inline SVG curves) are built here
//! with [`esc`] on every user string; the parts that follow the epoch slider are drawn by
//! `assets/report.js` from a JSON data block (text only via `textContent`). CSS and JS are
//! inlined and allowed by their SHA-256 in a strict Content-Security-Policy meta tag.

use crate::load::{RunData, TILE_KINDS};
use crate::plots::{self, Chart, Series};
use crate::util::{canonical, csp_hash, esc, fmt_num, json_for_script, relative_path, url_path};
use crate::{ReportError, Result};
use moirelab_core::fsio::write_atomic;
use moirelab_core::run::{EpochMetrics, ProbeRecord, ProbesFile};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

fn page(title: &str, body: &str, data: &Value) -> Result<String> {
    let csp = format!(
        "default-src 'none'; img-src 'self' file: data:; style-src {}; script-src {}; \
         base-uri 'none'; form-action 'none'",
        csp_hash(CSS),
        csp_hash(JS)
    );
    let json = json_for_script(data)?;
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"moirelab-report {ver}\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n\
         <pre id=\"selftest\" hidden></pre>\n\
         <script type=\"application/json\" id=\"data\">{json}</script>\n\
         <script>{JS}</script>\n</body>\n</html>\n",
        title = esc(title),
        ver = env!("CARGO_PKG_VERSION"),
    ))
}

/// URL of `target` relative to the folder `base` that holds the page.
fn url(base: &Path, target: &Path) -> String {
    url_path(&relative_path(base, target))
}

fn class_name(classes: &[String], i: usize) -> String {
    classes
        .get(i)
        .cloned()
        .unwrap_or_else(|| format!("class {i}"))
}

/// What the pages show under a probe's tiles at one epoch.
fn probe_cell(rec: &ProbeRecord, pf: &ProbesFile) -> Value {
    let regions: BTreeMap<&String, BTreeMap<&String, f64>> = rec
        .regions
        .iter()
        .map(|(k, m)| (k, m.iter().map(|(r, s)| (r, s.mass)).collect()))
        .collect();
    json!({
        "true_class": class_name(&pf.classes, rec.true_class),
        "pred_class": class_name(&pf.classes, rec.pred_class),
        "correct": rec.true_class == rec.pred_class,
        "score": rec.probs.get(rec.pred_class),
        "probs": rec.probs,
        "groups": rec.groups,
        "aligned": rec.aligned,
        "mass": regions,
    })
}

/// Per-epoch tiles and captions of a run, with URLs relative to `base`.
fn run_dumps(run: &RunData, base: &Path) -> Value {
    let mut dumps = Map::new();
    for e in &run.epochs {
        let mut rows = Map::new();
        if let Some(pf) = &e.probes {
            for rec in &pf.probes {
                rows.insert(rec.index.to_string(), probe_cell(rec, pf));
            }
        }
        let mut tiles: BTreeMap<String, BTreeMap<&String, BTreeMap<&String, String>>> =
            BTreeMap::new();
        for ((probe, method, kind), p) in &e.tiles {
            tiles
                .entry(probe.to_string())
                .or_default()
                .entry(method)
                .or_default()
                .insert(kind, url(base, p));
        }
        dumps.insert(
            e.epoch.to_string(),
            json!({
                "grid": e.grid.as_ref().map(|g| url(base, g)),
                "has_probes": e.probes.is_some(),
                "rows": rows,
                "tiles": tiles,
            }),
        );
    }
    Value::Object(dumps)
}

/// epoch -> split -> metrics, for the per-epoch tables.
fn run_metrics(run: &RunData) -> Value {
    let mut out: BTreeMap<String, BTreeMap<String, &EpochMetrics>> = BTreeMap::new();
    for e in run.epoch_metrics() {
        out.entry(e.epoch.to_string())
            .or_default()
            .insert(e.split.clone(), e);
    }
    json!(out)
}

/// Slider positions: every epoch with a CAM dump or a metrics line.
fn run_epochs(run: &RunData) -> Vec<u32> {
    let mut set: BTreeSet<u32> = run.epochs.iter().map(|e| e.epoch).collect();
    set.extend(run.epoch_metrics().map(|e| e.epoch));
    set.into_iter().collect()
}

fn missing_html(title: &str, notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let items: String = notes
        .iter()
        .map(|n| format!("<li>{}</li>", esc(n)))
        .collect();
    format!(
        "<details class=\"missing-list\"><summary>{} ({} notes)</summary><ul>{items}</ul></details>",
        esc(title),
        notes.len()
    )
}

/// Flatten a TOML document into dotted keys (`train.lr`), arrays of tables as `key[i]`.
fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::Array(a) if a.iter().any(|x| x.is_table()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn flat_config(run: &RunData) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(c) = &run.config {
        flatten("", c, &mut out);
    }
    out
}

fn meta_rows(run: &RunData) -> Vec<(&'static str, String)> {
    let Some(m) = &run.meta else {
        return Vec::new();
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    vec![
        ("name", m.name.clone()),
        ("status", m.status.clone()),
        ("started", m.started.clone()),
        ("finished", opt(&m.finished)),
        ("resumed", m.resumed.join(", ")),
        ("device", m.device.clone()),
        ("threads", m.threads.to_string()),
        ("seed", m.seed.to_string()),
        ("git rev", opt(&m.git_rev)),
        ("host", opt(&m.hostname)),
        ("moirelab", m.moirelab_version.clone()),
        ("tch", m.tch_version.clone()),
        ("libtorch", m.libtorch_version.clone()),
        ("argv", m.argv.join(" ")),
    ]
}

fn kv_table(rows: &[(String, String)], cls: &str) -> String {
    let mut s = format!("<table class=\"kv {cls}\"><tbody>");
    for (k, v) in rows {
        s.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            esc(k),
            esc(v)
        ));
    }
    s.push_str("</tbody></table>");
    s
}

fn opt_num(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "–".into())
}

/// PAD + accuracy table, one row per split, threshold included.
fn pad_table(rows: &[(&str, &EpochMetrics)]) -> String {
    let heads = [
        "split",
        "epoch",
        "n",
        "loss",
        "accuracy",
        "balanced acc",
        "worst group",
        "aligned acc",
        "conflicting acc",
        "threshold",
        "APCER",
        "BPCER",
        "ACER (non-ISO)",
        "EER",
        "AUC",
        "BPCER20",
        "BPCER100",
    ];
    let mut s = String::from("<table class=\"metrics\"><thead><tr>");
    for h in heads {
        s.push_str(&format!("<th>{h}</th>"));
    }
    s.push_str("</tr></thead><tbody>");
    for (split, e) in rows {
        let p = e.pad.as_ref();
        let cells = [
            e.epoch.to_string(),
            e.n.to_string(),
            fmt_num(e.loss),
            fmt_num(e.accuracy),
            fmt_num(e.balanced_accuracy),
            opt_num(e.worst_group_accuracy),
            opt_num(e.aligned_accuracy),
            opt_num(e.conflicting_accuracy),
            opt_num(p.map(|p| p.threshold)),
            opt_num(p.map(|p| p.apcer)),
            opt_num(p.map(|p| p.bpcer)),
            opt_num(p.map(|p| p.acer_non_iso)),
            opt_num(p.map(|p| p.eer)),
            opt_num(p.map(|p| p.auc)),
            opt_num(p.and_then(|p| p.bpcer20)),
            opt_num(p.and_then(|p| p.bpcer100)),
        ];
        s.push_str(&format!("<tr><th scope=\"row\">{}</th>", esc(split)));
        for c in cells {
            s.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Inline SVG charts; `links` = (page folder, plots folder, plot files on disk) adds PNG/SVG
/// links to the charts whose files exist.
fn charts_html(charts: &[Chart], links: Option<(&Path, &Path, &[PathBuf])>) -> Result<String> {
    if charts.is_empty() {
        return Ok("<p class=\"note\">No curves yet (no metrics lines).</p>".into());
    }
    let mut s = String::from("<div class=\"charts\">");
    for c in charts {
        s.push_str(&format!(
            "<figure class=\"chart\" id=\"chart-{}\">{}",
            esc(&c.name),
            plots::to_svg(c)?
        ));
        if let Some((base, plots_dir, files)) = links {
            let png = plots_dir.join(format!("{}.png", c.name));
            let svg = plots_dir.join(format!("{}.svg", c.name));
            if !files.contains(&png) {
                s.push_str("</figure>");
                continue;
            }
            s.push_str(&format!(
                "<figcaption><a href=\"{}\">PNG</a> · <a href=\"{}\">SVG</a></figcaption>",
                esc(&url(base, &png)),
                esc(&url(base, &svg))
            ));
        }
        s.push_str("</figure>");
    }
    s.push_str("</div>");
    Ok(s)
}

fn colorbar_html(colormap: &str) -> String {
    let known = ["jet", "turbo", "viridis"];
    let cls = if known.contains(&colormap) {
        colormap
    } else {
        "jet"
    };
    format!(
        "<div class=\"colorbar\"><span>low</span><div class=\"cbar cm-{cls}\" \
         role=\"img\" aria-label=\"colour bar\"></div><span>high CAM value</span>\
         <span class=\"note\">colormap: {}</span></div>",
        esc(colormap)
    )
}

fn controls_html(compare: bool) -> String {
    let mut s = String::from(
        "<div class=\"controls\"><button type=\"button\" id=\"prev\" title=\"previous epoch (←)\">←</button>\
         <input type=\"range\" id=\"epoch\" min=\"0\" max=\"0\" step=\"1\" value=\"0\" aria-label=\"epoch\">\
         <button type=\"button\" id=\"next\" title=\"next epoch (→)\">→</button>\
         <output id=\"epoch-label\"></output>",
    );
    if compare {
        s.push_str(
            "<label>method <select id=\"method\"></select></label>\
             <label>image <select id=\"kind\"><option value=\"overlay\">overlay</option>\
             <option value=\"pred\">CAM (pred)</option><option value=\"true\">CAM (true)</option>\
             <option value=\"input\">input</option></select></label>",
        );
    } else {
        s.push_str(
            "<label>view <select id=\"mode\"><option value=\"grid\">grid: all probes, one epoch</option>\
             <option value=\"film\">filmstrip: one probe, all epochs</option></select></label>\
             <label id=\"probe-pick\" hidden>probe <select id=\"probe\"></select></label>",
        );
    }
    s.push_str("<span class=\"note\">keys ← → move the epoch</span></div>");
    s
}

/// Build and write `run/report/index.html`.
pub(crate) fn write_run_page(
    run: &RunData,
    plots: &[PathBuf],
    gifs: &[PathBuf],
) -> Result<PathBuf> {
    let report_dir = run.dir.join("report");
    let out = report_dir.join("index.html");
    let base = report_dir.as_path();

    let probes: Vec<Value> = run
        .probe_indices()
        .into_iter()
        .map(|i| {
            json!({
                "index": i,
                "id": run.probe_id(i),
                "input": run.probe_inputs.get(&i).map(|p| url(base, p)),
            })
        })
        .collect();
    let mut gif_map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for g in gifs {
        let name = g
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some((idx, method)) = name.split_once('-') {
            if let Ok(i) = idx.parse::<usize>() {
                gif_map
                    .entry(i.to_string())
                    .or_default()
                    .insert(method.to_string(), url(base, g));
            }
        }
    }
    let data = json!({
        "kind": "run",
        "name": run.name,
        "epochs": run_epochs(run),
        "classes": run.classes(),
        "methods": run.methods(),
        "tile_kinds": TILE_KINDS,
        "probes": probes,
        "dumps": run_dumps(run, base),
        "metrics": run_metrics(run),
        "gifs": gif_map,
    });

    let m = run.meta.as_ref();
    let status = m.map(|m| m.status.as_str()).unwrap_or("unknown");
    let sub = format!(
        "status: {} · device: {} · started: {} · {} epoch lines · folder: {}",
        status,
        m.map(|m| m.device.as_str()).unwrap_or("–"),
        m.map(|m| m.started.as_str()).unwrap_or("–"),
        run_epochs(run).len(),
        run.dir.display()
    );
    let mut body = format!(
        "<header><h1>Run <span class=\"run-name\">{}</span></h1><p class=\"sub\">{}</p>\
         <nav><a href=\"#gallery\">gallery</a> <a href=\"#curves\">curves</a> \
         <a href=\"#metrics\">metrics</a> <a href=\"#config\">config</a> <a href=\"#meta\">meta</a></nav></header>",
        esc(&run.name),
        esc(&sub)
    );
    body.push_str(&missing_html("What is missing", &run.missing));

    body.push_str("<section id=\"gallery\"><h2>Grad-CAM gallery</h2>");
    body.push_str(&controls_html(false));
    body.push_str(&colorbar_html(&run.colormap()));
    body.push_str("<div id=\"view\"></div></section>");

    let plots_dir = run.dir.join("plots");
    let charts = plots::run_charts(run);
    body.push_str("<section id=\"curves\"><h2>Curves</h2>");
    body.push_str(&charts_html(
        &charts,
        Some((base, plots_dir.as_path(), plots)),
    )?);
    body.push_str("</section>");

    body.push_str(
        "<section id=\"metrics\"><h2>Metrics at the selected epoch</h2><div id=\"epoch-metrics\"></div>",
    );
    body.push_str("<h2>Final metrics</h2>");
    if let Some(s) = &run.summary {
        body.push_str(&format!(
            "<p>best epoch {} by {} = {} · decision threshold on the attack score {} (fixed on val at its EER point, applied to test) · wall {} s</p>",
            s.best_epoch,
            esc(&s.best_metric),
            esc(&fmt_num(s.best_value)),
            esc(&fmt_num(s.threshold)),
            esc(&fmt_num(s.wall_s))
        ));
    } else {
        body.push_str(
            "<p class=\"note\">No summary.json yet: showing the last epoch of each split.</p>",
        );
    }
    let finals: Vec<(&str, &EpochMetrics)> = ["val", "test"]
        .into_iter()
        .filter_map(|s| run.final_split(s).map(|e| (s, e)))
        .collect();
    if finals.is_empty() {
        body.push_str("<p class=\"note\">No val or test metrics yet.</p>");
    } else {
        body.push_str(&pad_table(&finals));
    }
    body.push_str("</section>");

    body.push_str("<section id=\"config\"><h2>Resolved config</h2>");
    let cfg: Vec<(String, String)> = flat_config(run).into_iter().collect();
    if cfg.is_empty() {
        body.push_str("<p class=\"note\">config.toml missing.</p>");
    } else {
        body.push_str(&kv_table(&cfg, "config"));
    }
    if let Some(t) = &run.config_text {
        body.push_str(&format!(
            "<details><summary>config.toml as written</summary><pre>{}</pre></details>",
            esc(t)
        ));
    }
    body.push_str("</section><section id=\"meta\"><h2>Meta</h2>");
    let meta: Vec<(String, String)> = meta_rows(run)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if meta.is_empty() {
        body.push_str("<p class=\"note\">meta.json missing.</p>");
    } else {
        body.push_str(&kv_table(&meta, "meta"));
    }
    body.push_str("</section>");

    let html = page(&format!("moirelab run {}", run.name), &body, &data)?;
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

/// (label, split, getter, higher is better) rows of the compare page's final table.
type MetricRow = (
    &'static str,
    &'static str,
    fn(&EpochMetrics) -> Option<f64>,
    bool,
);

const FINAL_ROWS: [MetricRow; 16] = [
    ("loss", "val", |e| Some(e.loss), false),
    ("accuracy", "val", |e| Some(e.accuracy), true),
    (
        "balanced accuracy",
        "val",
        |e| Some(e.balanced_accuracy),
        true,
    ),
    ("EER", "val", |e| e.pad.as_ref().map(|p| p.eer), false),
    ("AUC", "val", |e| e.pad.as_ref().map(|p| p.auc), true),
    ("loss", "test", |e| Some(e.loss), false),
    ("accuracy", "test", |e| Some(e.accuracy), true),
    (
        "balanced accuracy",
        "test",
        |e| Some(e.balanced_accuracy),
        true,
    ),
    (
        "worst-group accuracy",
        "test",
        |e| e.worst_group_accuracy,
        true,
    ),
    (
        "conflicting accuracy",
        "test",
        |e| e.conflicting_accuracy,
        true,
    ),
    ("APCER", "test", |e| e.pad.as_ref().map(|p| p.apcer), false),
    ("BPCER", "test", |e| e.pad.as_ref().map(|p| p.bpcer), false),
    (
        "ACER (non-ISO)",
        "test",
        |e| e.pad.as_ref().map(|p| p.acer_non_iso),
        false,
    ),
    ("EER", "test", |e| e.pad.as_ref().map(|p| p.eer), false),
    ("AUC", "test", |e| e.pad.as_ref().map(|p| p.auc), true),
    (
        "BPCER20",
        "test",
        |e| e.pad.as_ref().and_then(|p| p.bpcer20),
        false,
    ),
];

fn final_table(runs: &[RunData]) -> String {
    let mut s =
        String::from("<table class=\"metrics final\"><thead><tr><th>metric</th><th>better</th>");
    for r in runs {
        s.push_str(&format!("<th>{}</th>", esc(&r.name)));
    }
    s.push_str("</tr></thead><tbody>");
    for (label, split, get, higher) in FINAL_ROWS {
        let vals: Vec<Option<f64>> = runs
            .iter()
            .map(|r| r.final_split(split).and_then(get).filter(|v| v.is_finite()))
            .collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        let present: Vec<f64> = vals.iter().flatten().copied().collect();
        let best = if higher {
            present.iter().copied().fold(f64::MIN, f64::max)
        } else {
            present.iter().copied().fold(f64::MAX, f64::min)
        };
        // Only mark a best when there is something to compare against.
        let mark = present.len() > 1;
        s.push_str(&format!(
            "<tr><th scope=\"row\">{split} {label}</th><td>{}</td>",
            if higher { "higher" } else { "lower" }
        ));
        for v in vals {
            match v {
                Some(v) if mark && v == best => s.push_str(&format!(
                    "<td class=\"best\" title=\"best\">{} ★</td>",
                    esc(&fmt_num(v))
                )),
                Some(v) => s.push_str(&format!("<td>{}</td>", esc(&fmt_num(v)))),
                None => s.push_str("<td class=\"na\">–</td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Config table across runs; rows equal in every run carry `data-same` for the toggle.
fn config_table(runs: &[RunData], flats: &[BTreeMap<String, String>]) -> String {
    let keys: BTreeSet<&String> = flats.iter().flat_map(|f| f.keys()).collect();
    let mut s = String::from(
        "<label class=\"toggle\"><input type=\"checkbox\" id=\"diff-only\" checked> differences only</label>\
         <table class=\"config-diff diff-only\" id=\"config-table\"><thead><tr><th>key</th>",
    );
    for r in runs {
        s.push_str(&format!("<th>{}</th>", esc(&r.name)));
    }
    s.push_str("</tr></thead><tbody>");
    for k in keys {
        let vals: Vec<Option<&String>> = flats.iter().map(|f| f.get(k)).collect();
        let same = vals.windows(2).all(|w| w[0] == w[1]);
        s.push_str(&format!(
            "<tr class=\"{}\"><th scope=\"row\">{}</th>",
            if same { "same" } else { "differs" },
            esc(k)
        ));
        for v in vals {
            match v {
                Some(v) => s.push_str(&format!("<td>{}</td>", esc(v))),
                None => s.push_str("<td class=\"na\">(absent)</td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Overlaid curves: one series per run (colour = run), val and test where present.
fn compare_charts(runs: &[RunData]) -> Vec<Chart> {
    type Get = fn(&EpochMetrics) -> Option<f64>;
    let specs: [(&str, &str, &str, Get); 5] = [
        ("cmp-loss", "Loss", "cross-entropy", |e| Some(e.loss)),
        ("cmp-accuracy", "Accuracy", "accuracy", |e| Some(e.accuracy)),
        (
            "cmp-balanced",
            "Balanced accuracy",
            "balanced accuracy",
            |e| Some(e.balanced_accuracy),
        ),
        (
            "cmp-conflicting",
            "Shortcut-conflicting accuracy",
            "accuracy",
            |e| e.conflicting_accuracy,
        ),
        ("cmp-eer", "EER", "EER", |e| e.pad.as_ref().map(|p| p.eer)),
    ];
    let mut charts = Vec::new();
    for (name, title, ylab, get) in specs {
        let mut series = Vec::new();
        for (ri, r) in runs.iter().enumerate() {
            for (split, dashed) in [("val", false), ("test", true)] {
                let mut pts: Vec<(f64, f64)> = r
                    .epoch_metrics()
                    .filter(|e| e.split == split)
                    .filter_map(|e| get(e).map(|v| (f64::from(e.epoch), v)))
                    .filter(|p| p.1.is_finite())
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                if !pts.is_empty() {
                    series.push(Series {
                        name: format!("{} {split}", r.name),
                        points: pts,
                        color: ri,
                        dashed,
                    });
                }
            }
        }
        charts.push(Chart {
            name: name.into(),
            title: format!("{title} (solid val, dashed test)"),
            x_label: "epoch".into(),
            y_label: ylab.into(),
            series,
        });
    }
    // Attention share per region, pred-class CAM of each run's first method.
    let mut regions: BTreeSet<String> = BTreeSet::new();
    for r in runs {
        for c in r.cam_metrics() {
            regions.extend(c.regions.keys().cloned());
        }
    }
    for region in regions {
        let mut series = Vec::new();
        for (ri, r) in runs.iter().enumerate() {
            let Some((method, target)) = plots::cam_keys(r).into_iter().find(|(_, t)| t == "pred")
            else {
                continue;
            };
            let mut color = |_: &str| ri;
            let s = plots::attention_series(r, &method, &target, &mut color, "");
            for mut x in s {
                let rest = x.name.strip_prefix(region.as_str());
                let Some(suffix) = rest.filter(|s| s.is_empty() || s.starts_with(' ')) else {
                    continue;
                };
                x.name = format!("{} ({method}){suffix}", r.name);
                series.push(x);
            }
        }
        let safe: String = region
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        charts.push(Chart {
            name: format!("cmp-attention-{safe}"),
            title: format!("Attention share on \"{region}\" (pred-class CAM)"),
            x_label: "epoch".into(),
            y_label: "share of CAM mass".into(),
            series,
        });
    }
    charts.retain(|c| !c.series.is_empty());
    charts
}

/// Build and write `out_dir/index.html` comparing `runs`.
pub(crate) fn write_compare_page(runs: &[RunData], out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let base = canonical(out_dir)?;
    let out = base.join("index.html");

    let flats: Vec<BTreeMap<String, String>> = runs.iter().map(flat_config).collect();
    let all_keys: BTreeSet<&String> = flats.iter().flat_map(|f| f.keys()).collect();
    let differing: Vec<&String> = all_keys
        .into_iter()
        .filter(|k| {
            let v: Vec<Option<&String>> = flats.iter().map(|f| f.get(*k)).collect();
            !v.windows(2).all(|w| w[0] == w[1])
        })
        .collect();

    // Probes matched across runs by their stable id (data-set relative path).
    let mut order: Vec<String> = Vec::new();
    let mut by_run: Vec<BTreeMap<String, usize>> = Vec::new();
    for r in runs {
        let mut m = BTreeMap::new();
        for i in r.probe_indices() {
            let id = r.probe_id(i);
            if !order.contains(&id) {
                order.push(id.clone());
            }
            m.insert(id, i);
        }
        by_run.push(m);
    }
    let dumps: Vec<Value> = runs.iter().map(|r| run_dumps(r, &base)).collect();
    let probes: Vec<Value> = order
        .iter()
        .map(|id| {
            let cells: Vec<Value> = runs
                .iter()
                .zip(&by_run)
                .map(|(r, m)| match m.get(id) {
                    Some(&i) => json!({
                        "index": i,
                        "input": r.probe_inputs.get(&i).map(|p| url(&base, p)),
                    }),
                    None => Value::Null,
                })
                .collect();
            json!({ "id": id, "cells": cells })
        })
        .collect();
    let mut methods: Vec<String> = Vec::new();
    for r in runs {
        for m in r.methods() {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
    }
    let mut epochs: BTreeSet<u32> = BTreeSet::new();
    for r in runs {
        epochs.extend(r.epochs.iter().map(|e| e.epoch));
    }
    let run_json: Vec<Value> = runs
        .iter()
        .zip(&flats)
        .zip(&dumps)
        .map(|((r, f), d)| {
            let diff: Vec<(String, String)> = differing
                .iter()
                .map(|k| {
                    (
                        (*k).clone(),
                        f.get(*k).cloned().unwrap_or_else(|| "(absent)".into()),
                    )
                })
                .collect();
            json!({
                "name": r.name,
                "epochs": r.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
                "diff": diff,
                "dumps": d,
            })
        })
        .collect();
    let data = json!({
        "kind": "compare",
        "runs": run_json,
        "epochs": epochs,
        "methods": methods,
        "probes": probes,
    });

    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let mut body = format!(
        "<header><h1>Compare {} runs</h1><p class=\"sub\">{}</p>\
         <nav><a href=\"#gallery\">probes</a> <a href=\"#curves\">curves</a> \
         <a href=\"#final\">final metrics</a> <a href=\"#config\">config</a></nav></header>",
        runs.len(),
        esc(&names.join(" · "))
    );
    for r in runs {
        body.push_str(&missing_html(
            &format!("{}: what is missing", r.name),
            &r.missing,
        ));
    }
    body.push_str("<section id=\"gallery\"><h2>Probes side by side</h2>");
    body.push_str(&controls_html(true));
    let cmap = runs
        .first()
        .map(|r| r.colormap())
        .unwrap_or_else(|| "jet".into());
    body.push_str(&colorbar_html(&cmap));
    body.push_str("<div id=\"view\"></div></section>");
    body.push_str("<section id=\"curves\"><h2>Curves</h2>");
    body.push_str(&charts_html(&compare_charts(runs), None)?);
    body.push_str("</section><section id=\"final\"><h2>Final metrics</h2>");
    body.push_str("<p class=\"note\">From summary.json (val = best epoch) or, while training, the last epoch; ★ marks the best value of each row.</p>");
    body.push_str(&final_table(runs));
    body.push_str("</section><section id=\"config\"><h2>Config</h2>");
    body.push_str(&config_table(runs, &flats));
    body.push_str("</section>");

    let html = page(
        &format!("moirelab compare: {}", names.join(", ")),
        &body,
        &data,
    )?;
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_uses_dotted_keys_and_indexes_arrays_of_tables() {
        let v: toml::Value =
            toml::from_str("a = 1\n[train]\nlr = 0.001\nname = \"x\"\n[[hooks]]\nk = true\n")
                .unwrap();
        let mut out = BTreeMap::new();
        flatten("", &v, &mut out);
        assert_eq!(out["a"], "1");
        assert_eq!(out["train.lr"], "0.001");
        assert_eq!(out["train.name"], "x");
        assert_eq!(out["hooks[0].k"], "true");
    }

    #[test]
    fn page_csp_hashes_the_exact_inline_blocks() {
        let html = page("t", "<p>b</p>", &json!({"x": "</script>"})).unwrap();
        assert!(html.contains(&csp_hash(JS)) && html.contains(&csp_hash(CSS)));
        assert!(!html.contains("unsafe-inline"));
        assert!(html.contains(&format!("<script>{JS}</script>")));
        assert!(
            !html.contains("\"</script>"),
            "data block must not close early"
        );
    }
}
