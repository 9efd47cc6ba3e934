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
    let gallery = write_run_report(&a).unwrap();
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
