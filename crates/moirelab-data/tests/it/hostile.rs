//! Hostile data: files that lie about their size, symbolic-link loops and links out of the
//! root, splits missing a class, the same file listed twice, read-only data sets.

use crate::fixtures::{cfg, img, save};
use moirelab_data::{
    check, load_image_file, CacheMode, DataError, Dataset, FollowLinks, OnBad, ProblemKind,
};
use std::path::{Path, PathBuf};

use moirelab_testkit::png::lying_png;

/// ImageFolder: `n` images per class in train, val and test (distinct pixels).
fn folder(root: &Path, n: u32) {
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for (s, split) in ["train", "val", "test"].iter().enumerate() {
            for j in 0..n {
                let id = k as u32 * 1000 + s as u32 * 100 + j;
                save(root, &format!("{split}/{class}/{id}.png"), &img(24, 24, id));
            }
        }
    }
}

fn cfg0(root: &Path) -> moirelab_data::DataConfig {
    let mut c = cfg(root);
    c.image_size = 16;
    c.val_fraction = 0.0;
    c
}

#[test]
fn png_claiming_100000_squared_is_refused_before_decoding_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), 3);
    let bomb = lying_png(100_000, 100_000);
    assert_eq!(bomb.len(), 68);
    std::fs::write(dir.path().join("train/screen/bomb.png"), &bomb).unwrap();
    let c = cfg0(dir.path());
    // data check
    let r = check(&c, Path::new("/")).unwrap();
    let p = r.of_kind(ProblemKind::TooLarge).next().expect("too large");
    assert_eq!(p.path.as_deref(), Some("train/screen/bomb.png"));
    assert!(
        p.message.contains("100000x100000") && p.message.contains("max-pixels"),
        "{p}"
    );
    assert!(r.has_errors());
    // training's validation refuses, or skips it when asked
    let e = Dataset::open(&c, Path::new("/")).unwrap_err();
    assert!(matches!(e, DataError::BadImages { .. }), "{e}");
    assert!(e.to_string().contains("bomb.png"), "{e}");
    let mut skip = c.clone();
    skip.on_bad_image = OnBad::Skip;
    let ds = Dataset::open(&skip, Path::new("/")).unwrap();
    assert_eq!(ds.split("train").len(), 6);
    assert!(ds.report().skipped.iter().any(|s| s.ends_with("bomb.png")));
    // predict / explain
    let e = load_image_file(&dir.path().join("train/screen/bomb.png"), &c).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("100000x100000") && !msg.contains('\n'),
        "{msg}"
    );
}

/// A 24-bit BMP (BITMAPINFOHEADER) whose header declares `w`×`h` and holds no pixels.
fn lying_bmp(w: i32, h: i32) -> Vec<u8> {
    let mut b = b"BM".to_vec();
    b.extend_from_slice(&54u32.to_le_bytes()); // file size (not checked)
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    b
}

#[test]
fn a_bmp_side_above_65535_is_too_large_not_corrupt_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), 3);
    // 70000x20 and 20x70000 are within max-pixels; the BMP decoder reads no side above 65535
    std::fs::write(
        dir.path().join("train/screen/wide.bmp"),
        lying_bmp(70_000, 20),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("train/screen/tall.bmp"),
        lying_bmp(20, 70_000),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("train/direct/huge.bmp"),
        lying_bmp(100_000, 100_000),
    )
    .unwrap();
    let c = cfg0(dir.path());
    let r = check(&c, Path::new("/")).unwrap();
    assert_eq!(r.of_kind(ProblemKind::Corrupt).count(), 0, "{r}");
    let big: Vec<_> = r.of_kind(ProblemKind::TooLarge).collect();
    assert_eq!(big.len(), 3, "{r}");
    let of = |name: &str| {
        big.iter()
            .find(|p| p.path.as_deref().is_some_and(|q| q.ends_with(name)))
            .unwrap_or_else(|| panic!("{name}: {r}"))
    };
    for (name, dims) in [("wide.bmp", "70000x20"), ("tall.bmp", "20x70000")] {
        let m = &of(name).message;
        assert!(m.contains(dims) && m.contains("65535"), "{m}");
    }
    let m = &of("huge.bmp").message;
    assert!(
        m.contains("100000x100000") && m.contains("max-pixels"),
        "{m}"
    );
    // training refuses them like any bad image, or skips them when asked
    let e = Dataset::open(&c, Path::new("/")).unwrap_err();
    assert!(matches!(e, DataError::BadImages { count: 3, .. }), "{e}");
    let mut skip = c.clone();
    skip.on_bad_image = OnBad::Skip;
    let ds = Dataset::open(&skip, Path::new("/")).unwrap();
    assert_eq!(ds.split("train").len(), 6);
    assert_eq!(ds.report().skipped.len(), 3);
    // predict / explain name the file and its size
    let e = load_image_file(&dir.path().join("train/screen/wide.bmp"), &c).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("wide.bmp") && msg.contains("70000x20") && !msg.contains("corrupt"),
        "{msg}"
    );
}

