use crate::fixtures::{cfg, img, meta, moirelab_set, rec, save, write_manifest};
use moirelab_data::{DataError, Dataset, Format, ProblemKind};
use std::path::Path;

#[test]
fn moirelab_format_reads_classes_groups_masks_and_alignment() {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 3, true);
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.classes(), ["direct", "screen"]);
    assert_eq!(ds.attack_index(), 1);
    assert_eq!(ds.len(), 12);
    assert_eq!(ds.split("train").len(), 6);
    assert_eq!(ds.split("test").len(), 6);
    assert!(ds.split("val").is_empty());
    let i = ds.split("train")[3]; // a screen image in train, flag A
    assert_eq!(ds.label(i), 1);
    assert_eq!(ds.group_key(i), "screen|flag=A");
    assert_eq!(ds.alignment(i), Some(true));
    let conflicting = ds
        .split("test")
        .iter()
        .filter(|&&i| ds.alignment(i) == Some(false))
        .count();
    // test flags A, B, A per class: direct (B in train) conflicts twice, screen once
    assert_eq!(conflicting, 3);
    assert_eq!(ds.report().with_masks, 12);
    let m = ds.region_masks(i).unwrap().unwrap();
    assert_eq!((m.width, m.height), (32, 32));
    assert_eq!(m.names, ["card", "flag"]);
    assert_eq!(ds.report().format, "moirelab");
}

/// Two declared shortcuts, flag and hair: aligned/conflicting follow the one the train split
/// plants (hair here), and the first declared one when neither is planted.
#[test]
fn alignment_follows_the_shortcut_the_train_split_plants() {
    let build = |root: &Path, hair_planted: bool| {
        let mut recs = Vec::new();
        let mut id = 0;
        for split in ["train", "test"] {
            for label in ["direct", "screen"] {
                for k in 0..8u32 {
                    let path = format!("images/{id:04}.png");
                    save(root, &path, &img(40, 40, id));
                    let mut r = rec(&path, label, split, if k % 2 == 0 { "A" } else { "B" });
                    let dark = if hair_planted && split == "train" {
                        (label == "screen") != (k == 7) // 7 of 8 aligned
                    } else {
                        k % 2 == 1
                    };
                    r.groups
                        .insert("hair".into(), if dark { "dark" } else { "light" }.into());
                    recs.push(r);
                    id += 1;
                }
            }
        }
        let mut m = meta(&[]);
        m.shortcuts.insert(
            "hair".into(),
            [
                ("screen".to_string(), "dark".to_string()),
                ("direct".to_string(), "light".to_string()),
            ]
            .into(),
        );
        write_manifest(root, &m, &recs);
    };
    for (planted, want) in [(true, "hair"), (false, "flag")] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), planted);
        let mut c = cfg(dir.path());
        c.val_fraction = 0.0;
        let ds = Dataset::open(&c, Path::new("/")).unwrap();
        assert_eq!(ds.primary_shortcut(), Some(want));
        let i = ds.split("train")[8]; // screen, k = 0: flag A (aligned), hair dark if planted
        let attr = ds.record(i).groups[want].clone();
        let aligned = ds.meta().shortcuts[want]["screen"] == attr;
        assert_eq!(ds.alignment(i), Some(aligned), "{want}");
    }
}

#[test]
fn relative_root_resolves_against_the_base_dir() {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(&dir.path().join("sets/a"), 2, false);
    let mut c = cfg(Path::new("sets/a"));
    c.root = "sets/a".into();
    let ds = Dataset::open(&c, dir.path()).unwrap();
    assert_eq!(ds.root(), dir.path().join("sets/a"));
}

#[test]
fn imagefolder_with_split_folders_sorts_classes_and_carves_val_from_train() {
    let dir = tempfile::tempdir().unwrap();
    let mut id = 0;
    for split in ["train", "test"] {
        for class in ["screen", "direct"] {
            for _ in 0..10 {
                save(
                    dir.path(),
                    &format!("{split}/{class}/{id}.png"),
                    &img(32, 32, id),
                );
                id += 1;
            }
        }
    }
    std::fs::write(dir.path().join("train/direct/notes.txt"), "hi").unwrap();
    std::fs::write(dir.path().join("train/.DS_Store"), "x").unwrap();
    let mut c = cfg(dir.path());
    c.val_fraction = 0.2;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(
        ds.classes(),
        ["direct", "screen"],
        "sorted like torchvision"
    );
    assert_eq!(ds.report().format, "imagefolder");
    assert_eq!(ds.split("val").len(), 4);
    assert_eq!(ds.split("train").len(), 16);
    assert_eq!(ds.split("test").len(), 20);
    let val_screen = ds
        .split("val")
        .iter()
        .filter(|&&i| ds.label(i) == 1)
        .count();
    assert_eq!(val_screen, 2, "stratified by class");
    assert_eq!(ds.meta().regions.len(), 0);
    assert_eq!(ds.alignment(0), None);
    let ignored: Vec<_> = ds.report().of_kind(ProblemKind::Ignored).collect();
    assert!(
        ignored[0].message.contains("train/direct/notes.txt"),
        "{ignored:?}"
    );
    // same split seed → same carve; another seed → another carve
    let again = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(again.split("val"), ds.split("val"));
    c.split_seed = 99;
    let other = Dataset::open(&c, Path::new("/")).unwrap();
    assert_ne!(other.split("val"), ds.split("val"));
}

