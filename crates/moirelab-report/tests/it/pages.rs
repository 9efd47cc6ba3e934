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
    let page = write_run_report(&run).unwrap().page;
    assert_eq!(page, run.canonicalize().unwrap().join("report/index.html"));
    let html = read(&page);
    let d = page_data(&html);
    assert_eq!(d["kind"], "run");
    assert_eq!(d["epochs"], serde_json::json!([1, 2, 3]));
    let r = &d["runs"][0];
    assert_eq!(r["methods"], serde_json::json!(["gradcam", "gradcam++"]));
    assert_eq!(r["attack"], "screen");
    assert_eq!(r["best"], 3);
    assert_eq!(d["probes"][1]["id"], "images/000002.png");
    assert_eq!(d["probes"][1]["cells"], serde_json::json!([1]));
    assert_eq!(r["inputs"]["1"], "../probes/01.png");
    // Maps come as 8-bit strips with their value ranges; overlays are composed in the page.
    let strip = &r["dumps"]["2"]["maps"]["gradcam++/true"];
    assert_eq!(strip["url"], "../epochs/0002/maps/gradcampp-true.png");
    assert_eq!(strip["n"], 2);
    assert_eq!(strip["max"], serde_json::json!([3.0, 4.0]));
    assert_eq!(r["dumps"]["2"]["gmax"]["gradcam++"], 4.0);
    assert!(r["dumps"]["2"]["tiles"].as_object().unwrap().is_empty());
    let row = &r["dumps"]["2"]["rows"]["1"];
    assert_eq!(row["t"], "screen");
    assert_eq!(row["p"], "screen");
    assert_eq!(row["ok"], true);
    assert_eq!(row["pa"], 0.69);
    assert_eq!(row["groups"]["flag"], "A");
    assert_eq!(row["lift"]["gradcam/pred"]["flag"], 1.26);
    assert_eq!(d["metrics"]["3"]["val"]["pad"]["threshold"], 0.5);
    // 2 inputs + 3 grids + 3 epochs x 2 methods x 2 strips + 2 x 2 GIFs.
    assert_eq!(assert_links_resolve(&page, &html), 2 + 3 + 12 + 4);
    // Static parts: curves inline, PAD table with threshold, config and meta, colour bar.
    for needle in [
        "id=\"chart-loss\"",
        "id=\"chart-accuracy\"",
        "id=\"chart-pad\"",
        "id=\"verdict\"",
        "id=\"attention\"",
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
        !html.contains("tiles missing") && !html.contains("strips missing"),
        "stem-named tiles counted as missing"
    );
    assert!(
        !html.contains("chart-attention-"),
        "the small multiples replace the crowded attention charts"
    );
}

#[test]
fn runs_dumped_before_map_strips_show_their_colour_tiles() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("legacy");
    spec.legacy = true;
    let run = fixture::make_run(tmp.path(), &spec);
    let page = write_run_report(&run).unwrap().page;
    let html = read(&page);
    let d = page_data(&html);
    let dump = &d["runs"][0]["dumps"]["2"];
    assert!(dump["maps"].as_object().unwrap().is_empty());
    assert_eq!(
        dump["tiles"]["1"]["gradcam"]["pred"],
        "../epochs/0002/tiles/01-gradcam-pred.png"
    );
    assert!(dump["tiles"]["1"]["gradcam"]["overlay"].is_null());
    assert!(!html.contains("tiles missing") && !html.contains("maps.json missing"));
    assert_links_resolve(&page, &html);
}

#[test]
fn verdict_card_reads_lifts_group_accuracies_and_extra_data_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("verdict");
    spec.epochs = vec![1, 2, 3, 4];
    spec.dumps = vec![1, 2, 3, 4];
    spec.extra = vec!["other-flags".into()];
    let run = fixture::make_run(tmp.path(), &spec);
    // Best epoch 2, last epoch 4.
    let s = run.join("summary.json");
    let mut v: serde_json::Value = serde_json::from_str(&read(&s)).unwrap();
    v["best_epoch"] = 2.into();
    std::fs::write(&s, v.to_string()).unwrap();
    let html = read(&write_run_report(&run).unwrap().page);
    let card = &html[html.find("id=\"verdict\"").unwrap()..html.find("id=\"gallery\"").unwrap()];
    assert!(card.contains("<th>other-flags acc</th>"), "{card}");
    assert!(
        card.contains(">best 2<") && card.contains(">last 4<"),
        "{card}"
    );
    // per_class["screen"] lift at epoch 2: mass (0.6 - 0.2 - 0.2) * 3 = 0.6 on the flag.
    assert!(card.contains("<td>0.6</td>"), "{card}");
    // Test accuracy at epoch 2 is 0.8: aligned 0.85, conflicting 0.5 -> a gap.
    assert!(card.contains("shortcut suspected"), "{card}");
    assert!(
        card.contains("<td>0.85</td><td>0.5</td><td>0.52</td>"),
        "{card}"
    );
}

