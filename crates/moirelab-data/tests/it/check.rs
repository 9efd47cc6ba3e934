use crate::fixtures::{cfg, img, save};
use image::{ImageBuffer, Luma, Rgb, Rgba, RgbaImage};
use moirelab_data::{check, DataError, Dataset, OnBad, ProblemKind, Severity};
use std::path::Path;

/// ImageFolder with 6 good images per class in train and 2 per class in test.
fn base(root: &Path) {
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for j in 0..8u32 {
            let id = k as u32 * 100 + j;
            let split = if j < 6 { "train" } else { "test" };
            save(root, &format!("{split}/{class}/{id}.png"), &img(32, 32, id));
        }
    }
}

fn problem_for(root: &Path, rel: &str) -> moirelab_data::Problem {
    let mut c = cfg(root);
    c.val_fraction = 0.0;
    let r = check(&c, Path::new("/")).unwrap();
    r.problems
        .iter()
        .find(|p| p.path.as_deref() == Some(rel))
        .cloned()
        .unwrap_or_else(|| panic!("no problem for {rel}: {r}"))
}

#[test]
fn truncated_png_is_an_error_saying_truncated() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let mut bytes = Vec::new();
    img(64, 64, 5)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(dir.path().join("train/screen/trunc.png"), bytes).unwrap();
    let p = problem_for(dir.path(), "train/screen/trunc.png");
    assert_eq!(p.kind, ProblemKind::Corrupt);
    assert_eq!(p.severity(), Severity::Error);
    assert!(
        p.message
            .starts_with("cannot decode PNG (truncated or corrupt)"),
        "{p}"
    );
}

#[test]
fn zero_byte_file_is_an_error_saying_empty() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(dir.path().join("train/screen/zero.png"), b"").unwrap();
    let p = problem_for(dir.path(), "train/screen/zero.png");
    assert_eq!(
        (p.kind, p.message.as_str()),
        (ProblemKind::EmptyFile, "empty file (0 bytes)")
    );
}

#[test]
fn text_named_jpg_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(
        dir.path().join("train/direct/readme.jpg"),
        "hello world, I am text",
    )
    .unwrap();
    let p = problem_for(dir.path(), "train/direct/readme.jpg");
    assert_eq!(p.kind, ProblemKind::NotAnImage);
    assert!(p.message.contains("(starts with \"hello world,\")"), "{p}");
}

/// A format the decoders of this build leave out is named as such, not as a corrupt file.
#[test]
fn a_tiff_is_named_as_a_format_this_build_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    // A little-endian TIFF header: "II", 42, the offset of the first directory.
    let tiff = [b'I', b'I', 42, 0, 8, 0, 0, 0, 0, 0];
    std::fs::write(dir.path().join("train/direct/scan.png"), tiff).unwrap();
    let p = problem_for(dir.path(), "train/direct/scan.png");
    assert_eq!(p.kind, ProblemKind::NotAnImage);
    assert!(
        p.message
            .contains("a TIFF image, which this build does not read"),
        "{p}"
    );
}

#[test]
fn one_pixel_image_is_too_small() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    save(dir.path(), "train/direct/dot.png", &img(1, 1, 3));
    let p = problem_for(dir.path(), "train/direct/dot.png");
    assert_eq!(p.kind, ProblemKind::TooSmall);
    assert!(
        p.message
            .starts_with("image is 1x1, smaller than the minimum 16x16"),
        "{p}"
    );
}

#[test]
fn sixteen_bit_png_is_converted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let im: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(32, 32, |x, y| {
        Rgb([(x * 2000) as u16, (y * 2000) as u16, 65535])
    });
    im.save(dir.path().join("train/screen/deep.png")).unwrap();
    let p = problem_for(dir.path(), "train/screen/deep.png");
    assert_eq!(p.kind, ProblemKind::HighBitDepth);
    assert_eq!(p.severity(), Severity::Warning);
    assert!(p.message.starts_with("Rgb16: more than 8 bits"), "{p}");
    // converted, usable, and scaled (65535 → 255)
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    let i = (0..ds.len())
        .find(|&i| ds.record(i).path.ends_with("deep.png"))
        .unwrap();
    assert_eq!(ds.eval_image(i).unwrap().get_pixel(5, 5).0[2], 255);
}

