//! The offline pages. Static parts (header, verdict card, tables, config, inline SVG) are
//! built here with [`esc`] on every user string; the parts that follow the controls (epoch,
//! triage, maps) are drawn by `assets/report.js` from a JSON data block (text only via
//! `textContent`). CSS and JS are inlined and allowed by their SHA-256 in a strict
//! Content-Security-Policy meta tag.
//!
//! * this module: the page shell, links (relative, or copied for a standalone export), the
//!   per-run data block shared by both pages, the map colour filters and the controls;
//! * [`run`]: the run page; [`compare`]: the compare page;
//! * [`tables`]: static tables; [`verdict`]: the verdict card and lift small multiples;
//! * [`same_image`]: compare rows that show another picture in some runs.

mod compare;
mod run;
mod same_image;
mod tables;
mod verdict;

pub(crate) use compare::write_compare_page;
pub(crate) use run::write_run_page;

use crate::load::RunData;
use crate::plots::{self, Chart};
use crate::util::{csp_hash, esc, json_for_script, relative_path, url_path};
use crate::{ReportError, Result};
use moirelab_core::run::{ProbeRecord, ProbesFile};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CSS: &str = include_str!("../../assets/report.css");
const JS: &str = include_str!("../../assets/report.js");

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

/// Turns files of run folders into URLs relative to the page. A standalone export copies
/// every linked file under `<page folder>/files/` first, so the page folder opens anywhere.
pub(crate) struct Linker {
    base: PathBuf,
    standalone: bool,
    /// destination -> source, for the standalone copy.
    copies: RefCell<BTreeMap<PathBuf, PathBuf>>,
}

impl Linker {
    pub(crate) fn new(base: &Path, standalone: bool) -> Self {
        Linker {
            base: base.to_path_buf(),
            standalone,
            copies: RefCell::new(BTreeMap::new()),
        }
    }

    /// URL of `target`, a file of the run folder `run_dir` (run `slot` of the page).
    pub(crate) fn url(&self, slot: &str, run_dir: &Path, target: &Path) -> String {
        if !self.standalone || target.starts_with(&self.base) {
            return url(&self.base, target);
        }
        let rel = target
            .strip_prefix(run_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(target.file_name().unwrap_or_default()));
        let mut dst = self.base.join("files");
        if !slot.is_empty() {
            dst.push(slot);
        }
        dst.push(rel);
        let u = url(&self.base, &dst);
        self.copies.borrow_mut().insert(dst, target.to_path_buf());
        u
    }

    /// Copy the linked files of a standalone export into a fresh `files/` folder: written
    /// beside it first (`.files.partial-<pid>`), then swapped in, so a failure leaves the old
    /// one as it was and a folder exported before keeps none of the earlier run's files.
    /// Nothing outside `files/` is touched; a page that is not standalone leaves it alone.
    /// A `files/` that an export did not write (no [`EXPORT_MARKER`] inside) is someone
    /// else's: it is refused, never replaced.
    pub(crate) fn copy_files(&self) -> Result<usize> {
        if !self.standalone {
            return Ok(0);
        }
        let files = self.base.join("files");
        check_own_files(&files)?;
        moirelab_core::fsio::remove_abandoned_dirs(&self.base, "files");
        let staged = self
            .base
            .join(format!(".files.partial-{}", std::process::id()));
        let result = self.stage(&files, &staged).and_then(|n| {
            moirelab_core::fsio::replace_dir(&staged, &files)?;
            Ok(n)
        });
        if result.is_err() && staged.exists() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        result
    }

    /// Copy every linked file to its place under `staged` instead of `files`.
    fn stage(&self, files: &Path, staged: &Path) -> Result<usize> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Io { path, source }
        };
        if staged.exists() {
            std::fs::remove_dir_all(staged).map_err(io(staged))?;
        }
        std::fs::create_dir_all(staged).map_err(io(staged))?;
        let marker = staged.join(EXPORT_MARKER);
        std::fs::write(&marker, MARKER_TEXT).map_err(io(&marker))?;
        let copies = self.copies.borrow();
        for (dst, src) in copies.iter() {
            let to = staged.join(dst.strip_prefix(files).unwrap_or(dst));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(src, &to).map_err(io(src))?;
        }
        Ok(copies.len())
    }
}