#[test]
fn max_pixels_is_configurable_and_applies_to_real_images() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), 2);
    save(dir.path(), "train/direct/big.png", &img(40, 30, 9999));
    let mut c = cfg0(dir.path());
    c.max_pixels = 1000; // 24x24 = 576 passes, 40x30 = 1200 does not
    let r = check(&c, Path::new("/")).unwrap();
    let bad: Vec<_> = r.of_kind(ProblemKind::TooLarge).collect();
    assert_eq!(bad.len(), 1, "{r}");
    assert_eq!(bad[0].path.as_deref(), Some("train/direct/big.png"));
    c.max_pixels = 0;
    assert!(c.validate().unwrap_err().to_string().contains("max-pixels"));
}

#[test]
fn a_pipe_named_png_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), 2);
    let fifo = dir.path().join("train/screen/pipe.png");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return; // no mkfifo on this system
    }
    let r = check(&cfg0(dir.path()), Path::new("/")).unwrap();
    let p = r
        .problems
        .iter()
        .find(|p| p.path.as_deref() == Some("train/screen/pipe.png"))
        .expect("pipe reported");
    assert_eq!(p.kind, ProblemKind::NotAnImage);
    assert!(p.message.contains("not a regular file"), "{p}");
}

#[cfg(unix)]
fn link(target: &str, at: &Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

#[cfg(unix)]
#[test]
fn two_symlink_loops_end_and_count_every_image_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for j in 0..16 {
        save(root, &format!("train/direct/a/{j}.png"), &img(24, 24, j));
        save(
            root,
            &format!("train/screen/b/{j}.png"),
            &img(24, 24, 100 + j),
        );
    }
    link("..", &root.join("train/direct/a/up")); // loop to its parent
    link("../../screen/b", &root.join("train/direct/a/side")); // alias of another class
    link("../../direct", &root.join("train/screen/b/back")); // loop back across classes
    let (tx, rx) = std::sync::mpsc::channel();
    let c = cfg0(root);
    std::thread::spawn(move || {
        let _ = tx.send(check(&c, Path::new("/")).map(|r| r.to_string()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the walk ends")
        .unwrap();
    let r2 = check(&cfg0(root), Path::new("/")).unwrap();
    assert_eq!(r2.files, 32, "{r}");
    let train = &r2.splits["train"];
    assert_eq!(train.classes["direct"], 16, "{r}");
    assert_eq!(train.classes["screen"], 16, "{r}");
    assert_eq!(r2.of_kind(ProblemKind::LinkLoop).count(), 3, "{r}");
    assert!(!r2.has_errors(), "{r}");
}

#[cfg(unix)]
#[test]
fn one_loop_does_not_duplicate_the_training_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for j in 0..16 {
        save(root, &format!("train/direct/{j}.png"), &img(24, 24, j));
        save(
            root,
            &format!("train/screen/{j}.png"),
            &img(24, 24, 100 + j),
        );
    }
    link("..", &root.join("train/screen/loop"));
    let mut c = cfg0(root);
    c.val_fraction = 0.25;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.len(), 32);
    assert_eq!(ds.split("train").len() + ds.split("val").len(), 32);
    let p = ds.report().of_kind(ProblemKind::LinkLoop).next().unwrap();
    assert_eq!(p.path.as_deref(), Some("train/screen/loop"));
    assert!(p.message.contains("walked once"), "{p}");
}

#[cfg(unix)]
#[test]
fn a_link_out_of_the_root_is_not_followed_unless_asked() {
    let outside = tempfile::tempdir().unwrap();
    for j in 0..4 {
        save(outside.path(), &format!("x/{j}.png"), &img(24, 24, 500 + j));
    }
    save(outside.path(), "one.png", &img(24, 24, 600));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    folder(root, 2);
    let target = outside.path().join("x");
    link(target.to_str().unwrap(), &root.join("train/screen/ext"));
    link(
        outside.path().join("one.png").to_str().unwrap(),
        &root.join("train/direct/ext.png"),
    );
    let c = cfg0(root);
    let r = check(&c, Path::new("/")).unwrap();
    assert_eq!(r.files, 12, "{r}");
    let refused: Vec<_> = r.of_kind(ProblemKind::LinkNotFollowed).collect();
    assert_eq!(refused.len(), 2, "{r}");
    assert!(refused
        .iter()
        .all(|p| p.message.contains("follow-links = \"all\"")));
    let mut all = c.clone();
    all.follow_links = FollowLinks::All;
    let r = check(&all, Path::new("/")).unwrap();
    assert_eq!(r.files, 17, "{r}");
    assert_eq!(r.of_kind(ProblemKind::LinkNotFollowed).count(), 0);
    // an inside link is followed by default, and not at all with "none"
    link("../direct", &root.join("test/screen/in"));
    let r = check(&c, Path::new("/")).unwrap();
    assert_eq!(r.files, 12, "alias of a walked folder: {r}");
    let mut none = c.clone();
    none.follow_links = FollowLinks::None;
    let r = check(&none, Path::new("/")).unwrap();
    assert_eq!(r.of_kind(ProblemKind::LinkNotFollowed).count(), 3, "{r}");
}

#[cfg(unix)]
#[test]
fn a_manifest_path_through_a_link_out_of_the_root_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    save(outside.path(), "o.png", &img(24, 24, 700));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    folder(root, 2);
    link(
        outside.path().join("o.png").to_str().unwrap(),
        &root.join("esc.png"),
    );
    let mut lines = String::from("path,label,split\n");
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for (s, split) in ["train", "val", "test"].iter().enumerate() {
            for j in 0..2 {
                let id = k * 1000 + s * 100 + j;
                lines.push_str(&format!("{split}/{class}/{id}.png,{class},{split}\n"));
            }
        }
    }
    lines.push_str("esc.png,screen,train\n");
    std::fs::write(root.join("labels.csv"), lines).unwrap();
    let mut c = cfg0(root);
    c.manifest = Some("labels.csv".into());
    let r = check(&c, Path::new("/")).unwrap();
    let p = r.of_kind(ProblemKind::PathEscapesRoot).next().expect("{r}");
    assert_eq!(p.path.as_deref(), Some("esc.png"));
    c.follow_links = FollowLinks::All;
    let r = check(&c, Path::new("/")).unwrap();
    assert!(!r.has_errors(), "{r}");
}

