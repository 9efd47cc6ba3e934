//! Tiny data sets written by the tests themselves.

use image::{ImageBuffer, Luma, Rgb, RgbImage};
use moirelab_core::dataset_format::{DatasetMeta, ManifestRecord, FORMAT_VERSION};
use moirelab_data::DataConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// A deterministic, distinct image per `id` (noise-like so duplicates only arise on purpose).
pub fn img(w: u32, h: u32, id: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x.wrapping_mul(73) ^ y.wrapping_mul(151) ^ id.wrapping_mul(2_654_435_761)) as u64;
        let z = v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        Rgb([z as u8, (z >> 8) as u8, (x * 4 + id) as u8])
    })
}

pub fn save(root: &Path, rel: &str, im: &RgbImage) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    im.save(&p).unwrap();
}

pub fn rec(path: &str, label: &str, split: &str, flag: &str) -> ManifestRecord {
    ManifestRecord {
        path: path.into(),
        label: label.into(),
        split: split.into(),
        groups: [("flag".to_string(), flag.to_string())].into(),
        mask: None,
        boxes: BTreeMap::new(),
        flag_twin: None,
        params: serde_json::Value::Null,
    }
}

pub fn meta(regions: &[&str]) -> DatasetMeta {
    DatasetMeta {
        format_version: FORMAT_VERSION,
        classes: vec!["direct".into(), "screen".into()],
        regions: regions.iter().map(|s| s.to_string()).collect(),
        attack_class: None,
        shortcuts: [(
            "flag".to_string(),
            [
                ("screen".to_string(), "A".to_string()),
                ("direct".to_string(), "B".to_string()),
            ]
            .into(),
        )]
        .into(),
        shortcut_regions: Default::default(),
        generator: None,
        image_size: None,
    }
}

pub fn write_manifest(root: &Path, meta: &DatasetMeta, recs: &[ManifestRecord]) {
    moirelab_core::fsio::write_json_atomic(&root.join("dataset.json"), meta).unwrap();
    let lines: String = recs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(root.join("manifest.jsonl"), lines).unwrap();
}

/// A 16-bit bit-field mask: bit 0 ("card") everywhere but a 2-px border, bit 1 ("flag") on
/// 16-px blocks in the top-left quadrant.
pub fn mask(w: u32, h: u32) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        let card = (x >= 2 && y >= 2 && x + 2 < w && y + 2 < h) as u16;
        let flag = (x < w / 2 && y < h / 2 && ((x / 16) + (y / 16)) % 2 == 0) as u16;
        Luma([card | (flag << 1)])
    })
}

/// A moirelab-format set: `n` images per (split, class), 40×40, flags aligned in train
/// (screen→A, direct→B) and alternating in test, with masks.
pub fn moirelab_set(root: &Path, n: usize, with_masks: bool) -> Vec<ManifestRecord> {
    let mut recs = Vec::new();
    let mut id = 0;
    for split in ["train", "test"] {
        for label in ["direct", "screen"] {
            for k in 0..n {
                let path = format!("images/{id:04}.png");
                save(root, &path, &img(40, 40, id));
                let flag = match (split, label, k % 2) {
                    ("train", "screen", _) | ("test", _, 0) => "A",
                    _ => "B",
                };
                let mut r = rec(&path, label, split, flag);
                if with_masks {
                    let m = format!("masks/{id:04}.png");
                    std::fs::create_dir_all(root.join("masks")).unwrap();
                    mask(40, 40).save(root.join(&m)).unwrap();
                    r.mask = Some(m);
                }
                recs.push(r);
                id += 1;
            }
        }
    }
    write_manifest(root, &meta(&["card", "flag"]), &recs);
    recs
}

/// Config for tests: 32 px, memory cache unless told otherwise.
pub fn cfg(root: &Path) -> DataConfig {
    let mut c = DataConfig::for_root(root);
    c.image_size = 32;
    c.cache = moirelab_data::CacheMode::Memory;
    c.workers = 0;
    c
}
