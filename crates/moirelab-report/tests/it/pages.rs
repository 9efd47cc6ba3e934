//! The HTML pages: content, tolerance of absent files, errors on corrupt ones, escaping,
//! relative links.

use crate::fixture::{self, page_data, Spec, HOSTILE};
use moirelab_report::{write_compare, write_run_report, ReportError};
use std::path::Path;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Every image URL in the data block resolves, relative to the page's folder, to a file.
fn assert_links_resolve(page: &Path, html: &str) -> usize {
    let mut urls = Vec::new();
    fixture::image_urls(&page_data(html), &mut urls);
    let base = page.parent().unwrap();
    for u in &urls {
        assert!(
            !u.starts_with('/') && !u.contains("://"),
            "absolute link {u}"
        );
        let p = base.join(fixture::url_decode(u));
        assert!(p.is_file(), "{u} -> {} missing", p.display());
    }
    urls.len()
}

#[test]
fn run_report_has_every_epoch_probe_method_and_tile_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("full");
    spec.methods = vec!["gradcam".into(), "gradcam++".into()];
    let run = fixture::make_run(tmp.path(), &spec);
    let page = write_run_report(&run).unwrap();
    assert_eq!(page, run.canonicalize().unwrap().join("report/index.html"));
    let html = read(&page);
    let d = page_data(&html);
    assert_eq!(d["kind"], "run");
    assert_eq!(d["epochs"], serde_json::json!([1, 2, 3]));
    assert_eq!(d["methods"], serde_json::json!(["gradcam", "gradcam++"]));
    assert_eq!(d["probes"][1]["id"], "images/000002.png");
    assert_eq!(d["probes"][1]["input"], "../probes/01.png");
    assert_eq!(
        d["dumps"]["2"]["tiles"]["1"]["gradcam++"]["overlay"],
        "../epochs/0002/tiles/01-gradcampp-overlay.png"
    );
    let row = &d["dumps"]["2"]["rows"]["1"];
    assert_eq!(row["true_class"], "screen");
    assert_eq!(row["pred_class"], "screen");
    assert_eq!(row["score"], 0.7);
    assert_eq!(row["groups"]["flag"], "A");
    assert_eq!(d["metrics"]["3"]["val"]["pad"]["threshold"], 0.5);
    // 2 inputs + 3 grids + 3 epochs x 2 probes x 2 methods x 3 kinds + 2 x 2 GIFs.
    assert_eq!(assert_links_resolve(&page, &html), 2 + 3 + 36 + 4);
    // Static parts: curves inline, PAD table with threshold, config and meta, colour bar.
    for needle in [
        "id=\"chart-loss\"",
        "id=\"chart-accuracy\"",
        "id=\"chart-pad\"",
        "id=\"chart-attention-gradcam-pred\"",
        "<th>threshold</th>",
        "val.balanced_accuracy",
        "train.lr",
        "libtorch",
        "class=\"cbar cm-jet\"",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(run.join("plots/loss.png").is_file() && run.join("plots/loss.svg").is_file());
    assert!(run.join("report/gifs/01-gradcam++.gif").is_file());
    assert!(
        !html.contains("tiles missing"),
        "stem-named tiles counted as missing"
    );
}

#[test]
fn fresh_run_without_metrics_or_dumps_still_gets_a_page_listing_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fresh");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), "[train]\nepochs = 3\n").unwrap();
    let page = write_run_report(&run).unwrap();
    let html = read(&page);
    assert!(html.contains("metrics.jsonl missing"), "{html}");
    assert!(html.contains("meta.json missing"));
    assert!(html.contains("summary.json missing"));
    assert!(html.contains("no Grad-CAM dumps yet"));
    assert_eq!(page_data(&html)["epochs"], serde_json::json!([]));
}

