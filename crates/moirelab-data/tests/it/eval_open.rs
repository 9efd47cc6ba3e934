//! Opening data sets to evaluate a trained model on: split-only and split-less folders,
//! manifest files, the model's class order, and the errors.

use crate::fixtures::{cfg, img, save};
use moirelab_data::{Dataset, EvalSpec};
use std::path::Path;

fn spec(split: &str, classes: &[&str], attack: &str) -> EvalSpec {
    EvalSpec {
        split: split.into(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        attack_class: Some(attack.into()),
    }
}

/// `n` images per class under `<root>/<prefix><class>/`.
fn folder(root: &Path, prefix: &str, classes: &[&str], n: u32) {
    let mut id = 0;
    for class in classes {
        for _ in 0..n {
            save(root, &format!("{prefix}{class}/{id}.png"), &img(32, 32, id));
            id += 1;
        }
    }
}

#[test]
fn a_folder_with_only_a_test_split_opens_for_eval_in_the_models_class_order() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "test/", &["direct", "screen"], 3);
    let c = cfg(dir.path());
    // Training needs training images ...
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(e.contains("no usable training images"), "{e}");
    // ... evaluation does not. The model's class order wins over the sorted folder names.
    let ds = Dataset::open_eval(
        &c,
        Path::new("/"),
        &spec("test", &["screen", "direct"], "screen"),
    )
    .unwrap();
    assert_eq!(ds.classes(), ["screen", "direct"]);
    assert_eq!(ds.attack_index(), 0);
    assert_eq!(ds.split("test").len(), 6);
    assert!(ds.split("train").is_empty());
    for &i in ds.split("test") {
        let class = ds.record(i).path.split('/').nth(1).unwrap().to_string();
        assert_eq!(ds.classes()[ds.label(i)], class);
    }
    assert!(!ds.report().has_errors(), "{}", ds.report());
}

#[test]
fn a_folder_without_splits_is_evaluated_whole() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "", &["direct", "screen"], 5);
    let c = cfg(dir.path());
    let ds = Dataset::open_eval(
        &c,
        Path::new("/"),
        &spec("test", &["direct", "screen"], "screen"),
    )
    .unwrap();
    assert_eq!(ds.split("test").len(), 10);
    assert_eq!(ds.len(), 10);
    // Also when the split asked for is train: no val is carved out of it.
    let ds = Dataset::open_eval(
        &c,
        Path::new("/"),
        &spec("train", &["direct", "screen"], "screen"),
    )
    .unwrap();
    assert_eq!(ds.split("train").len(), 10);
    // For training the same folder is all train (val carved from it), as before.
    let train = Dataset::open(&c, Path::new("/")).unwrap();
    assert!(train.split("test").is_empty());
    assert_eq!(train.split("train").len() + train.split("val").len(), 10);
}

#[test]
fn a_manifest_file_without_a_split_column_is_evaluated_whole() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "imgs/", &["direct", "screen"], 2);
    let rows = "path,label\nimgs/direct/0.png,direct\nimgs/direct/1.png,direct\n\
                imgs/screen/2.png,screen\n";
    std::fs::write(dir.path().join("labels.csv"), rows).unwrap();
    let c = cfg(Path::new("unused")).for_eval_source(&dir.path().join("labels.csv"));
    assert_eq!(c.root, dir.path());
    let ds = Dataset::open_eval(
        &c,
        Path::new("/"),
        &spec("val", &["direct", "screen"], "screen"),
    )
    .unwrap();
    assert_eq!(ds.split("val").len(), 3);
    assert_eq!(ds.report().format, "csv");
}

#[test]
fn classes_that_differ_from_the_models_name_both_lists() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "test/", &["cat", "dog"], 2);
    let e = Dataset::open_eval(
        &cfg(dir.path()),
        Path::new("/"),
        &spec("test", &["direct", "screen"], "screen"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("[cat, dog]") && e.contains("[direct, screen]"),
        "{e}"
    );
    assert!(e.ends_with("'cat', 'dog' not among them"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn a_folder_of_one_class_is_evaluated_on_it_and_other_splits_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    // genuine photos only, in test; a corrupt file in train
    folder(dir.path(), "test/", &["direct"], 4);
    folder(dir.path(), "train/", &["direct", "screen"], 3);
    std::fs::write(dir.path().join("train/screen/broken.png"), b"\x89PNG\r\n").unwrap();
    let ds = Dataset::open_eval(
        &cfg(dir.path()),
        Path::new("/"),
        &spec("test", &["direct", "screen"], "screen"),
    )
    .unwrap();
    assert_eq!(ds.split("test").len(), 4);
    assert_eq!(ds.len(), 4, "train is not decoded");
    assert_eq!(ds.classes(), ["direct", "screen"]);
    assert!(!ds.report().has_errors(), "{}", ds.report());
    let missing: Vec<_> = ds
        .report()
        .of_kind(moirelab_data::ProblemKind::MissingClassAllowed)
        .collect();
    assert_eq!(missing.len(), 1, "{}", ds.report());
    assert!(
        missing[0].message.starts_with(
            "split 'test' (4 images) has no image of class 'screen': evaluated as it is"
        ),
        "{}",
        missing[0]
    );
}

/// The walk never enters another split's folder: a link loop, a link out of the root, a
/// name that is not UTF-8 and a file that is not an image under `train/` are neither walked
/// nor reported, and nothing there counts as skipped.
#[cfg(unix)]
#[test]
fn an_imagefolder_eval_walks_only_its_split() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    folder(&root, "test/", &["direct", "screen"], 2);
    folder(&root, "train/", &["direct", "screen"], 2);
    std::os::unix::fs::symlink(&root, root.join("train/screen/loop")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("train/direct/outside")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"bad\xff.png");
    std::fs::write(root.join("train/direct").join(odd), b"x").unwrap();
    std::fs::write(root.join("train/direct/notes.txt"), b"x").unwrap();
    let mut c = cfg(&root);
    c.on_bad_image = moirelab_data::OnBad::Skip;
    let ds = Dataset::open_eval(
        &c,
        Path::new("/"),
        &spec("test", &["direct", "screen"], "screen"),
    )
    .unwrap();
    assert_eq!(ds.len(), 4);
    assert!(ds.report().problems.is_empty(), "{}", ds.report());
    assert!(ds.report().skipped.is_empty(), "{:?}", ds.report().skipped);
    // Training reads every split and finds all four.
    let train = Dataset::open(&c, Path::new("/")).unwrap();
    assert!(train.report().problems.len() >= 4, "{}", train.report());
}

#[test]
fn an_empty_split_is_an_error_that_lists_the_splits_found() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "train/", &["direct", "screen"], 5);
    let e = Dataset::open_eval(
        &cfg(dir.path()),
        Path::new("/"),
        &spec("test", &["direct", "screen"], "screen"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("split 'test' has no images"), "{e}");
    // The carved val holds at least one image of each class: 2 of the 10.
    assert!(e.contains("train 8") && e.contains("val 2"), "{e}");
}