/// The file a standalone export writes into its `files/` folder, so that the next export
/// knows the folder is its own to replace.
pub(crate) const EXPORT_MARKER: &str = ".moirelab-export";
const MARKER_TEXT: &str = "Written by a moirelab standalone export (report --standalone, \
compare --standalone). The next export replaces this whole folder.\n";

/// Ok when `files` is absent or a folder (not a link) an export wrote: it holds
/// [`EXPORT_MARKER`] as a plain file.
fn check_own_files(files: &Path) -> Result<()> {
    match std::fs::symlink_metadata(files) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ReportError::Io {
                path: files.to_path_buf(),
                source,
            })
        }
        Ok(m) if m.is_dir() => {
            let marker = std::fs::symlink_metadata(files.join(EXPORT_MARKER));
            if marker.is_ok_and(|m| m.is_file()) {
                return Ok(());
            }
        }
        Ok(_) => {}
    }
    Err(ReportError::ForeignFiles {
        path: files.to_path_buf(),
    })
}

fn class_name(classes: &[String], i: usize) -> String {
    classes
        .get(i)
        .cloned()
        .unwrap_or_else(|| format!("class {i}"))
}

/// Three significant decimals keep the data block small.
fn r3(v: f64) -> Value {
    if v.is_finite() {
        json!((v * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// What the pages know about a probe at one epoch: classes, P(attack), group, lifts.
fn probe_cell(rec: &ProbeRecord, pf: &ProbesFile, attack: Option<usize>) -> Value {
    let lift: BTreeMap<&String, BTreeMap<&String, Value>> = rec
        .regions
        .iter()
        .map(|(k, m)| (k, m.iter().map(|(r, s)| (r, r3(s.lift))).collect()))
        .collect();
    let pa = attack.and_then(|a| rec.probs.get(a).copied());
    json!({
        "t": class_name(&pf.classes, rec.true_class),
        "p": class_name(&pf.classes, rec.pred_class),
        "ok": rec.true_class == rec.pred_class,
        "pp": rec.probs.get(rec.pred_class).copied().map(r3),
        "pa": pa.map(r3),
        "groups": rec.groups,
        "aligned": rec.aligned,
        "lift": lift,
    })
}

/// Per-epoch dumps of a run for the data block: probe rows, map strips (URL and value range
/// per map), the epoch-wide maximum per method, and colour tiles only for maps without a
/// strip (runs dumped before strips existed).
fn run_dumps(run: &RunData, link: &Linker, slot: &str) -> Value {
    let attack = verdict::attack_class(run);
    let mut dumps = Map::new();
    for e in &run.epochs {
        let mut rows = Map::new();
        if let Some(pf) = &e.probes {
            let ai = attack
                .as_ref()
                .and_then(|a| pf.classes.iter().position(|c| c == a));
            for rec in &pf.probes {
                rows.insert(rec.index.to_string(), probe_cell(rec, pf, ai));
            }
        }
        let mut maps = Map::new();
        let mut gmax: BTreeMap<String, f64> = BTreeMap::new();
        if let Some(mf) = &e.maps {
            for (key, strip) in &mf.maps {
                let Some(path) = e.strips.get(key) else {
                    continue;
                };
                let method = key.rsplit_once('/').map(|(m, _)| m).unwrap_or(key);
                let top = strip.max.iter().copied().fold(0.0, f64::max);
                let g = gmax.entry(method.to_string()).or_insert(0.0);
                *g = g.max(top);
                maps.insert(
                    key.clone(),
                    json!({
                        "url": link.url(slot, &run.dir, path),
                        "n": strip.max.len(),
                        "min": strip.min.iter().map(|v| json!(*v as f32)).collect::<Vec<_>>(),
                        "max": strip.max.iter().map(|v| json!(*v as f32)).collect::<Vec<_>>(),
                    }),
                );
            }
        }
        let mut tiles: BTreeMap<String, BTreeMap<&String, BTreeMap<&String, String>>> =
            BTreeMap::new();
        for ((probe, method, kind), p) in &e.tiles {
            if kind == "overlay" || maps.contains_key(&format!("{method}/{kind}")) {
                continue;
            }
            tiles
                .entry(probe.to_string())
                .or_default()
                .entry(method)
                .or_default()
                .insert(kind, link.url(slot, &run.dir, p));
        }
        dumps.insert(
            e.epoch.to_string(),
            json!({
                "grid": e.grid.as_ref().map(|g| link.url(slot, &run.dir, g)),
                "has_probes": e.probes.is_some(),
                "rows": rows,
                "maps": maps,
                "gmax": gmax.into_iter().map(|(k, v)| (k, json!(v as f32))).collect::<Map<_, _>>(),
                "tiles": tiles,
            }),
        );
    }
    Value::Object(dumps)
}

/// The data block of one run, shared by the run page and each column of the compare page.
fn run_json(run: &RunData, link: &Linker, slot: &str) -> Value {
    let inputs: BTreeMap<String, String> = run
        .probe_inputs
        .iter()
        .map(|(i, p)| (i.to_string(), link.url(slot, &run.dir, p)))
        .collect();
    let ids: BTreeMap<String, String> = run
        .probe_indices()
        .into_iter()
        .map(|i| (i.to_string(), run.probe_id(i)))
        .collect();
    json!({
        "name": run.name,
        "attack": verdict::attack_class(run),
        "classes": run.classes(),
        "methods": run.methods(),
        "colormap": run.colormap(),
        "best": verdict::best_epoch(run),
        "last": verdict::last_epoch(run),
        "inputs": inputs,
        "ids": ids,
        "dumps": run_dumps(run, link, slot),
    })
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

/// Inline SVG charts; `links` = (plots folder, plot files on disk) adds PNG/SVG links to the
/// charts whose files exist.
fn charts_html(
    charts: &[Chart],
    link: &Linker,
    links: Option<(&RunData, &Path, &[PathBuf])>,
) -> Result<String> {
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
        if let Some((run, plots_dir, files)) = links {
            let png = plots_dir.join(format!("{}.png", c.name));
            let svg = plots_dir.join(format!("{}.svg", c.name));
            if files.contains(&png) {
                s.push_str(&format!(
                    "<figcaption><a href=\"{}\">PNG</a> · <a href=\"{}\">SVG</a></figcaption>",
                    esc(&link.url("", &run.dir, &png)),
                    esc(&link.url("", &run.dir, &svg))
                ));
            }
        }
        s.push_str("</figure>");
    }
    s.push_str("</div>");
    Ok(s)
}

/// The colour bar (its caption follows the normalisation switch) and the SVG filter that
/// colours the 8-bit map strips in the browser: grey level -> colormap, piecewise linear.
/// The script adds variants that rescale the grey level first (per-epoch normalisation).
fn colorbar_html(colormap: &str) -> String {
    let known = ["jet", "turbo", "viridis"];
    let cls = if known.contains(&colormap) {
        colormap
    } else {
        "jet"
    };
    let stops = crate::maps::colormap_stops(cls);
    let table = |c: usize| -> String {
        stops
            .iter()
            .map(|s| format!("{:.4}", f64::from(s[c]) / 255.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<svg class=\"defs\" width=\"0\" height=\"0\" aria-hidden=\"true\" focusable=\"false\">\
         <defs id=\"filter-defs\"><filter id=\"cm\" color-interpolation-filters=\"sRGB\">\
         <feComponentTransfer id=\"cm-table\"><feFuncR type=\"table\" tableValues=\"{}\"/>\
         <feFuncG type=\"table\" tableValues=\"{}\"/><feFuncB type=\"table\" tableValues=\"{}\"/>\
         </feComponentTransfer></filter></defs></svg>\
         <div class=\"colorbar\"><span id=\"cbar-low\">0</span><div class=\"cbar cm-{cls}\" \
         role=\"img\" aria-label=\"colour bar\"></div><span id=\"cbar-high\">1</span>\
         <span id=\"cbar-note\" class=\"note\"></span><span class=\"note\">colormap: {}</span></div>",
        table(0),
        table(1),
        table(2),
        esc(colormap)
    )
}

/// The sticky controls bar: epoch (or alignment), maps, triage filters and sort, display.
fn controls_html(compare: bool) -> String {
    let mut s = String::from("<div class=\"controls\" id=\"controls\"><div class=\"crow\">");
    if compare {
        s.push_str(
            "<label>align <select id=\"align\"><option value=\"best\">each run's best</option>\
             <option value=\"last\">each run's last</option><option value=\"epoch\">same epoch</option>\
             <option value=\"frac\">same fraction of training</option></select></label>",
        );
    }
    s.push_str(
        "<span id=\"slider-box\"><button type=\"button\" id=\"prev\" title=\"previous epoch (←)\">←</button>\
         <input type=\"range\" id=\"epoch\" min=\"0\" max=\"0\" step=\"1\" value=\"0\" aria-label=\"epoch\">\
         <button type=\"button\" id=\"next\" title=\"next epoch (→)\">→</button></span>\
         <output id=\"epoch-label\"></output>\
         <label>maps <select id=\"map\"><option value=\"attack\">attack class</option>\
         <option value=\"both\">predicted + true</option><option value=\"pred\">predicted class</option>\
         <option value=\"true\">true class</option></select></label>\
         <label>method <select id=\"method\"></select></label>",
    );
    if !compare {
        s.push_str(
            "<label>view <select id=\"mode\"><option value=\"grid\">probes at one epoch</option>\
             <option value=\"film\">one probe, all epochs</option></select></label>",
        );
    }
    s.push_str(
        "</div><div class=\"crow\">\
         <label>class <select id=\"f-class\"><option value=\"\">all</option></select></label>\
         <label>group <select id=\"f-group\"><option value=\"\">all</option>\
         <option value=\"conflicting\">conflicting</option><option value=\"aligned\">aligned</option></select></label>\
         <label>outcome <select id=\"f-ok\"><option value=\"\">all</option>\
         <option value=\"right\">correct</option><option value=\"wrong\">misclassified</option></select></label>\
         <label>top region <select id=\"f-region\"><option value=\"\">any</option></select></label>\
         <label>sort <select id=\"sort\"><option value=\"flag\">flag lift ↓</option>\
         <option value=\"moire\">moiré lift ↓</option><option value=\"pa\">P(attack) ↓</option>\
         <option value=\"delta\">change since previous epoch ↓</option><option value=\"index\">probe order</option></select></label>\
         <label>normalise <select id=\"norm\"><option value=\"image\">per image</option>\
         <option value=\"epoch\">per epoch (global)</option></select></label>\
         <label>overlay <input type=\"range\" id=\"opacity\" min=\"0\" max=\"100\" step=\"5\" value=\"60\" aria-label=\"map opacity\"></label>\
         <output id=\"count\"></output></div>\
         <p class=\"keys note\">↑ ↓ probe · ← → epoch · Enter enlarges · the address keeps the view</p></div>",
    );
    s
}

/// The zoom dialog the script fills; hidden until a tile is clicked.
const ZOOM_HTML: &str = "<div id=\"zoom\" class=\"zoom\" hidden role=\"dialog\" aria-modal=\"true\" \
     aria-labelledby=\"zoom-title\"><div class=\"zoom-box\"><div class=\"zoom-head\">\
     <h3 id=\"zoom-title\"></h3><button type=\"button\" id=\"zoom-close\" title=\"close (Esc)\">✕</button>\
     </div><div id=\"zoom-body\"></div></div></div>";

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn standalone_links_point_into_the_page_folder_and_record_copies() {
        let l = Linker::new(Path::new("/r/report"), true);
        let u = l.url(
            "",
            Path::new("/r"),
            Path::new("/r/epochs/0001/maps/g-pred.png"),
        );
        assert_eq!(u, "files/epochs/0001/maps/g-pred.png");
        let u = l.url("", Path::new("/r"), Path::new("/r/report/gifs/a.gif"));
        assert_eq!(u, "gifs/a.gif", "files already in the page folder stay");
        let u = l.url("1", Path::new("/x/b"), Path::new("/x/b/probes/00.png"));
        assert_eq!(u, "files/1/probes/00.png");
        assert_eq!(l.copies.borrow().len(), 2);
        let plain = Linker::new(Path::new("/r/report"), false);
        assert_eq!(
            plain.url("", Path::new("/r"), Path::new("/r/probes/00.png")),
            "../probes/00.png"
        );
    }
}