#[test]
fn compare_warns_when_configs_differ_besides_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixture::make_run(tmp.path(), &Spec::new("a"));
    let b = fixture::make_run(tmp.path(), &Spec::new("b"));
    let html = read(
        &write_compare(&[a.clone(), b], &tmp.path().join("c1"))
            .unwrap()
            .page,
    );
    assert!(
        !html.contains("id=\"config-warning\""),
        "only data.root differs"
    );
    let mut cs = Spec::new("c");
    cs.lr = 0.5;
    let c = fixture::make_run(tmp.path(), &cs);
    let html = read(&write_compare(&[a, c], &tmp.path().join("c2")).unwrap().page);
    let i = html.find("id=\"config-warning\"").expect("warning");
    let warn = &html[i..i + html[i..].find("</div>").unwrap()];
    assert!(
        warn.contains("train.lr") && !warn.contains("data.root"),
        "{warn}"
    );
}

#[test]
fn standalone_export_copies_every_image_into_the_page_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("alone"));
    let page = moirelab_report::write_run_report_with(&run, true)
        .unwrap()
        .page;
    let html = read(&page);
    let mut urls = Vec::new();
    fixture::image_urls(&page_data(&html), &mut urls);
    assert!(!urls.is_empty());
    for u in &urls {
        assert!(
            !u.starts_with("..") && !u.contains("/../"),
            "{u} leaves the folder"
        );
    }
    // Move the report folder away from the run: it still resolves every link.
    let moved = tmp.path().join("moved");
    std::fs::rename(run.join("report"), &moved).unwrap();
    std::fs::remove_dir_all(&run).unwrap();
    let html = read(&moved.join("index.html"));
    assert_links_resolve(&moved.join("index.html"), &html);

    let a = fixture::make_run(tmp.path(), &Spec::new("x"));
    let b = fixture::make_run(tmp.path(), &Spec::new("y"));
    let out = tmp.path().join("cmp");
    let cmp = moirelab_report::write_compare_with(&[a.clone(), b], &out, true)
        .unwrap()
        .page;
    let html = read(&cmp);
    std::fs::remove_dir_all(&a).unwrap();
    let n = assert_links_resolve(&cmp, &html);
    assert!(n > 0 && html.contains("files/0/") && html.contains("files/1/"));
}

/// A standalone compare into a folder an earlier one filled keeps none of the earlier
/// page's copied files (they used to stay, and ship with the folder), and nothing of the
/// user's beside `files/` is deleted.
#[test]
fn standalone_export_into_an_earlier_one_drops_its_stale_files() {
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<_> = ["x", "y", "z"]
        .iter()
        .map(|n| fixture::make_run(tmp.path(), &Spec::new(n)))
        .collect();
    let out = tmp.path().join("cmp");
    moirelab_report::write_compare_with(&runs, &out, true).unwrap();
    assert!(out.join("files/2").is_dir());
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    // What an export killed while copying left (a pid above the kernel's limit never runs).
    #[cfg(target_os = "linux")]
    std::fs::create_dir_all(out.join(".files.partial-4194400/1")).unwrap();
    let cmp = moirelab_report::write_compare_with(&runs[..2], &out, true)
        .unwrap()
        .page;
    assert!(!out.join("files/2").exists());
    assert_links_resolve(&cmp, &read(&cmp));
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["files", "index.html", "notes.txt"]);
}

