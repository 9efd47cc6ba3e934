//! Hostile manifests: a torn or garbage last line, one image listed with two labels or in
//! two splits, an attack class that is not a class.

use crate::fixtures::{cfg, meta, moirelab_set, write_manifest};
use moirelab_data::{Dataset, EvalSpec, ProblemKind, Severity};
use std::path::Path;

fn eval_spec(split: &str) -> EvalSpec {
    EvalSpec {
        split: split.into(),
        classes: vec!["direct".into(), "screen".into()],
        attack_class: Some("screen".into()),
    }
}

/// What `data check` says is wrong: its error, or the errors its report lists.
fn check_errors(r: Result<moirelab_data::CheckReport, moirelab_data::DataError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(r) => r.error_listing(usize::MAX),
    }
}

/// Every way a data set is opened (train, eval, `data check`, `data check --eval`) fails,
/// or reports errors, in one line containing each of `want`.
fn every_open_fails(c: &moirelab_data::DataConfig, want: &[&str]) {
    let errors = [
        Dataset::open(c, Path::new("/")).unwrap_err().to_string(),
        Dataset::open_eval(c, Path::new("/"), &eval_spec("test"))
            .unwrap_err()
            .to_string(),
        check_errors(moirelab_data::check(c, Path::new("/"))),
        check_errors(moirelab_data::check_eval(c, Path::new("/"), "test")),
    ];
    for e in errors {
        assert!(want.iter().all(|w| e.contains(w)), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

/// A manifest is written whole, so a last line cut short (or replaced by garbage) is damage,
/// not a torn append: the record it held must not silently go missing.
#[test]
fn a_torn_or_garbage_last_manifest_line_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let recs = moirelab_set(dir.path(), 2, false);
    let path = dir.path().join("manifest.jsonl");
    let whole = std::fs::read_to_string(&path).unwrap();
    let n = recs.len();
    let last = serde_json::to_string(&recs[n - 1]).unwrap();
    let head = &whole[..whole.len() - last.len() - 1];
    let c = cfg(dir.path());
    let line = format!("manifest.jsonl: line {n}");
    for tail in [&last[..last.len() / 2], "\u{1}\u{2}garbage"] {
        std::fs::write(&path, format!("{head}{tail}")).unwrap();
        every_open_fails(&c, &[&line]);
    }
    // The same record complete but without a final newline is read.
    std::fs::write(&path, format!("{head}{last}")).unwrap();
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.len(), n);
}

/// A user's JSONL manifest (`data.manifest`) is read just as strictly.
#[test]
fn a_torn_last_line_of_a_user_jsonl_manifest_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 2, false);
    std::fs::remove_file(dir.path().join("dataset.json")).unwrap();
    let whole = std::fs::read_to_string(dir.path().join("manifest.jsonl")).unwrap();
    let cut = whole.trim_end().len() - 10;
    std::fs::write(dir.path().join("mine.jsonl"), &whole[..cut]).unwrap();
    let mut c = cfg(dir.path());
    c.manifest = Some("mine.jsonl".into());
    every_open_fails(&c, &["mine.jsonl: line 8"]);
}

/// An image cannot be both genuine and an attack: the same path with two labels is an error
/// naming both (not a "used once" warning that trains on the first label), in one split or
/// in two, and under `skip` neither listing is used.
#[test]
fn an_image_listed_with_two_labels_is_an_error_naming_both_and_neither_is_used() {
    for second_split in ["train", "test"] {
        let dir = tempfile::tempdir().unwrap();
        let mut recs = moirelab_set(dir.path(), 2, false);
        let first = recs[0].clone();
        assert_eq!(
            (first.split.as_str(), first.label.as_str()),
            ("train", "direct")
        );
        let mut again = first.clone();
        again.label = "screen".into();
        again.split = second_split.into();
        recs.push(again);
        write_manifest(dir.path(), &meta(&[]), &recs);
        let mut c = cfg(dir.path());
        c.val_fraction = 0.0;
        let want = format!("{}: listed again in ", first.path);
        let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
        assert!(
            e.contains(&want) && e.contains("with label 'screen' (first as 'direct')"),
            "{e}"
        );
        let r = moirelab_data::check(&c, Path::new("/")).unwrap();
        let found: Vec<_> = r.of_kind(ProblemKind::ConflictingLabels).collect();
        assert_eq!(found.len(), 1, "{r}");
        assert_eq!(found[0].severity(), Severity::Error);
        assert_eq!(r.of_kind(ProblemKind::DuplicatePathWithinSplit).count(), 0);
        c.on_bad_image = moirelab_data::OnBad::Skip;
        let ds = Dataset::open(&c, Path::new("/")).unwrap();
        assert_eq!(ds.len(), recs.len() - 2);
        assert!((0..ds.len()).all(|i| ds.record(i).path != first.path));
    }
}

/// Training and `data check` refuse a set that lists a test image in train too; evaluating
/// its test split must not silently drop that image either.
#[test]
fn evaluating_a_split_refuses_an_image_the_set_also_lists_in_train() {
    let dir = tempfile::tempdir().unwrap();
    let mut recs = moirelab_set(dir.path(), 2, false);
    let tested = recs.iter().find(|r| r.split == "test").unwrap().clone();
    let mut trained = tested.clone();
    trained.split = "train".into();
    recs.push(trained);
    write_manifest(dir.path(), &meta(&[]), &recs);
    let mut c = cfg(dir.path());
    let want = format!(
        "{}: listed again in train and in test: test metrics would be measured on a training image",
        tested.path
    );
    every_open_fails(&c, &[&want]);
    // Skipped, it is counted as such; the other test images are evaluated.
    c.on_bad_image = moirelab_data::OnBad::Skip;
    let ds = Dataset::open_eval(&c, Path::new("/"), &eval_spec("test")).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.report().skipped, [tested.path.as_str()]);
    assert_eq!(
        ds.report()
            .of_kind(ProblemKind::DuplicatePathAcrossSplits)
            .count(),
        1
    );
    // Evaluating train: the train listing is the one used, as training would.
    c.val_fraction = 0.0;
    let ds = Dataset::open_eval(&c, Path::new("/"), &eval_spec("train")).unwrap();
    assert_eq!(ds.len(), 5);
}

/// `dataset.json`'s attack class is checked like `[data] attack-class`: a value that is not
/// a class is an error naming the file and the classes, not a quiet fall-back to the last
/// class. `[data] attack-class` (or a model's) decides instead when set.
#[test]
fn an_attack_class_in_dataset_json_that_is_not_a_class_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let recs = moirelab_set(dir.path(), 2, false);
    let mut m = meta(&[]);
    m.attack_class = Some("nope".into());
    write_manifest(dir.path(), &m, &recs);
    let mut c = cfg(dir.path());
    let want = "dataset.json: attack-class 'nope' is not one of classes [direct, screen]";
    for e in [
        Dataset::open(&c, Path::new("/")).unwrap_err().to_string(),
        check_errors(moirelab_data::check(&c, Path::new("/"))),
        check_errors(moirelab_data::check_eval(&c, Path::new("/"), "test")),
        moirelab_data::peek_classes(&c, Path::new("/"))
            .unwrap_err()
            .to_string(),
    ] {
        assert!(e.contains(want), "{e}");
    }
    let ds = Dataset::open_eval(&c, Path::new("/"), &eval_spec("test")).unwrap();
    assert_eq!(ds.attack_index(), 1, "the model's attack class");
    c.attack_class = Some("direct".into());
    assert_eq!(Dataset::open(&c, Path::new("/")).unwrap().attack_index(), 0);
}