#[test]
fn grayscale_and_rgba_are_converted_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let g: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(32, 32, |x, _| Luma([x as u8]));
    g.save(dir.path().join("train/direct/gray.png")).unwrap();
    let a: RgbaImage = ImageBuffer::from_fn(32, 32, |x, _| Rgba([x as u8, 0, 0, 128]));
    a.save(dir.path().join("train/direct/alpha.png")).unwrap();
    let p = problem_for(dir.path(), "train/direct/gray.png");
    assert_eq!(
        (p.kind, p.message.as_str()),
        (ProblemKind::Grayscale, "grayscale (L8), replicated to RGB")
    );
    let p = problem_for(dir.path(), "train/direct/alpha.png");
    assert_eq!(p.kind, ProblemKind::Alpha);
    assert!(p.message.contains("Rgba8"), "{p}");
}

#[test]
fn cmyk_jpeg_is_converted_with_a_warning() {
    // tests/fixtures/cmyk.jpg: 24x20 CMYK JPEG written by Pillow 13 (Image.new("CMYK")),
    // because the `image` encoder cannot write CMYK.
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(
        dir.path().join("train/screen/cmyk.jpg"),
        include_bytes!("../fixtures/cmyk.jpg"),
    )
    .unwrap();
    let p = problem_for(dir.path(), "train/screen/cmyk.jpg");
    assert_eq!(p.kind, ProblemKind::Cmyk);
    assert!(
        p.message
            .starts_with("CMYK/YCCK JPEG (4 components), converted to RGB"),
        "{p}"
    );
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let r = check(&c, Path::new("/")).unwrap();
    assert!(!r.has_errors(), "{r}");
    assert_eq!(r.sizes.get("24x20"), Some(&1));
}

#[test]
fn same_image_in_train_and_test_is_flagged_as_leakage() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    // the same pixels, re-encoded as BMP, in test
    save(dir.path(), "test/screen/copy.bmp", &img(32, 32, 100 + 2));
    let p = problem_for(dir.path(), "test/screen/copy.bmp");
    assert_eq!(p.kind, ProblemKind::DuplicateAcrossSplits);
    assert!(
        p.message
            .starts_with("same pixels as train/screen/102.png (train vs test)"),
        "{p}"
    );
}

/// A picture with structure at every scale the perceptual hash reads, as photos have: twelve
/// plane waves of 1–12 cycles per side, drawn from `seed`.
fn picture(w: u32, h: u32, seed: u64) -> image::RgbImage {
    let mut rng = moirelab_core::rng::Rng::derive(seed, &[3]);
    let tau = std::f64::consts::TAU;
    let waves: Vec<[f64; 4]> = (0..12)
        .map(|_| {
            let (f, a) = (1.0 + 11.0 * rng.f64(), tau * rng.f64());
            [f * a.cos(), f * a.sin(), tau * rng.f64(), 20.0 / f.sqrt()]
        })
        .collect();
    image::RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f64 / w as f64, y as f64 / h as f64);
        let wave = |[fx, fy, p, a]: &[f64; 4]| a * (tau * (fx * u + fy * v) + p).sin();
        let l = (128.0 + waves.iter().map(wave).sum::<f64>()).clamp(0.0, 255.0) as u8;
        Rgb([l, l / 2 + 60, 255 - l])
    })
}

#[test]
fn a_resized_jpeg_copy_in_test_is_flagged_as_near_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let orig = picture(96, 96, 1);
    save(dir.path(), "train/direct/photo.png", &orig);
    // another picture of the same kind in test is not a copy
    save(dir.path(), "test/direct/other.png", &picture(96, 96, 2));
    // a shrunk JPEG of it in test, filed under the other class
    let small = image::imageops::resize(&orig, 64, 64, image::imageops::FilterType::Triangle);
    save(dir.path(), "test/screen/copy.jpg", &small);
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let r = check(&c, Path::new("/")).unwrap();
    let near: Vec<_> = r.of_kind(ProblemKind::NearDuplicateAcrossSplits).collect();
    assert_eq!(near.len(), 1, "{r}");
    let p = near[0];
    assert_eq!(p.path.as_deref(), Some("test/screen/copy.jpg"));
    assert_eq!(p.severity(), Severity::Warning);
    assert!(
        p.message
            .starts_with("nearly the same picture as train/direct/photo.png (train vs test; ")
            && p.message
                .contains(" of 255 hash bits differ) with a different label (direct vs screen): "),
        "{p}"
    );
    // opening the data set for training (hashes of the stored views) finds the same pair
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    let near: Vec<_> = ds
        .report()
        .of_kind(ProblemKind::NearDuplicateAcrossSplits)
        .collect();
    assert_eq!(near.len(), 1, "{}", ds.report());
    assert_eq!(near[0].path.as_deref(), Some("test/screen/copy.jpg"));
    // an identical copy is reported once, as such, not again as a near-duplicate
    save(dir.path(), "test/direct/same.png", &orig);
    let r = check(&c, Path::new("/")).unwrap();
    let on_same: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.path.as_deref() == Some("test/direct/same.png"))
        .map(|p| p.kind)
        .collect();
    assert_eq!(on_same, vec![ProblemKind::DuplicateAcrossSplits], "{r}");
}