/// A `files/` folder in the page folder that no export wrote is the user's: a standalone
/// export refuses, naming it, and leaves it as it was (it used to replace it wholesale).
#[test]
fn standalone_export_never_replaces_a_files_folder_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<_> = ["x", "y"]
        .iter()
        .map(|n| fixture::make_run(tmp.path(), &Spec::new(n)))
        .collect();
    let out = tmp.path().join("cmp");
    std::fs::create_dir_all(out.join("files")).unwrap();
    std::fs::write(out.join("files/mine.txt"), "mine").unwrap();
    let run_files = runs[0].join("report/files");
    std::fs::create_dir_all(&run_files).unwrap();
    std::fs::write(run_files.join("mine.txt"), "mine").unwrap();
    for (err, files) in [
        (
            moirelab_report::write_compare_with(&runs, &out, true).unwrap_err(),
            &out.join("files"),
        ),
        (
            moirelab_report::write_run_report_with(&runs[0], true).unwrap_err(),
            &run_files,
        ),
    ] {
        assert!(matches!(err, ReportError::ForeignFiles { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("files: not written by a moirelab standalone export"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(
            std::fs::read_to_string(files.join("mine.txt")).unwrap(),
            "mine"
        );
        assert_eq!(std::fs::read_dir(files).unwrap().count(), 1);
    }
    assert!(!out.join("index.html").exists());
    // An export's own folder (it carries the marker) is replaced as before.
    std::fs::remove_dir_all(out.join("files")).unwrap();
    moirelab_report::write_compare_with(&runs, &out, true).unwrap();
    assert!(out.join("files/.moirelab-export").is_file());
    let cmp = moirelab_report::write_compare_with(&runs[..1], &out, true)
        .unwrap()
        .page;
    assert!(!out.join("files/1").exists());
    assert_links_resolve(&cmp, &read(&cmp));
}

#[test]
fn fresh_run_without_metrics_or_dumps_still_gets_a_page_listing_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("fresh");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), "[train]\nepochs = 3\n").unwrap();
    let page = write_run_report(&run).unwrap().page;
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
    std::fs::remove_file(run.join("epochs/0004/tiles/01-gradcam-overlay.png")).unwrap();
    std::fs::remove_file(run.join("epochs/0004/maps/gradcam-true.png")).unwrap();
    std::fs::remove_file(run.join("epochs/0002/probes.json")).unwrap();
    std::fs::remove_file(run.join("probes/00.png")).unwrap();
    let page = write_run_report(&run).unwrap().page;
    let html = read(&page);
    for needle in [
        "epochs/0004: map strips missing: gradcam/true",
        "epochs/0002/probes.json missing",
        "probe inputs missing: probes/{00}.png",
        "summary.json missing (run stopped before it finished)",
        "no attention-in-region metrics",
        // meta.json says running, but no process holds the run's lock: it was killed.
        "status: stopped: no process is training it",
    ] {
        assert!(html.contains(needle), "missing note {needle:?}");
    }
    // While a training holds its run folder's lock (here: this test), it is running.
    #[cfg(target_os = "linux")]
    {
        let training = moirelab_core::dirlock::exclusive_guard(&run).unwrap();
        let html = read(&write_run_report(&run).unwrap().page);
        drop(training);
        assert!(html.contains("status: running"));
        assert!(html.contains("summary.json missing (run still training)"));
    }
    let d = page_data(&html);
    assert_eq!(d["epochs"], serde_json::json!([1, 2, 3, 4]));
    assert!(d["runs"][0]["dumps"]["3"].is_null());
    assert!(d["runs"][0]["inputs"]["0"].is_null());
    assert!(d["runs"][0]["dumps"]["4"]["maps"]["gradcam/true"].is_null());
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
        run.join("epochs/0002/maps.json"),
        "{\"epoch\": 2, \"maps\": 3}",
    )
    .unwrap();
    let e = write_run_report(&run).unwrap_err().to_string();
    assert!(e.contains("maps.json"), "{e}");
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
    let page = write_run_report(&run).unwrap().page;
    let html = read(&page);
    // Only our two script elements (data block and code) exist.
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    assert!(!html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;../"));
    let d = page_data(&html);
    assert_eq!(d["runs"][0]["name"], HOSTILE);
    assert_eq!(d["runs"][0]["classes"][0], HOSTILE);
    assert_links_resolve(&page, &html);

    let out = tmp.path().join("cmp <i>");
    let other = fixture::make_run(tmp.path(), &Spec::new("plain"));
    let cmp = write_compare(&[run, other], &out).unwrap().page;
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
    let page = write_compare(&[ra, rb], &out).unwrap().page;
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
    assert_eq!(d["probes"][1]["cells"], serde_json::json!([1, 0]));
    assert!(d["probes"][2]["cells"][0].is_null());
    assert_eq!(d["runs"][1]["inputs"]["0"], "../../runs/deep/probes/00.png");
    assert_eq!(d["runs"][0]["best"], 3);
    assert_eq!(d["runs"][1]["last"], 2);
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
    // Overlaid curves for both runs; attention as small multiples, one row per run.
    assert!(html.contains("id=\"chart-cmp-loss\"") && !html.contains("chart-cmp-attention"));
    assert_eq!(html.matches("<figure class=\"multiples\">").count(), 2);
}

#[test]
fn report_bytes_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("det"));
    let p = write_run_report(&run).unwrap().page;
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
    let page = moirelab_report::write_run_page(&run).unwrap().page;
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
    let html = read(&moirelab_report::write_run_page(&run).unwrap().page);
    assert!(html.contains("../plots/loss.png") && !html.contains("../plots/pad.png"));
    let gifs = &page_data(&html)["gifs"];
    assert_eq!(gifs["0"]["gradcam"], "gifs/00-gradcam.gif");
    assert!(gifs["1"].is_null());
    assert!(!run.join("report/gifs/01-gradcam.gif").exists());
    assert_links_resolve(&page, &html);
}
