//! Run folders a person or a crash damaged: absurd numbers, broken images, files that
//! contradict each other. Pages are still written and say what they left out.

use crate::fixture::{self, Spec};
use moirelab_core::run::{MetricsLine, METRICS_JSONL};
use moirelab_report::{write_compare, write_run_report};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// `f` on its own thread; a hang fails the test after `secs` instead of stalling the suite.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish within {secs} s"))
}

/// Rewrite `metrics.jsonl` of `run` with `edit` applied to each epoch line.
fn edit_epoch_lines(run: &Path, edit: impl Fn(&mut moirelab_core::run::EpochMetrics)) {
    let path = run.join(METRICS_JSONL);
    let lines: Vec<MetricsLine> = moirelab_core::fsio::read_jsonl(&path).unwrap();
    let mut out = String::new();
    for mut l in lines {
        if let MetricsLine::Epoch(e) = &mut l {
            edit(e);
        }
        out.push_str(&serde_json::to_string(&l).unwrap());
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
}

#[test]
fn values_near_f64_max_do_not_hang_report_or_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("huge"));
    let other = fixture::make_run(tmp.path(), &Spec::new("other"));
    edit_epoch_lines(&run, |e| match (e.epoch, e.split.as_str()) {
        (1, "train") => e.loss = 1.7e308,
        (2, "train") => e.loss = -1.7e308,
        (2, "val") => e.accuracy = 1e308,
        _ => {}
    });
    let r = run.clone();
    let page: PathBuf = within(60, "report", move || write_run_report(&r).unwrap().page);
    let html = read(&page);
    assert!(html.contains("value(s) beyond ±1e100 left out"));
    let out = tmp.path().join("cmp");
    let cmp = within(60, "compare", move || {
        write_compare(&[run, other], &out).unwrap().page
    });
    assert!(read(&cmp).contains("value(s) beyond ±1e100 left out"));
}

#[test]
fn the_recorded_attack_class_drives_card_gallery_and_p_attack_even_when_it_is_first() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("spoof");
    spec.classes = vec!["spoof".into(), "live".into()];
    spec.attack = Some("spoof".into());
    let run = fixture::make_run(tmp.path(), &spec);
    let html = read(&write_run_report(&run).unwrap().page);
    let d = fixture::page_data(&html);
    assert_eq!(d["runs"][0]["attack"], "spoof");
    // P(attack) is P(spoof), the first output (0.3 in the fixture), not P(live).
    let pa = d["runs"][0]["dumps"]["1"]["rows"]["0"]["pa"]
        .as_f64()
        .unwrap();
    assert!((pa - 0.3).abs() < 1e-9, "{pa}");
    // The card reads the spoof maps' lifts (the fixture's attack-class maps: flag 0.3, face
    // 0.6, moiré 1.8 at epoch 3), not live's (flag 1.65).
    assert!(
        html.contains("spoof maps: face lift 0.6 vs moiré 1.8;"),
        "card"
    );
    assert!(!html.contains("live maps:"));
    let other = fixture::make_run(tmp.path(), &Spec::new("screen"));
    let cmp = write_compare(&[run, other], &tmp.path().join("cmp"))
        .unwrap()
        .page;
    let d = fixture::page_data(&read(&cmp));
    assert_eq!(d["runs"][0]["attack"], "spoof");
    assert_eq!(d["runs"][1]["attack"], "screen");
}

/// The notes list of a page ("what is missing"), as text.
fn notes(html: &str) -> &str {
    let a = html.find("class=\"missing-list\"").expect("notes list");
    &html[a..a + html[a..].find("</details>").expect("end of notes")]
}

#[test]
fn a_map_strip_that_does_not_read_is_left_out_with_a_warning_and_the_page_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("junk"));
    let other = fixture::make_run(tmp.path(), &Spec::new("other"));
    let strip = run.join("epochs/0002/maps/gradcam-pred.png");
    std::fs::write(&strip, b"junk").unwrap();
    let w = write_run_report(&run).unwrap();
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    assert!(
        w.warnings[0].starts_with(&format!("{}: map strip does not read", strip.display())),
        "{}",
        w.warnings[0]
    );
    let html = read(&w.page);
    assert!(notes(&html).contains("epochs/0002/maps/gradcam-pred.png: map strip does not read"));
    let d = fixture::page_data(&html);
    assert!(d["runs"][0]["dumps"]["2"]["maps"]["gradcam/pred"].is_null());
    assert!(d["runs"][0]["dumps"]["1"]["maps"]["gradcam/pred"].is_object());
    // The GIFs are built from the strips that read.
    assert_eq!(d["gifs"].as_object().unwrap().len(), 2, "{}", d["gifs"]);
    // Compare lists it too.
    let cmp = write_compare(&[run, other], &tmp.path().join("cmp")).unwrap();
    assert_eq!(cmp.warnings.len(), 1);
    assert!(notes(&read(&cmp.page)).contains("gradcam-pred.png: map strip does not read"));
}

