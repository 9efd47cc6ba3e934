//! The compare page: several runs side by side, aligned by epoch, by fraction of training or
//! at each run's best / last epoch.

use super::tables::{config_table, differing_keys, final_table, flat_config};
use super::verdict::{card_html, small_multiples_html};
use super::ZOOM_HTML;
use super::{charts_html, colorbar_html, controls_html, missing_html, page, run_json, Linker};
use crate::load::RunData;
use crate::plots::{Chart, Series};

use crate::util::{canonical, esc};
use crate::{ReportError, Result};
use moirelab_core::fsio::write_atomic;
use moirelab_core::run::EpochMetrics;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
    charts.retain(|c| !c.series.is_empty());
    charts
}

/// Build and write `out_dir/index.html` comparing `runs`; `standalone` copies every linked
/// image under `out_dir/files/<run number>/`.
pub(crate) fn write_compare_page(
    runs: &[RunData],
    out_dir: &Path,
    standalone: bool,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let base = canonical(out_dir)?;
    let out = base.join("index.html");
    let link = Linker::new(&base, standalone);

    let flats: Vec<BTreeMap<String, String>> = runs.iter().map(flat_config).collect();
    let differing = differing_keys(&flats, false);
    let besides_data = differing_keys(&flats, true);

    // Probes matched across runs by their stable id (data-set relative path); rows whose
    // picture differs between runs are flagged.
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
    let differs = super::same_image::differing_probes(runs, &by_run, &order);
    let probes: Vec<Value> = order
        .iter()
        .map(|id| {
            let cells: Vec<Value> = by_run.iter().map(|m| json!(m.get(id))).collect();
            let other = differs.iter().any(|d| d.id == *id);
            json!({ "id": id, "cells": cells, "differs": other })
        })
        .collect();
    let mut epochs: BTreeSet<u32> = BTreeSet::new();
    for r in runs {
        epochs.extend(r.epochs.iter().map(|e| e.epoch));
    }
    let run_json: Vec<Value> = runs
        .iter()
        .zip(&flats)
        .enumerate()
        .map(|(i, (r, f))| {
            let diff: Vec<(String, String)> = differing
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        f.get(k).cloned().unwrap_or_else(|| "(absent)".into()),
                    )
                })
                .collect();
            let mut v = run_json(r, &link, &i.to_string());
            v["diff"] = json!(diff);
            v
        })
        .collect();
    let data = json!({
        "kind": "compare",
        "runs": run_json,
        "epochs": epochs,
        "probes": probes,
    });

    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let mut body = format!(
        "<header><h1>Compare {} runs</h1><p class=\"sub\">{}</p>\
         <nav><a href=\"#verdict\">verdict</a> <a href=\"#gallery\">probes</a> \
         <a href=\"#attention\">attention over epochs</a> <a href=\"#curves\">curves</a> \
         <a href=\"#final\">final metrics</a> <a href=\"#config\">config</a></nav></header>",
        runs.len(),
        esc(&names.join(" · "))
    );
    if !besides_data.is_empty() {
        body.push_str(&format!(
            "<div class=\"warn\" id=\"config-warning\"><strong>Not like for like:</strong> the configs \
             differ in more than the data: <code>{}</code>. Differences in the maps may come from \
             these settings, not from the data.</div>",
            esc(&besides_data.join(", "))
        ));
    }
    let roots: Vec<Option<String>> = flats.iter().map(|f| f.get("data.root").cloned()).collect();
    body.push_str(&super::same_image::warning_html(
        runs,
        &roots,
        &differs,
        order.len(),
    ));
    for r in runs {
        body.push_str(&missing_html(
            &format!("{}: what is missing", r.name),
            &r.notes(),
        ));
    }
    body.push_str(&card_html(runs));
    body.push_str("<section id=\"gallery\"><h2>Probes side by side</h2>");
    body.push_str(&controls_html(true));
    let cmap = runs
        .first()
        .map(|r| r.colormap())
        .unwrap_or_else(|| "jet".into());
    body.push_str(&colorbar_html(&cmap));
    body.push_str("<div id=\"view\"></div></section>");
    body.push_str(&small_multiples_html(runs));
    body.push_str("<section id=\"curves\"><h2>Curves</h2>");
    body.push_str(&charts_html(&compare_charts(runs), &link, None)?);
    body.push_str("</section><section id=\"final\"><h2>Final metrics</h2>");
    body.push_str("<p class=\"note\">From summary.json (val = best epoch) or, while training, the last epoch; ★ marks the best value of each row.</p>");
    body.push_str(&super::tables::scroller(&final_table(runs)));
    body.push_str("</section><section id=\"config\"><h2>Config</h2>");
    body.push_str(&super::tables::scroller(&config_table(runs, &flats)));
    body.push_str("</section>");
    body.push_str(ZOOM_HTML);

    let html = page(
        &format!("moirelab compare: {}", names.join(", ")),
        &body,
        &data,
    )?;
    link.copy_files()?;
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}
