//! Tiny fabricated run folders written with the core record types (no tch, no trainer).

use moirelab_core::fsio::{append_jsonl, write_json_atomic};
use moirelab_core::run::{
    self, CamMetrics, CamTarget, EpochMetrics, GroupStat, MapStrip, MapsFile, MetricsLine,
    PadMetrics, ProbeRecord, ProbesFile, RegionStats, RunMeta, RunSummary,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const HOSTILE: &str = "<script>alert(\"x\")</script>'../";

#[derive(Clone)]
pub struct Spec {
    pub folder: String,
    pub name: String,
    pub epochs: Vec<u32>,
    /// Epochs with a CAM dump (epoch folder); others have metrics only.
    pub dumps: Vec<u32>,
    pub probe_ids: Vec<String>,
    pub methods: Vec<String>,
    pub classes: Vec<String>,
    /// `meta.json`'s attack class; `None`: the last class.
    pub attack: Option<String>,
    pub lr: f64,
    pub arch: String,
    pub summary: bool,
    pub masks: bool,
    /// Accuracy offset so that runs differ.
    pub skill: f64,
    /// Dump format before map strips: colour pred/true/overlay tiles, no maps.json.
    pub legacy: bool,
    /// Extra data sets evaluated every epoch (`extra/<name>` lines, summary `extra`).
    pub extra: Vec<String>,
    /// Which pictures the data set holds under the probe ids: runs with another value show
    /// other pictures under the same names.
    pub pictures: u32,
    /// probes.json records each probe's `image_hash` (dumps before it was recorded do not).
    pub hashes: bool,
}

impl Spec {
    pub fn new(folder: &str) -> Self {
        Spec {
            folder: folder.into(),
            name: folder.into(),
            epochs: vec![1, 2, 3],
            dumps: vec![1, 2, 3],
            probe_ids: vec!["images/000001.png".into(), "images/000002.png".into()],
            methods: vec!["gradcam".into()],
            classes: vec!["direct".into(), "screen".into()],
            attack: None,
            lr: 1e-3,
            arch: "shallow".into(),
            summary: true,
            masks: true,
            skill: 0.0,
            legacy: false,
            extra: Vec::new(),
            pictures: 0,
            hashes: true,
        }
    }
}

impl Spec {
    /// The attack class `meta.json` records.
    pub fn attack_class(&self) -> String {
        self.attack
            .clone()
            .or_else(|| self.classes.last().cloned())
            .unwrap_or_default()
    }
}

/// A small PNG whose colour encodes its arguments, so tiles differ.
pub fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((seed * 53 + x * 7) % 256) as u8,
            ((seed * 97 + y * 5) % 256) as u8,
            ((seed * 31 + x + y) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode test png");
    out
}

/// An 8-bit map strip: `n` maps of `size`², each a blob whose place depends on the map.
pub fn gray_strip(size: u32, n: u32, seed: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(size, size * n.max(1), |x, y| {
        let (i, y) = (y / size, y % size);
        let (cx, cy) = ((seed * 7 + i * 5) % size, (seed * 3 + i * 11) % size);
        let d2 = (x as i32 - cx as i32).pow(2) + (y as i32 - cy as i32).pow(2);
        image::Luma([(255.0 * (-(d2 as f64) / 40.0).exp()) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode test strip");
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn regions(flag: f64) -> BTreeMap<String, RegionStats> {
    [("flag", flag), ("face", 0.2), ("moire", 0.7 - flag)]
        .into_iter()
        .map(|(k, m)| {
            (
                k.to_string(),
                RegionStats {
                    mass: m,
                    lift: m * 3.0,
                    pointing: 1.0,
                    rank: 0.5,
                },
            )
        })
        .collect()
}

pub fn epoch_metrics(spec: &Spec, epoch: u32, split: &str) -> EpochMetrics {
    let e = f64::from(epoch);
    let acc = (0.6 + 0.1 * e + spec.skill).min(0.99);
    let mut groups = BTreeMap::new();
    groups.insert(
        "screen|flag=A".to_string(),
        GroupStat {
            n: 10,
            correct: 9,
            accuracy: 0.9,
            aligned: Some(true),
        },
    );
    EpochMetrics {
        epoch,
        split: split.into(),
        step: u64::from(epoch) * 10,
        n: 20,
        loss: 1.0 / (e + 1.0) + if split == "train" { 0.0 } else { 0.1 },
        accuracy: acc,
        balanced_accuracy: acc - 0.01,
        confusion: vec![vec![9, 1], vec![2, 8]],
        pad: (split != "train").then(|| PadMetrics {
            threshold: 0.5,
            apcer: 0.2 / e,
            bpcer: 0.1 / e,
            acer_non_iso: 0.15 / e,
            eer: 0.12 / e - spec.skill / 10.0,
            auc: 0.9 + 0.01 * e,
            bpcer20: Some(0.3),
            bpcer100: None,
            accuracy_at_threshold: Some(0.85),
        }),
        one_class: None,
        groups,
        worst_group_accuracy: Some(acc - 0.2),
        aligned_accuracy: Some(acc + 0.05),
        conflicting_accuracy: Some(acc - 0.3),
        lr: (split == "train").then_some(spec.lr),
        images_per_sec: None,
        wall_s: 1.5,
    }
}

pub fn cam_metrics(spec: &Spec, epoch: u32, method: &str, target: CamTarget) -> CamMetrics {
    let flag = 0.6 - 0.1 * f64::from(epoch);
    CamMetrics {
        epoch,
        method: method.into(),
        layer: "conv3".into(),
        target,
        probes: spec.probe_ids.len() as u64,
        regions: if spec.masks {
            regions(flag)
        } else {
            BTreeMap::new()
        },
        aligned: if spec.masks {
            regions(flag + 0.1)
        } else {
            BTreeMap::new()
        },
        conflicting: if spec.masks {
            regions(flag - 0.1)
        } else {
            BTreeMap::new()
        },
        // The attack class's maps look less at the flag than the other classes' do.
        per_class: if spec.masks {
            spec.classes
                .iter()
                .map(|c| {
                    let shift = if *c == spec.attack_class() {
                        -0.2
                    } else {
                        0.25
                    };
                    (c.clone(), regions(flag + shift))
                })
                .collect()
        } else {
            BTreeMap::new()
        },
        dump_s: 0.1,
    }
}

/// The picture a data set of `spec.pictures` holds under `id`: the seed of its probe input.
fn picture(spec: &Spec, id: &str) -> u32 {
    1000 + id.bytes().map(u32::from).sum::<u32>() + 7 * spec.pictures
}

/// Write a complete run under `root/<folder>` and return its path.
pub fn make_run(root: &Path, spec: &Spec) -> PathBuf {
    let dir = root.join(&spec.folder);
    std::fs::create_dir_all(&dir).expect("mkdir run");
    let config = format!(
        "[data]\nroot = {root:?}\nimage-size = 24\n[model]\narch = {arch:?}\n[train]\nepochs = {n}\nlr = {lr}\nseed = 42\n[gradcam]\nmethods = {methods:?}\n",
        root = format!("data/{}", spec.name),
        arch = spec.arch,
        n = spec.epochs.len(),
        lr = spec.lr,
        methods = spec.methods,
    );
    write(&dir.join(run::CONFIG_TOML), config.as_bytes());
    let meta = RunMeta {
        format_version: run::RUN_FORMAT_VERSION,
        name: spec.name.clone(),
        argv: vec!["moirelab".into(), "train".into()],
        moirelab_version: "0.1.0".into(),
        tch_version: "0.26.0".into(),
        libtorch_version: "2.13.0".into(),
        device: "cpu".into(),
        threads: 2,
        seed: 42,
        git_rev: None,
        hostname: Some("test".into()),
        started: "2026-01-01T00:00:00Z".into(),
        finished: spec.summary.then(|| "2026-01-01T00:10:00Z".into()),
        status: if spec.summary { "finished" } else { "running" }.into(),
        resumed: vec![],
        classes: spec.classes.clone(),
        attack_class: Some(spec.attack_class()),
        skipped_files: vec![],
    };
    write_json_atomic(&dir.join(run::META_JSON), &meta).expect("meta");
    let metrics = dir.join(run::METRICS_JSONL);
    for &e in &spec.epochs {
        for split in ["train", "val", "test"] {
            append_jsonl(&metrics, &MetricsLine::Epoch(epoch_metrics(spec, e, split)))
                .expect("metrics");
        }
        for name in &spec.extra {
            let mut m = epoch_metrics(spec, e, "val");
            m.split = format!("extra/{name}");
            m.accuracy = 0.5 + 0.01 * f64::from(e);
            append_jsonl(&metrics, &MetricsLine::Epoch(m)).expect("extra metrics");
        }
        if spec.dumps.contains(&e) {
            for m in &spec.methods {
                for t in [CamTarget::Pred, CamTarget::True] {
                    append_jsonl(&metrics, &MetricsLine::Cam(cam_metrics(spec, e, m, t)))
                        .expect("cam metrics");
                }
            }
        }
    }
    for (i, id) in spec.probe_ids.iter().enumerate() {
        write(
            &run::probe_input_png(&dir, i),
            &png(24, 24, picture(spec, id)),
        );
    }
    for &e in &spec.dumps {
        let probes = spec
            .probe_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut regions_by = BTreeMap::new();
                if spec.masks {
                    // Flag attention fades with the epoch and differs per probe.
                    let flag = 0.5 - 0.05 * f64::from(e) + 0.02 * i as f64;
                    for m in &spec.methods {
                        regions_by.insert(format!("{m}/pred"), regions(flag));
                        regions_by.insert(format!("{m}/true"), regions(flag - 0.1));
                    }
                }
                ProbeRecord {
                    index: i,
                    id: id.clone(),
                    image_hash: spec.hashes.then(|| format!("{:016x}", picture(spec, id))),
                    true_class: i % 2,
                    pred_class: (i + e as usize) % 2,
                    probs: vec![0.3 + 0.01 * i as f64, 0.7 - 0.01 * i as f64],
                    groups: [("flag".to_string(), "A".to_string())].into(),
                    aligned: Some(i % 2 == 0),
                    regions: regions_by,
                }
            })
            .collect();
        let pf = ProbesFile {
            epoch: e,
            classes: spec.classes.clone(),
            methods: spec.methods.clone(),
            layers: vec!["conv3".into()],
            image_size: [24, 24],
            colormap: "jet".into(),
            probes,
        };
        write_json_atomic(&run::epoch_dir(&dir, e).join(run::PROBES_JSON), &pf).expect("probes");
        write(
            &run::epoch_dir(&dir, e).join(run::GRID_PNG),
            &png(48, 24, e),
        );
        let n = spec.probe_ids.len();
        let kinds: &[&str] = if spec.legacy {
            &["pred", "true", "overlay"]
        } else {
            &["overlay"]
        };
        for i in 0..n {
            for m in &spec.methods {
                for (k, kind) in kinds.iter().enumerate() {
                    // As the Grad-CAM dump does: `gradcam++` -> `gradcampp` in file names.
                    let stem = m.replace('+', "p");
                    write(
                        &run::tile_png(&dir, e, i, &stem, kind),
                        &png(24, 24, e * 100 + i as u32 * 10 + k as u32),
                    );
                }
            }
        }
        if !spec.legacy {
            let mut maps = BTreeMap::new();
            for m in &spec.methods {
                for t in ["pred", "true"] {
                    let file = format!("maps/{}-{t}.png", m.replace('+', "p"));
                    write(
                        &run::epoch_dir(&dir, e).join(&file),
                        &gray_strip(24, n as u32, e),
                    );
                    let max: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 + f64::from(e)).collect();
                    maps.insert(
                        format!("{m}/{t}"),
                        MapStrip {
                            file,
                            min: vec![0.0; n],
                            max,
                        },
                    );
                }
            }
            let mf = MapsFile {
                epoch: e,
                width: 24,
                height: 24,
                layer: "conv3".into(),
                maps,
            };
            write_json_atomic(&run::epoch_dir(&dir, e).join(run::MAPS_JSON), &mf).expect("maps");
        }
    }
    if spec.summary {
        let last = *spec.epochs.last().expect("epochs");
        let s = RunSummary {
            name: spec.name.clone(),
            epochs: last,
            best_metric: "val.balanced_accuracy".into(),
            best_epoch: last,
            best_value: epoch_metrics(spec, last, "val").balanced_accuracy,
            threshold: 0.5,
            val: Some(epoch_metrics(spec, last, "val")),
            test: Some(epoch_metrics(spec, last, "test")),
            attention: BTreeMap::new(),
            extra: BTreeMap::new(),
            wall_s: 60.0,
            ..Default::default()
        };
        let mut v = serde_json::to_value(&s).expect("summary json");
        if !spec.extra.is_empty() {
            let extra: BTreeMap<&String, EpochMetrics> = spec
                .extra
                .iter()
                .map(|n| {
                    let mut m = epoch_metrics(spec, last, "val");
                    m.split = format!("extra/{n}");
                    m.accuracy = 0.5 + 0.01 * f64::from(last);
                    (n, m)
                })
                .collect();
            v["extra"] = serde_json::to_value(extra).expect("extra json");
        }
        write_json_atomic(&dir.join(run::SUMMARY_JSON), &v).expect("summary");
    }
    dir
}

/// The JSON data block of a generated page, parsed.
pub fn page_data(html: &str) -> serde_json::Value {
    let start_tag = "<script type=\"application/json\" id=\"data\">";
    let a = html.find(start_tag).expect("data block") + start_tag.len();
    let b = a + html[a..].find("</script>").expect("end of data block");
    serde_json::from_str(&html[a..b]).expect("data block is JSON")
}

/// Percent-decoding of the URL paths the pages use.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex digit"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf8")
}

/// Every image URL in a page's data block (strings ending in .png or .gif).
pub fn image_urls(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if s.ends_with(".png") || s.ends_with(".gif") => {
            out.push(s.clone())
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| image_urls(x, out)),
        // Probe ids are data-set paths (often `*.png`), not links.
        serde_json::Value::Object(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "id" && k.as_str() != "ids")
            .for_each(|(_, x)| image_urls(x, out)),
        _ => {}
    }
}