#[test]
fn run_with_gaps_reports_missing_tiles_and_only_links_existing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("gaps");
    spec.epochs = vec![1, 2, 3, 4];
    spec.dumps = vec![2, 4];
    spec.summary = false;
    spec.masks = false;
    let run = fixture::make_run(tmp.path(), &spec);
    std::fs::remove_file(run.join("epochs/0004/tiles/01-gradcam-true.png")).unwrap();
    std::fs::remove_file(run.join("epochs/0002/probes.json")).unwrap();
    std::fs::remove_file(run.join("probes/00.png")).unwrap();
    let page = write_run_report(&run).unwrap();
    let html = read(&page);
    for needle in [
        "epochs/0004/tiles: 1 of 6 tiles missing",
        "epochs/0002/probes.json missing",
        "probe inputs missing: probes/{00}.png",
        "summary.json missing (run still training)",
        "no attention-in-region metrics",
    ] {
        assert!(html.contains(needle), "missing note {needle:?}");
    }
    let d = page_data(&html);
    assert_eq!(d["epochs"], serde_json::json!([1, 2, 3, 4]));
    assert!(d["dumps"]["3"].is_null());
    assert!(d["probes"][0]["input"].is_null());
    assert_links_resolve(&page, &html);
    // Final metrics fall back to the last epoch lines.
    assert!(html.contains("No summary.json yet"));
}

#[test]
fn corrupt_files_are_errors_that_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("bad"));
    let metrics = run.join("metrics.jsonl");
    let good = read(&metrics);
    std::fs::write(&metrics, format!("{{not json}}\n{good}")).unwrap();
    let e = write_run_report(&run).unwrap_err().to_string();
    assert!(e.contains("metrics.jsonl") && e.contains("line 1"), "{e}");
    std::fs::write(&metrics, good).unwrap();

    std::fs::write(run.join("config.toml"), "[train\nlr = ").unwrap();
    let e = write_run_report(&run).unwrap_err();
    assert!(matches!(e, ReportError::Corrupt { .. }), "{e:?}");
    assert!(
        e.to_string().contains("config.toml: corrupt file: line "),
        "{e}"
    );
    std::fs::write(run.join("config.toml"), "").unwrap();

    std::fs::write(
        run.join("epochs/0002/tiles/00-gradcam-overlay.png"),
        b"junk",
    )
    .unwrap();
    let e = write_run_report(&run).unwrap_err().to_string();
    assert!(
        e.contains("00-gradcam-overlay.png") && e.contains("decode"),
        "{e}"
    );
}

#[test]
fn empty_or_absent_folder_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let e = write_run_report(&tmp.path().join("nope")).unwrap_err();
    assert!(matches!(e, ReportError::NotARun { .. }), "{e:?}");
    let e = write_run_report(tmp.path()).unwrap_err();
    assert!(matches!(e, ReportError::NotARun { .. }), "{e:?}");
    assert!(matches!(
        write_compare(&[], tmp.path()),
        Err(ReportError::NoRuns)
    ));
}

#[test]
fn hostile_run_class_and_config_strings_render_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("hostile <b>\"q\"");
    spec.name = HOSTILE.into();
    spec.classes = vec![HOSTILE.into(), "screen".into()];
    spec.arch = HOSTILE.into();
    let run = fixture::make_run(tmp.path(), &spec);
    let page = write_run_report(&run).unwrap();
    let html = read(&page);
    // Only our two script elements (data block and code) exist.
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    assert!(!html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;../"));
    let d = page_data(&html);
    assert_eq!(d["name"], HOSTILE);
    assert_eq!(d["classes"][0], HOSTILE);
    assert_links_resolve(&page, &html);

    let out = tmp.path().join("cmp <i>");
    let other = fixture::make_run(tmp.path(), &Spec::new("plain"));
    let cmp = write_compare(&[run, other], &out).unwrap();
    let html = read(&cmp);
    assert_eq!(html.matches("<script").count(), 2);
    assert!(!html.contains("<b>") && !html.contains("<i>"));
    assert_links_resolve(&cmp, &html);
}

