use crate::fixtures::{cfg, mask, meta, rec, save, write_manifest};
use image::{Rgb, RgbImage};
use moirelab_data::{load_image_file, Dataset, Mode};
use std::path::Path;

/// A set whose pixels *are* the flag mask (white where bit 1 is set, black elsewhere), so
/// after any geometry the image and the mask must still agree.
fn painted_set(root: &Path, w: u32, h: u32) {
    let m = mask(w, h);
    let im = RgbImage::from_fn(w, h, |x, y| {
        if m.get_pixel(x, y).0[0] & 2 != 0 {
            Rgb([255, 255, 255])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let mut recs = Vec::new();
    for (k, label) in ["direct", "screen"].iter().enumerate() {
        let p = format!("images/{k}.png");
        save(root, &p, &im);
        std::fs::create_dir_all(root.join("masks")).unwrap();
        m.save(root.join(format!("masks/{k}.png"))).unwrap();
        let mut r = rec(&p, label, "train", "A");
        r.mask = Some(format!("masks/{k}.png"));
        recs.push(r);
    }
    // distinct pixels for the second image are not needed: duplicates only warn
    write_manifest(root, &meta(&["card", "flag"]), &recs);
}

fn agreement(img: &RgbImage, bits: &[u16]) -> f64 {
    let ok = img
        .pixels()
        .zip(bits)
        .filter(|(p, b)| (p.0[0] > 127) == (**b & 2 != 0))
        .count();
    ok as f64 / bits.len() as f64
}

#[test]
fn masks_follow_crops_and_flips_in_resize_mode() {
    let dir = tempfile::tempdir().unwrap();
    painted_set(dir.path(), 96, 64);
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    c.augment.hflip = 0.5;
    c.augment.vflip = 0.5;
    c.augment.transpose = 0.5;
    c.augment.scale = [0.3, 0.6];
    c.augment.brightness = 0.0;
    c.augment.contrast = 0.0;
    c.augment.saturation = 0.0;
    c.augment.jpeg_prob = 0.0;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    for pos in 0..12 {
        let (img, masks) = ds.train_view(0, 7, 1, pos).unwrap();
        let masks = masks.unwrap();
        assert_eq!((masks.width, masks.height), (32, 32));
        let a = agreement(&img, &masks.bits);
        // only pixels on block edges may differ (bilinear image vs nearest mask)
        assert!(a > 0.9, "position {pos}: agreement {a}");
        distinct.insert(masks.bits.clone());
    }
    assert!(distinct.len() > 8, "crops must vary: {}", distinct.len());
    let eval = ds.eval_image(0).unwrap();
    let em = ds.region_masks(0).unwrap().unwrap();
    assert!(agreement(&eval, &em.bits) > 0.9);
}

#[test]
fn patch_mode_crops_native_pixels_and_masks_match_exactly() {
    let dir = tempfile::tempdir().unwrap();
    painted_set(dir.path(), 80, 48);
    let mut c = cfg(dir.path());
    c.val_fraction = 0.0;
    c.mode = Mode::Patch;
    c.augment.hflip = 0.5;
    c.augment.brightness = 0.0;
    c.augment.contrast = 0.0;
    c.augment.saturation = 0.0;
    c.augment.jpeg_prob = 0.0;
    let ds = Dataset::open(&c, Path::new("/")).unwrap();
    for pos in 0..8 {
        let (img, masks) = ds.train_view(1, 3, 0, pos).unwrap();
        assert_eq!(
            agreement(&img, &masks.unwrap().bits),
            1.0,
            "no resampling in patch mode"
        );
    }
    // eval: centre crop at native resolution, offsets ((80-32)/2, (48-32)/2) = (24, 8)
    let native = image::open(dir.path().join("images/0.png"))
        .unwrap()
        .to_rgb8();
    let eval = ds.eval_image(0).unwrap();
    for (x, y) in [(0, 0), (5, 9), (31, 31)] {
        assert_eq!(eval.get_pixel(x, y), native.get_pixel(x + 24, y + 8));
    }
    let (t, view) = load_image_file(&dir.path().join("images/0.png"), &c).unwrap();
    assert_eq!(view, eval);
    assert!(t.equal(&ds.eval_batch(&[0]).unwrap()));
}

/// Region names are identifiers: a 300-character one (which made the report page scroll
/// sideways) or one with a newline is refused in one line naming `dataset.json` and the name;
/// 64 characters are fine.
#[test]
fn region_names_longer_than_64_characters_or_with_control_characters_are_refused() {
    for (name, why) in [
        ("x".repeat(300), "has 300 characters, more than 64"),
        ("fl\nag".to_string(), "contains a control character"),
        ("é".repeat(65), "has 65 characters, more than 64"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        painted_set(dir.path(), 16, 16);
        let meta_path = dir.path().join("dataset.json");
        let mut m: moirelab_core::dataset_format::DatasetMeta =
            moirelab_core::fsio::read_json(&meta_path).unwrap();
        m.regions[1] = name.clone();
        moirelab_core::fsio::write_json_atomic(&meta_path, &m).unwrap();
        let Err(e) = Dataset::open(&cfg(dir.path()), Path::new("/")) else {
            panic!("region name {name:?} accepted");
        };
        let e = e.to_string();
        assert!(
            e.starts_with(&format!("{}: region name \"", meta_path.display())),
            "{e}"
        );
        assert!(e.contains(why) && !e.contains('\n'), "{e}");
        let shown: String = name.chars().take(40).collect();
        assert!(e.contains(&format!("{shown:?}")), "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    painted_set(dir.path(), 16, 16);
    let meta_path = dir.path().join("dataset.json");
    let mut m: moirelab_core::dataset_format::DatasetMeta =
        moirelab_core::fsio::read_json(&meta_path).unwrap();
    m.regions[0] = "é".repeat(64);
    moirelab_core::fsio::write_json_atomic(&meta_path, &m).unwrap();
    assert!(Dataset::open(&cfg(dir.path()), Path::new("/")).is_ok());
}