#[test]
fn a_strip_whose_pixels_do_not_decode_costs_its_gifs_not_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("torn"));
    // The header (and so the size) reads; the image data is cut off.
    let strip = run.join("epochs/0003/maps/gradcam-pred.png");
    let bytes = std::fs::read(&strip).unwrap();
    std::fs::write(&strip, &bytes[..bytes.len() / 2]).unwrap();
    let w = write_run_report(&run).unwrap();
    assert_eq!(w.warnings.len(), 2, "one per probe's GIF: {:?}", w.warnings);
    for (i, line) in w.warnings.iter().enumerate() {
        assert!(
            line.starts_with(&format!("{}: ", strip.display())),
            "{line}"
        );
        assert!(
            line.ends_with(&format!("0{i}-gradcam.gif left out")),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
    let html = read(&w.page);
    assert!(notes(&html).contains("epochs/0003/maps/gradcam-pred.png: "));
    assert!(notes(&html).contains("report/gifs/00-gradcam.gif left out"));
    let d = fixture::page_data(&html);
    assert!(d["gifs"].as_object().unwrap().is_empty(), "{}", d["gifs"]);
}

#[test]
fn a_strip_of_the_wrong_size_is_listed_as_broken_not_stretched() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("small"));
    let other = fixture::make_run(tmp.path(), &Spec::new("other"));
    // One 24x24 map where maps.json says two.
    let strip = run.join("epochs/0001/maps/gradcam-true.png");
    std::fs::write(&strip, fixture::gray_strip(24, 1, 1)).unwrap();
    let cmp = write_compare(&[run.clone(), other], &tmp.path().join("cmp")).unwrap();
    let want = "map strip is 24x24, maps.json says 2 map(s) of 24x24 (24x48)";
    assert_eq!(cmp.warnings.len(), 1, "{:?}", cmp.warnings);
    assert!(cmp.warnings[0].contains(want), "{}", cmp.warnings[0]);
    let html = read(&cmp.page);
    assert!(notes(&html).contains(&format!("epochs/0001/maps/gradcam-true.png: {want}")));
    let d = fixture::page_data(&html);
    assert!(d["runs"][0]["dumps"]["1"]["maps"]["gradcam/true"].is_null());
    assert!(d["runs"][1]["dumps"]["1"]["maps"]["gradcam/true"].is_object());
    let w = write_run_report(&run).unwrap();
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
}

#[test]
fn a_probe_input_of_another_shape_is_named_not_blamed_on_the_strip() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("tall"));
    let input = run.join("probes/00.png");
    std::fs::write(&input, fixture::png(1, 24, 0)).unwrap();
    let w = write_run_report(&run).unwrap();
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    assert_eq!(
        w.warnings[0],
        format!(
            "{}: probe input is 1x24, the maps over it are 24x24 (another shape); not shown",
            input.display()
        )
    );
    let html = read(&w.page);
    assert!(notes(&html).contains("probes/00.png: probe input is 1x24"));
    let d = fixture::page_data(&html);
    assert!(d["runs"][0]["inputs"]["0"].is_null());
    assert!(d["runs"][0]["inputs"]["1"].is_string());
    // Probe 0's GIF falls back on its overlay tiles; probe 1's uses the strips.
    assert_eq!(d["gifs"].as_object().unwrap().len(), 2, "{}", d["gifs"]);
}