#[test]
fn compare_matches_probes_by_id_links_relatively_and_marks_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Spec::new("shallow");
    a.probe_ids = vec!["images/a.png".into(), "images/b.png".into()];
    let mut b = Spec::new("deep");
    b.arch = "resnet".into();
    b.skill = 0.3;
    b.epochs = vec![1, 2];
    b.dumps = vec![1, 2];
    // Same probes in another order plus one the first run lacks.
    b.probe_ids = vec![
        "images/b.png".into(),
        "images/a.png".into(),
        "images/c.png".into(),
    ];
    let ra = fixture::make_run(&tmp.path().join("runs"), &a);
    let rb = fixture::make_run(&tmp.path().join("runs"), &b);
    let out = tmp.path().join("elsewhere/cmp");
    let page = write_compare(&[ra, rb], &out).unwrap();
    let html = read(&page);
    let d = page_data(&html);
    assert_eq!(d["kind"], "compare");
    assert_eq!(d["epochs"], serde_json::json!([1, 2, 3]));
    let ids: Vec<&str> = d["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["images/a.png", "images/b.png", "images/c.png"]);
    // images/b.png is row 1 in run a and row 0 in run b.
    assert_eq!(d["probes"][1]["cells"][0]["index"], 1);
    assert_eq!(d["probes"][1]["cells"][1]["index"], 0);
    assert!(d["probes"][2]["cells"][0].is_null());
    assert_eq!(
        d["probes"][1]["cells"][1]["input"],
        "../../runs/deep/probes/00.png"
    );
    // The diff in the column headers names the differing keys only.
    let diff = d["runs"][1]["diff"].as_array().unwrap();
    let keys: Vec<&str> = diff.iter().map(|kv| kv[0].as_str().unwrap()).collect();
    assert!(
        keys.contains(&"model.arch") && keys.contains(&"train.epochs"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"train.lr"));
    assert_links_resolve(&page, &html);
    // Config table: rows tagged same/differs, toggle on by default.
    assert!(html.contains("<tr class=\"same\"><th scope=\"row\">train.lr</th>"));
    assert!(html.contains("<tr class=\"differs\"><th scope=\"row\">model.arch</th>"));
    assert!(html.contains("id=\"diff-only\" checked"));
    // Run b is better on test accuracy (higher) and test EER (lower): marked in its column.
    let row = |label: &str| {
        let i = html
            .find(&format!("<th scope=\"row\">{label}</th>"))
            .unwrap();
        let j = i + html[i..].find("</tr>").unwrap();
        html[i..j].to_string()
    };
    let acc = row("test accuracy");
    let cells: Vec<&str> = acc.split("<td").skip(2).collect();
    assert!(
        !cells[0].contains("best") && cells[1].contains("best"),
        "{acc}"
    );
    let eer = row("test EER");
    let cells: Vec<&str> = eer.split("<td").skip(2).collect();
    assert!(
        cells[1].contains("best") && !cells[0].contains("best"),
        "{eer}"
    );
    // Overlaid curves for both runs.
    assert!(
        html.contains("id=\"chart-cmp-loss\"") && html.contains("id=\"chart-cmp-attention-flag\"")
    );
}

#[test]
fn report_bytes_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("det"));
    let p = write_run_report(&run).unwrap();
    let first = (
        read(&p),
        std::fs::read(run.join("report/gifs/00-gradcam.gif")).unwrap(),
        std::fs::read(run.join("plots/loss.png")).unwrap(),
    );
    write_run_report(&run).unwrap();
    let second = (
        read(&p),
        std::fs::read(run.join("report/gifs/00-gradcam.gif")).unwrap(),
        std::fs::read(run.join("plots/loss.png")).unwrap(),
    );
    assert!(
        first == second,
        "report changed between two identical calls"
    );
    // No temp files left behind by the atomic writes.
    for dir in ["report", "plots", "report/gifs"] {
        for e in std::fs::read_dir(run.join(dir)).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!n.starts_with('.'), "leftover {dir}/{n}");
        }
    }
}

#[test]
fn run_page_alone_links_only_the_plots_and_gifs_on_disk_and_encodes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("pageonly"));
    let page = moirelab_report::write_run_page(&run).unwrap();
    let html = read(&page);
    assert!(
        !run.join("report/gifs").exists(),
        "page-only refresh encoded GIFs"
    );
    assert!(
        !run.join("plots").exists(),
        "page-only refresh drew plot files"
    );
    assert!(
        html.contains("id=\"chart-loss\""),
        "inline curves are always drawn"
    );
    assert!(!html.contains("plots/loss.png"));
    assert!(page_data(&html)["gifs"].as_object().unwrap().is_empty());

    write_run_report(&run).unwrap();
    std::fs::remove_file(run.join("report/gifs/01-gradcam.gif")).unwrap();
    std::fs::remove_file(run.join("plots/pad.png")).unwrap();
    let html = read(&moirelab_report::write_run_page(&run).unwrap());
    assert!(html.contains("../plots/loss.png") && !html.contains("../plots/pad.png"));
    let gifs = &page_data(&html)["gifs"];
    assert_eq!(gifs["0"]["gradcam"], "gifs/00-gradcam.gif");
    assert!(gifs["1"].is_null());
    assert!(!run.join("report/gifs/01-gradcam.gif").exists());
    assert_links_resolve(&page, &html);
}