#[test]
fn class_imbalance_and_missing_class_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    for j in 0..20u32 {
        save(
            dir.path(),
            &format!("train/screen/x{j}.png"),
            &img(32, 32, 500 + j),
        );
    }
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let r = check(&c, Path::new("/")).unwrap();
    let p = r.of_kind(ProblemKind::ClassImbalance).next().unwrap();
    assert!(
        p.message
            .starts_with("train has 26 'screen' vs 6 'direct' (4.3:1"),
        "{p}"
    );
    c.classes = vec!["direct".into(), "screen".into(), "paper".into()];
    let r = check(&c, Path::new("/")).unwrap();
    let p = r.of_kind(ProblemKind::EmptyClass).next().unwrap();
    assert_eq!(p.message, "class 'paper' has no usable training images");
}

#[test]
fn on_bad_error_lists_files_with_reasons_and_skip_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(dir.path().join("train/screen/zero.png"), b"").unwrap();
    std::fs::write(dir.path().join("test/direct/t.jpg"), "text").unwrap();
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let e = Dataset::open(&c, Path::new("/")).unwrap_err();
    let DataError::BadImages { count, listing, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*count, 2);
    assert!(
        listing.contains("train/screen/zero.png: empty file (0 bytes)"),
        "{listing}"
    );
    assert!(
        listing.contains("test/direct/t.jpg: not an image"),
        "{listing}"
    );
    assert!(e.to_string().contains("on-bad-image = \"skip\""));
    c.on_bad_image = OnBad::Skip;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.len(), 16);
    assert_eq!(ds.report().skipped.len(), 2);
    assert!(
        ds.report().has_errors(),
        "the report still shows what was dropped"
    );
}

/// A name that is not UTF-8 (a Latin-1 archive unpacked as is) is named with its bytes
/// escaped and a reason, not as a missing file; skipping drops it.
#[cfg(unix)]
#[test]
fn a_file_or_class_folder_whose_name_is_not_utf8_is_named_and_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    save(dir.path(), "train/screen/x.png", &img(32, 32, 900));
    std::fs::rename(
        dir.path().join("train/screen/x.png"),
        dir.path().join("train/screen").join(name),
    )
    .unwrap();
    std::fs::create_dir(
        dir.path()
            .join("test")
            .join(std::ffi::OsStr::from_bytes(b"\xff")),
    )
    .unwrap();
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let e = Dataset::open(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        e.contains("train/screen/caf\\xe9.png: name is not valid UTF-8 (bytes shown as \\xNN); rename it to use it"),
        "{e}"
    );
    assert!(e.contains("test/\\xff: name is not valid UTF-8"), "{e}");
    assert!(!e.contains("No such file"), "{e}");
    c.on_bad_image = OnBad::Skip;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(ds.len(), 16);
    assert_eq!(ds.report().of_kind(ProblemKind::Unreadable).count(), 2);
    // Both are counted among the skipped entries, as a corrupt image would be.
    assert_eq!(
        ds.report().skipped,
        ["test/\\xff", "train/screen/caf\\xe9.png"],
        "{:?}",
        ds.report().skipped
    );
}