#[test]
fn imagefolder_without_split_folders_puts_everything_in_train() {
    let dir = tempfile::tempdir().unwrap();
    for (k, class) in ["real", "screen"].iter().enumerate() {
        for j in 0..5 {
            let id = (k * 10 + j) as u32;
            save(
                dir.path(),
                &format!("{class}/sub/{id}.jpg"),
                &img(32, 32, id),
            );
        }
    }
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.split("train").len(), 10);
    assert_eq!(ds.record(0).path, "real/sub/0.jpg");
    assert_eq!(ds.report().file_formats.get("jpg"), Some(&10));
}

#[test]
fn csv_manifest_reads_splits_groups_boxes_and_reports_unknown_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("path,label,split,group:flag,box:flag,notes\n");
    for i in 0..8u32 {
        let label = if i % 2 == 0 { "direct" } else { "screen" };
        let split = if i < 6 { "train" } else { "validation" };
        save(dir.path(), &format!("img/{i}.png"), &img(32, 32, i));
        csv.push_str(&format!(
            "img/{i}.png,{label},{split},A,\"1 2 3 4\",\"free, text\"\n"
        ));
    }
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    let mut c = cfg(dir.path());
    c.manifest = Some("labels.csv".into());
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.report().format, "csv");
    assert_eq!(
        ds.split("val").len(),
        2,
        "'validation' reads as val; nothing carved"
    );
    assert_eq!(ds.record(0).boxes["flag"], [1, 2, 3, 4]);
    assert_eq!(ds.group_key(1), "screen|flag=A");
    let ign: Vec<_> = ds.report().of_kind(ProblemKind::Ignored).collect();
    assert!(ign[0].message.contains("notes"), "{ign:?}");
}

#[test]
fn csv_with_a_bad_box_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), "a.png", &img(32, 32, 1));
    std::fs::write(
        dir.path().join("m.csv"),
        "path,label,box:flag\na.png,screen,1 2\n",
    )
    .unwrap();
    let mut c = cfg(dir.path());
    c.manifest = Some("m.csv".into());
    c.format = Format::Csv;
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(e.contains("m.csv: line 2: box:flag '1 2'"), "{e}");
}

#[test]
fn jsonl_manifest_defaults_split_to_train_and_rejects_unknown_fields_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..6u32 {
        save(dir.path(), &format!("{i}.png"), &img(32, 32, i));
        let label = ["direct", "screen"][i as usize % 2];
        lines.push_str(&format!("{{\"path\":\"{i}.png\",\"label\":\"{label}\"}}\n"));
    }
    std::fs::write(dir.path().join("m.jsonl"), &lines).unwrap();
    let mut c = cfg(dir.path());
    c.manifest = Some("m.jsonl".into());
    c.val_fraction = 0.0;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.split("train").len(), 6);
    lines.push_str("{\"path\":\"0.png\",\"label\":\"direct\",\"lable\":1}\n");
    std::fs::write(dir.path().join("m.jsonl"), &lines).unwrap();
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(e.contains("m.jsonl: line 7") && e.contains("lable"), "{e}");
}

#[test]
fn manifest_path_with_dotdot_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("set");
    let mut recs = moirelab_set(&root, 2, false);
    save(dir.path(), "outside.png", &img(32, 32, 99));
    recs.push(rec("../outside.png", "screen", "train", "A"));
    write_manifest(&root, &meta(&[]), &recs);
    let c = cfg(&root);
    let e = Dataset::open(&c, Path::new("/")).unwrap_err();
    assert!(matches!(e, DataError::BadImages { count: 1, .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("../outside.png: path is absolute or contains '..'"),
        "{msg}"
    );
    let r = moirelab_data::check(&c, Path::new("/")).unwrap();
    assert_eq!(r.of_kind(ProblemKind::PathEscapesRoot).count(), 1);
}

#[test]
fn configured_class_order_and_attack_class_win_and_unknown_labels_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 2, false);
    let mut c = cfg(dir.path());
    c.classes = vec!["screen".into(), "direct".into()];
    c.attack_class = Some("screen".into());
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.attack_index(), 0);
    assert_eq!(ds.label(ds.split("train")[0]), 1, "direct is now class 1");
    c.classes = vec!["direct".into(), "paper".into()];
    c.attack_class = None;
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        e.contains("label 'screen' is not one of classes [direct, paper]"),
        "{e}"
    );
}

/// A data set is read under a shared lock on its folder, held as long as the `Dataset`
/// lives: a writer cannot replace it meanwhile, and a data set that a writer is replacing
/// right now is not opened (its files would be half old, half new).
#[cfg(target_os = "linux")]
#[test]
fn a_data_set_is_read_under_a_lock_that_keeps_writers_out() {
    use moirelab_core::dirlock::{exclusive_guard, read_guard};
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 3, true);
    let c = cfg(dir.path());
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert!(
        exclusive_guard(dir.path()).is_err(),
        "read while the Dataset lives"
    );
    let again = Dataset::open(&c, Path::new("/")).unwrap();
    drop((ds, again));
    let writing = exclusive_guard(dir.path()).unwrap();
    assert!(writing.is_some());
    let err = Dataset::open(&c, Path::new("/")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: this process is replacing this data set right now; run again once it has finished",
            dir.path().display()
        )
    );
    drop(writing);
    assert!(read_guard(dir.path()).unwrap().is_some());
    Dataset::open(&c, Path::new("/")).unwrap();
}
