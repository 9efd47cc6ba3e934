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
    let page: PathBuf = within(60, "report", move || write_run_report(&r).unwrap());
    let html = read(&page);
    assert!(html.contains("value(s) beyond ±1e100 left out"));
    let out = tmp.path().join("cmp");
    let cmp = within(60, "compare", move || {
        write_compare(&[run, other], &out).unwrap()
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
    let html = read(&write_run_report(&run).unwrap());
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
    let cmp = write_compare(&[run, other], &tmp.path().join("cmp")).unwrap();
    let d = fixture::page_data(&read(&cmp));
    assert_eq!(d["runs"][0]["attack"], "spoof");
    assert_eq!(d["runs"][1]["attack"], "screen");
}