#[test]
fn more_than_twenty_bad_files_are_listed_twenty_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    for j in 0..25 {
        std::fs::write(dir.path().join(format!("train/screen/z{j:02}.png")), b"").unwrap();
    }
    let e = Dataset::open(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("25 bad file(s)"), "{e}");
    assert!(e.ends_with("; … and 5 more"), "{e}");
    assert_eq!(e.matches("empty file (0 bytes)").count(), 20);
}

#[test]
fn report_display_shows_split_class_table_formats_and_problem_counts() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(dir.path().join("train/screen/zero.png"), b"").unwrap();
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    let r = check(&c, Path::new("/")).unwrap();
    let s = r.to_string();
    assert!(
        s.contains("(imagefolder): 17 files, 16 usable, classes [direct, screen]"),
        "{s}"
    );
    assert!(s.contains("  test         4      2      2"), "{s}");
    assert!(s.contains("  train       12      6      6"), "{s}");
    assert!(s.contains("  sizes: 32x32: 16"), "{s}");
    assert!(s.contains("  formats: png: 16"), "{s}");
    assert!(s.contains("error: empty files (1)"), "{s}");
    assert!(s.ends_with("1 error(s), 0 warning(s)"), "{s}");
}

#[test]
fn skipping_every_image_of_a_class_is_still_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train/screen")).unwrap();
    for j in 0..3u32 {
        save(
            dir.path(),
            &format!("train/direct/{j}.png"),
            &img(32, 32, j),
        );
        std::fs::write(dir.path().join(format!("train/screen/{j}.png")), b"").unwrap();
    }
    let mut c = cfg(dir.path());
    c.on_bad_image = OnBad::Skip;
    let e = Dataset::open(&c, Path::new("/")).unwrap_err();
    assert!(matches!(e, DataError::Layout { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("class 'screen' has no usable training images"),
        "{e}"
    );
}

/// The check counts, per split and class, the masked images in which each region covers at
/// least 0.1 % of the pixels, and the recaptures with no artifact region at all: "is the
/// screen evidence even there?" for a data set, before any training.
#[test]
fn check_counts_present_regions_and_recaptures_without_artifacts() {
    use crate::fixtures::{meta, rec, write_manifest};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    // 40 x 40 = 1600 pixels: a region needs 2 pixels to be present.
    let regions = ["card", "moire", "bands"];
    let mut recs = Vec::new();
    for (id, (label, k)) in ["direct", "screen"]
        .iter()
        .flat_map(|l| (0..6u32).map(move |k| (*l, k)))
        .enumerate()
    {
        let path = format!("images/{id:04}.png");
        save(root, &path, &img(40, 40, id as u32));
        let screen = label == "screen";
        // moiré on screens 0, 2, 4 (a 3-px patch); bands on screens 0 and 3 (a whole row);
        // screen 1 has a single moiré pixel (below 0.1 %: not present).
        let m = ImageBuffer::from_fn(40, 40, |x, y| {
            let moire = screen && ((k % 2 == 0 && y == 5 && x < 3) || (k == 1 && x == 0 && y == 0));
            let bands = screen && k % 3 == 0 && y == 20;
            Luma([1u16 | (moire as u16) << 1 | (bands as u16) << 2])
        });
        let mpath = format!("masks/{id:04}.png");
        m.save(root.join(&mpath)).unwrap();
        let mut r = rec(&path, label, "test", "A");
        r.mask = Some(mpath);
        recs.push(r);
    }
    write_manifest(root, &meta(&regions), &recs);
    let report = check(&cfg(root), Path::new("/")).unwrap();
    let test = &report.presence["test"];
    let (direct, screen) = (&test["direct"], &test["screen"]);
    assert_eq!((direct.masked, screen.masked), (6, 6));
    assert_eq!(direct.regions["card"], 6);
    assert_eq!((direct.regions["moire"], direct.regions["bands"]), (0, 0));
    assert_eq!(direct.no_artifact, Some(6));
    assert_eq!((screen.regions["moire"], screen.regions["bands"]), (3, 2));
    // screens 1 and 5 show neither
    assert_eq!(screen.no_artifact, Some(2));
    let text = report.to_string();
    let header = text
        .lines()
        .find(|l| l.contains("no moire or bands"))
        .unwrap_or_else(|| panic!("{text}"));
    // "card" is in every image: no column for it.
    assert!(!header.contains("card"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["test", "screen", "6", "33%", "50%", "33%"]),
        "{text}"
    );
}