#[test]
fn the_threshold_caption_says_how_the_run_fixed_it_and_claims_nothing_for_old_runs() {
    use moirelab_core::run::{RunSummary, ThresholdSource, SUMMARY_JSON};
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("tau"));
    let path = run.join(SUMMARY_JSON);
    let base: RunSummary = moirelab_core::fsio::read_json(&path).unwrap();
    let caption = |src: Option<ThresholdSource>| {
        let s = RunSummary {
            threshold_source: src,
            ..base.clone()
        };
        moirelab_core::fsio::write_json_atomic(&path, &s).unwrap();
        let html = read(&write_run_report(&run).unwrap().page);
        let a = html.find("decision threshold on the attack score").unwrap();
        html[a..a + html[a..].find("·").unwrap()].to_string()
    };
    let c = caption(Some(ThresholdSource::ValEer));
    assert!(
        c.contains("(fixed on val at its EER point, applied to test)"),
        "{c}"
    );
    let c = caption(Some(ThresholdSource::ValBpcer { max_bpcer: 0.1 }));
    assert!(
        c.contains("(fixed on val at BPCER &lt;= 0.1 (train.threshold-bpcer), applied to test)"),
        "{c}"
    );
    let c = caption(Some(ThresholdSource::Default));
    assert!(
        c.contains("not fixed on val") && c.contains("the default 0.5"),
        "{c}"
    );
    assert!(!c.contains("EER"), "{c}");
    let c = caption(None);
    assert!(c.contains("0.5 (applied to test)"), "{c}");
}

#[test]
fn a_best_epoch_the_run_does_not_have_is_flagged_as_inconsistent() {
    use moirelab_core::run::{RunSummary, SUMMARY_JSON};
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("badbest"));
    let path = run.join(SUMMARY_JSON);
    let mut s: RunSummary = moirelab_core::fsio::read_json(&path).unwrap();
    s.best_epoch = 4_000_000_000;
    moirelab_core::fsio::write_json_atomic(&path, &s).unwrap();
    let w = write_run_report(&run).unwrap();
    assert_eq!(
        w.warnings,
        [format!(
            "{}: best_epoch 4000000000 is not an epoch of this run (it has epochs 1–3): \
             inconsistent, no best epoch is marked",
            path.display()
        )]
    );
    let html = read(&w.page);
    assert!(html.contains(
        "inconsistent: summary.json names epoch 4000000000, which this run does not have"
    ));
    assert!(
        !html.contains("best 4000000000"),
        "no row reads as if it existed"
    );
    let d = fixture::page_data(&html);
    assert!(d["runs"][0]["best"].is_null());
    assert_eq!(d["runs"][0]["last"], 3);
}

#[test]
fn a_finished_run_without_summary_says_the_summary_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("nosummary"));
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let w = write_run_report(&run).unwrap();
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    assert!(
        w.warnings[0].ends_with("summary.json: missing, although meta.json says the run finished: final metrics come from the last epoch lines"),
        "{}",
        w.warnings[0]
    );
    let html = read(&w.page);
    assert!(
        !html.contains("still training"),
        "a finished run is not training"
    );
    assert!(html.contains("summary.json is missing, although meta.json says the run finished"));
}

#[test]
fn without_summary_the_best_epoch_follows_the_runs_monitor() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("monitor");
    spec.summary = false;
    let run = fixture::make_run(tmp.path(), &spec);
    // Val balanced accuracy is highest at epoch 3; make val loss lowest at epoch 1.
    edit_epoch_lines(&run, |e| {
        if e.split == "val" {
            e.loss = f64::from(e.epoch);
        }
    });
    let best = |run: &Path| {
        let d = fixture::page_data(&read(&write_run_report(run).unwrap().page));
        d["runs"][0]["best"].clone()
    };
    assert_eq!(best(&run), 3, "default monitor: val balanced accuracy");
    let cfg = run.join("config.toml");
    let text = read(&cfg).replace("[train]\n", "[train]\nmonitor = \"val.loss\"\n");
    std::fs::write(&cfg, text).unwrap();
    assert_eq!(best(&run), 1, "train.monitor = val.loss");
}

#[test]
fn duplicate_and_out_of_order_metrics_lines_keep_the_last_in_epoch_order_with_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("dups"));
    let path = run.join(METRICS_JSONL);
    let mut again = fixture::epoch_metrics(&Spec::new("dups"), 2, "val");
    again.accuracy = 0.123;
    moirelab_core::fsio::append_jsonl(&path, &MetricsLine::Epoch(again)).unwrap();
    let w = write_run_report(&run).unwrap();
    let p = path.display().to_string();
    assert_eq!(
        w.warnings,
        [
            format!("{p}: duplicate lines (epoch 2 val): the last of each is used"),
            format!(
                "{p}: lines out of epoch order (epoch 2 val after epoch 3): read in epoch order"
            ),
        ]
    );
    let html = read(&w.page);
    let d = fixture::page_data(&html);
    assert_eq!(d["metrics"]["2"]["val"]["accuracy"], 0.123);
    assert!(notes(&html).contains("metrics.jsonl: duplicate lines (epoch 2 val)"));
}
