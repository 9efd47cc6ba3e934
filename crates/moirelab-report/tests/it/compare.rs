//! The compare page's refusals and warnings: a run given twice, an output folder inside a
//! run folder, runs a newer moirelab wrote.

use crate::fixture::{self, Spec};
use moirelab_report::{write_compare, write_run_report, ReportError};

/// One run twice (same path, another spelling, a link to it) would be two identical columns:
/// refused, naming both arguments.
#[test]
fn compare_refuses_a_run_given_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixture::make_run(tmp.path(), &Spec::new("a"));
    let b = fixture::make_run(tmp.path(), &Spec::new("b"));
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let out = tmp.path().join("cmp");
    for (runs, needle) in [
        (
            vec![a.clone(), a.clone()],
            format!("{}: given twice", a.display()),
        ),
        (
            vec![a.clone(), b.clone(), link.clone()],
            format!(
                "{} and {}: the same run folder",
                a.display(),
                link.display()
            ),
        ),
        (
            vec![b.join("."), a.clone(), b.clone()],
            "the same run folder".to_string(),
        ),
    ] {
        let err = write_compare(&runs, &out).unwrap_err();
        assert!(matches!(err, ReportError::SameRun { .. }), "{err}");
        assert!(err.to_string().contains(&needle), "{err}");
    }
    assert!(!out.exists());
}

/// A compare page in a run folder would overwrite its gallery (`report/index.html`) or mix
/// with its files: refused, naming the folder and the run, before anything is written.
#[test]
fn compare_refuses_an_output_folder_inside_a_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixture::make_run(tmp.path(), &Spec::new("a"));
    let b = fixture::make_run(tmp.path(), &Spec::new("b"));
    let gallery = write_run_report(&a).unwrap().page;
    let before = std::fs::read(&gallery).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let other = fixture::make_run(&tmp.path().join("o"), &Spec::new("c"));
    for (out, needle) in [
        (a.join("report"), "is inside the run folder"),
        (a.clone(), "is a run folder"),
        (link.join("report"), "is inside the run folder"),
        (a.join("new/../epochs/0001"), "is inside the run folder"),
        (other.join("cmp"), "is inside the run folder"),
    ] {
        let err = write_compare(&[a.clone(), b.clone()], &out).unwrap_err();
        assert!(matches!(err, ReportError::OutInRun { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}: {needle}", out.display())),
            "{msg}"
        );
    }
    assert_eq!(std::fs::read(&gallery).unwrap(), before);
    assert!(!a.join("new").exists() && !other.join("cmp").exists());
    assert!(!a.join("index.html").exists());
    // Beside the runs is fine.
    write_compare(&[a, b], &tmp.path().join("cmp")).unwrap();
}

/// A run folder whose meta.json a newer moirelab wrote (a higher format_version, fields this
/// build does not know) is refused by the run page and the compare page, naming the run.
#[test]
fn a_run_of_a_newer_format_is_refused_naming_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixture::make_run(tmp.path(), &Spec::new("a"));
    let b = fixture::make_run(tmp.path(), &Spec::new("b"));
    let path = b.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(meta["format_version"], 1);
    meta["format_version"] = 7.into();
    meta["status"] = serde_json::json!({"phase": "done"});
    std::fs::write(&path, meta.to_string()).unwrap();
    let want = format!(
        "{}: written by a newer moirelab (run format 7, this build reads up to 1)",
        b.display()
    );
    assert_eq!(write_run_report(&b).unwrap_err().to_string(), want);
    let err = write_compare(&[a, b], &tmp.path().join("cmp")).unwrap_err();
    assert_eq!(err.to_string(), want);
    assert!(!tmp.path().join("cmp/index.html").exists());
}

/// The probe rows of a compare page that flag another picture, and its warning box.
fn flagged(page: &std::path::Path) -> (Vec<String>, Option<String>) {
    let html = std::fs::read_to_string(page).unwrap();
    let d = fixture::page_data(&html);
    let ids = d["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["differs"] == true)
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let warn = html.find("id=\"probe-warning\"").map(|i| {
        let j = i + html[i..].find("</div>").unwrap();
        html[i..j].to_string()
    });
    (ids, warn)
}

/// Probes are matched by path: runs on data sets holding other pictures under the same paths
/// get those rows flagged and a warning naming each probe, whether the dumps recorded the
/// images' hashes or (older runs) only their probe inputs can be compared; the same pictures
/// under other data roots, in any row order, are like for like.
#[test]
fn compare_says_when_a_probe_is_not_the_same_image_in_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let a = fixture::make_run(root, &Spec::new("a"));
    let mut same = Spec::new("same");
    same.probe_ids.reverse();
    let same = fixture::make_run(root, &same);
    let page = write_compare(&[a.clone(), same], &root.join("c0"))
        .unwrap()
        .page;
    assert_eq!(flagged(&page), (vec![], None));

    for hashes in [true, false] {
        let mut s = Spec::new(if hashes { "other" } else { "old" });
        s.pictures = 1;
        s.hashes = hashes;
        s.probe_ids.push("images/only-here.png".into());
        let b = fixture::make_run(root, &s);
        let a_old = if hashes {
            a.clone()
        } else {
            let mut o = Spec::new("a-old");
            o.hashes = false;
            fixture::make_run(root, &o)
        };
        let out = root.join(format!("c-{hashes}"));
        let page = write_compare(&[a_old, b], &out).unwrap().page;
        let (ids, warn) = flagged(&page);
        assert_eq!(ids, ["images/000001.png", "images/000002.png"], "{hashes}");
        let warn = warn.expect("warning");
        let name = &s.name;
        let first = if hashes { "a" } else { "a-old" };
        assert!(
            warn.contains(&format!(
                "probe images/000001.png differs between runs: not the same image in {name} as \
                 in {first}"
            )) && warn.contains("2 of 3 probes")
                && warn.contains(&format!("<code>data/{name}</code>")),
            "{warn}"
        );
    }

    // One data folder whose pictures changed between two runs.
    let mut later = Spec::new("later");
    later.pictures = 2;
    let later = fixture::make_run(root, &later);
    let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
    std::fs::write(later.join("config.toml"), cfg).unwrap();
    let page = write_compare(&[a, later], &root.join("c3")).unwrap().page;
    let warn = flagged(&page).1.expect("warning");
    assert!(
        warn.contains("the same data folder, <code>data/a</code>, whose pictures changed"),
        "{warn}"
    );
}
