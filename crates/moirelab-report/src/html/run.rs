//! The run page: `runs/<name>/report/index.html`.

use super::tables::{flat_config, kv_table, meta_rows, pad_table, scroller};
use super::verdict::{card_html, small_multiples_html};
use super::ZOOM_HTML;
use super::{charts_html, colorbar_html, controls_html, missing_html, page, run_json, Linker};
use crate::load::RunData;
use crate::plots;
use crate::util::{esc, fmt_num};
use crate::Result;
use moirelab_core::fsio::write_atomic;
use moirelab_core::run::EpochMetrics;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

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

/// Build and write `run/report/index.html`; `standalone` copies every linked image under
/// `report/files/` so the report folder opens on its own.
pub(crate) fn write_run_page(
    run: &RunData,
    plot_files: &[PathBuf],
    gifs: &[PathBuf],
    standalone: bool,
) -> Result<PathBuf> {
    let report_dir = run.dir.join("report");
    let out = report_dir.join("index.html");
    let link = Linker::new(&report_dir, standalone);

    let probes: Vec<Value> = run
        .probe_indices()
        .into_iter()
        .map(|i| json!({ "id": run.probe_id(i), "cells": [i] }))
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
                    .insert(method.to_string(), link.url("", &run.dir, g));
            }
        }
    }
    let data = json!({
        "kind": "run",
        "runs": [run_json(run, &link, "")],
        "epochs": run_epochs(run),
        "probes": probes,
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
         <nav><a href=\"#verdict\">verdict</a> <a href=\"#gallery\">gallery</a> \
         <a href=\"#attention\">attention over epochs</a> <a href=\"#curves\">curves</a> \
         <a href=\"#metrics\">metrics</a> <a href=\"#config\">config</a> <a href=\"#meta\">meta</a></nav></header>",
        esc(&run.name),
        esc(&sub)
    );
    body.push_str(&missing_html("What is missing", &run.notes()));
    body.push_str(&card_html(std::slice::from_ref(run)));

    body.push_str("<section id=\"gallery\"><h2>Grad-CAM gallery</h2>");
    body.push_str(&controls_html(false));
    body.push_str(&colorbar_html(&run.colormap()));
    body.push_str("<div id=\"view\"></div></section>");
    body.push_str(&small_multiples_html(std::slice::from_ref(run)));

    let plots_dir = run.dir.join("plots");
    let charts: Vec<_> = plots::run_charts(run)
        .into_iter()
        .filter(|c| !c.name.starts_with("attention-"))
        .collect();
    body.push_str("<section id=\"curves\"><h2>Curves</h2>");
    body.push_str(&charts_html(
        &charts,
        &link,
        Some((run, plots_dir.as_path(), plot_files)),
    )?);
    body.push_str("</section>");

    body.push_str(
        "<section id=\"metrics\"><h2>Metrics at the selected epoch</h2><div id=\"epoch-metrics\"></div>",
    );
    body.push_str("<h2>Final metrics</h2>");
    if let Some(s) = &run.summary {
        // Runs from before the source was recorded get no claim about it.
        let how = match &s.threshold_source {
            Some(src) => format!("{}, applied to test", src.describe()),
            None => "applied to test".into(),
        };
        body.push_str(&format!(
            "<p>best epoch {} by {} = {} · decision threshold on the attack score {} ({}) · wall {} s</p>",
            s.best_epoch,
            esc(&s.best_metric),
            esc(&fmt_num(s.best_value)),
            esc(&fmt_num(s.threshold)),
            esc(&how),
            esc(&fmt_num(s.wall_s))
        ));
    } else if m.is_some_and(|m| m.status == "finished") {
        body.push_str(
            "<p class=\"note\">summary.json is missing, although meta.json says the run \
             finished: showing the last epoch of each split.</p>",
        );
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
        body.push_str(&scroller(&pad_table(&finals)));
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
    body.push_str(ZOOM_HTML);

    let html = page(&format!("moirelab run {}", run.name), &body, &data)?;
    link.copy_files()?;
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}