#[test]
fn a_val_split_with_one_class_is_refused_or_warned_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), 3);
    for j in 0..3 {
        let id = 1000 + 100 + j;
        std::fs::remove_file(dir.path().join(format!("val/screen/{id}.png"))).unwrap();
    }
    let mut c = cfg0(dir.path());
    let r = check(&c, Path::new("/")).unwrap();
    let p = r
        .of_kind(ProblemKind::MissingClass)
        .next()
        .expect("missing");
    assert!(
        p.message.contains("split 'val'")
            && p.message.contains("'screen'")
            && p.message.contains("allow-missing-class"),
        "{p}"
    );
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(e.contains("split 'val'") && !e.contains('\n'), "{e}");
    // skipping files cannot fix it
    c.on_bad_image = OnBad::Skip;
    assert!(Dataset::open(&c, Path::new("/")).is_err());
    c.allow_missing_class = true;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(
        ds.report()
            .of_kind(ProblemKind::MissingClassAllowed)
            .count(),
        1
    );
}

#[test]
fn a_carved_val_split_gets_every_class() {
    let dir = tempfile::tempdir().unwrap();
    for j in 0..30 {
        save(
            dir.path(),
            &format!("train/direct/{j}.png"),
            &img(24, 24, j),
        );
    }
    for j in 0..3 {
        save(
            dir.path(),
            &format!("train/screen/{j}.png"),
            &img(24, 24, 100 + j),
        );
    }
    let mut c = cfg0(dir.path());
    c.val_fraction = 0.1;
    let r = check(&c, Path::new("/")).unwrap();
    assert_eq!(r.splits["val"].classes.get("screen"), Some(&1), "{r}");
    assert_eq!(r.of_kind(ProblemKind::MissingClass).count(), 0, "{r}");
}

fn jsonl(root: &Path, rows: &[(&str, &str, &str)]) {
    let text: String = rows
        .iter()
        .map(|(p, l, s)| format!("{{\"path\":\"{p}\",\"label\":\"{l}\",\"split\":\"{s}\"}}\n"))
        .collect();
    std::fs::write(root.join("m.jsonl"), text).unwrap();
}

#[test]
fn the_same_file_twice_or_in_two_splits_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    folder(root, 2);
    let mut rows: Vec<(String, &str, &str)> = Vec::new();
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for (s, split) in ["train", "val", "test"].iter().enumerate() {
            for j in 0..2 {
                let id = k * 1000 + s * 100 + j;
                rows.push((format!("{split}/{class}/{id}.png"), class, split));
            }
        }
    }
    // listed twice in train (once spelled with "./"), and a train file listed in test
    rows.push(("./train/direct/0.png".into(), "direct", "train"));
    rows.push(("train/screen/1000.png".into(), "screen", "train"));
    rows.push(("train/direct/1.png".into(), "direct", "test"));
    let r: Vec<(&str, &str, &str)> = rows.iter().map(|(p, l, s)| (p.as_str(), *l, *s)).collect();
    jsonl(root, &r);
    let mut c = cfg0(root);
    c.manifest = Some("m.jsonl".into());
    let rep = check(&c, Path::new("/")).unwrap();
    let within: Vec<_> = rep.of_kind(ProblemKind::DuplicatePathWithinSplit).collect();
    assert_eq!(within.len(), 2, "{rep}");
    assert!(within.iter().any(|p| p.message.contains("used once")));
    let across: Vec<_> = rep
        .of_kind(ProblemKind::DuplicatePathAcrossSplits)
        .collect();
    assert_eq!(across.len(), 1, "{rep}");
    assert!(
        across[0].message.contains("train and in test"),
        "{}",
        across[0]
    );
    assert_eq!(rep.splits["train"].images, 4, "counted once: {rep}");
    // training refuses it; skip drops the test copy and keeps the train one
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(e.contains("train/direct/1.png"), "{e}");
    c.on_bad_image = OnBad::Skip;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.split("train").len(), 4);
    assert_eq!(ds.split("test").len(), 4);
}

#[cfg(unix)]
#[test]
fn a_link_to_a_train_file_inside_test_is_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    folder(root, 2);
    link(
        "../../train/screen/1000.png",
        &root.join("test/screen/alias.png"),
    );
    let rep = check(&cfg0(root), Path::new("/")).unwrap();
    let p = rep
        .of_kind(ProblemKind::DuplicatePathAcrossSplits)
        .next()
        .expect("alias");
    assert_eq!(p.path.as_deref(), Some("test/screen/alias.png"));
    assert!(p.message.contains("train/screen/1000.png"), "{p}");
}

fn tree(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), m.len()));
        }
    }
    out.sort();
    out
}

#[cfg(unix)]
#[test]
fn a_read_only_data_set_trains_and_nothing_is_written_into_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ids");
    folder(&root, 3);
    let set_mode = |ro: bool| {
        for (p, _) in tree(&root).into_iter().chain([(root.clone(), 0)]) {
            let m = std::fs::metadata(&p).unwrap();
            let base = if m.is_dir() { 0o755 } else { 0o644 };
            let mode = if ro { base & 0o555 } else { base };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set_mode(true);
    let before = tree(&root);
    let mut c = cfg0(&root);
    c.cache = CacheMode::Auto;
    let cache = tempfile::tempdir().unwrap();
    c.cache_dir = Some(cache.path().join("decode"));
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.len(), 18);
    let file = ds.cache_file().expect("disk cache").to_path_buf();
    assert!(!file.starts_with(&root));
    // the default cache folder is outside the data set too
    c.cache_dir = None;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    if let Some(f) = ds.cache_file() {
        assert!(!f.starts_with(&root), "{}", f.display());
        assert!(
            f.parent().unwrap().parent().unwrap().ends_with("decode"),
            "{}",
            f.display()
        );
        let _ = std::fs::remove_dir_all(f.parent().unwrap());
    }
    assert_eq!(tree(&root), before, "nothing written under the data root");
    set_mode(false);
}
