use crate::tiny;
use moirelab_core::dataset_format::{DatasetMeta, ManifestRecord};
use moirelab_core::fsio::{read_json, read_jsonl_strict};
use moirelab_synth::{
    generate, generate_reusing, read_mask_png, render_sample, Donor, Holdout, Layout,
    GENERATOR_NAME, REGIONS,
};
use std::path::Path;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

#[test]
fn same_seed_gives_identical_bytes_with_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(8);
    cfg.twins = true;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    pool(1)
        .install(|| generate(&cfg, &a, false, &|_, _| {}))
        .unwrap();
    pool(2)
        .install(|| generate(&cfg, &b, false, &|_, _| {}))
        .unwrap();
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.len(), 2 + 3 * 8);
    assert!(fa == fb, "data sets differ between 1 and 2 threads");
    // And a single sample rendered on its own is the same image.
    let s = render_sample(&cfg, 5).unwrap();
    let img = image::open(a.join("images/000005.png"))
        .unwrap()
        .into_rgb8();
    assert!(img == s.image);
}

/// A generator killed mid-write leaves `.set.partial-<pid>`; the next write of that data set
/// deletes it once its process is gone, and leaves a live writer's folder and other data
/// sets' folders alone.
#[test]
fn folders_left_by_a_killed_writer_are_deleted_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    // No process has a PID above Linux's pid_max (2^22); PID 1 always runs.
    let dead = [".set.partial-999999999", ".set.old-999999998"];
    let kept = [
        ".set.partial-1",
        ".other.partial-999999999",
        ".set.partial-x",
    ];
    for d in dead.iter().chain(&kept) {
        std::fs::create_dir_all(dir.path().join(d).join("train")).unwrap();
    }
    generate(&tiny(4), &out, false, &|_, _| {}).unwrap();
    assert!(out.join("dataset.json").is_file());
    // Without /proc only day-old folders count as abandoned, and these are new.
    let procs = Path::new("/proc/self").exists();
    for d in dead {
        assert_eq!(dir.path().join(d).exists(), !procs, "{d}");
    }
    for d in kept {
        assert!(dir.path().join(d).exists(), "{d} was deleted");
    }
}

#[test]
fn different_seeds_give_different_images() {
    let mut c = tiny(2);
    let a = render_sample(&c, 0).unwrap().image;
    c.seed += 1;
    let b = render_sample(&c, 0).unwrap().image;
    assert!(a != b);
}

#[test]
fn generated_set_has_meta_manifest_masks_and_twins() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let mut cfg = tiny(12);
    cfg.twins = true;
    cfg.knobs.rho_flag = 1.0;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let summary = generate(&cfg, &out, false, &|_, total| {
        assert_eq!(total, 12);
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(calls.into_inner(), 12);
    assert_eq!(summary.count, 12);
    let meta: DatasetMeta = read_json(&out.join("dataset.json")).unwrap();
    assert_eq!(meta.classes, ["direct", "screen"]);
    assert_eq!(meta.regions, REGIONS);
    assert_eq!(meta.shortcuts["flag"]["screen"], "A");
    assert_eq!(meta.shortcuts["hair"]["direct"], "light");
    let gen = meta.generator.as_ref().unwrap();
    assert_eq!(gen.name, GENERATOR_NAME);
    assert_eq!(gen.knobs["knobs"]["rho-flag"], 1.0);
    let recs: Vec<ManifestRecord> = read_jsonl_strict(&out.join("manifest.jsonl")).unwrap();
    assert_eq!(recs.len(), 12);
    let mut far_checked = 0u64;
    for r in &recs {
        if r.split != "test" {
            assert_eq!(
                meta.alignment("flag", r),
                Some(true),
                "rho 1 in train/val: {}",
                r.path
            );
        }
        let mask = read_mask_png(&out.join(r.mask.as_ref().unwrap()), &meta.regions).unwrap();
        assert_eq!((mask.width, mask.height), (64, 64));
        let twin = image::open(out.join(r.flag_twin.as_ref().unwrap()))
            .unwrap()
            .into_rgb8();
        let img = image::open(out.join(&r.path)).unwrap().into_rgb8();
        // The twin differs from the image only near the flag: beyond a margin for the blurs
        // and for every JPEG's 16×16 (chroma) blocks — the attacker's file at display
        // resolution, the camera's at sensor resolution, an upload's at output resolution —
        // pixels are equal.
        let [x0, y0, x1, y1] = r.boxes["flag"];
        let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let cam = &r.params["camera"];
        let mut margin = 6.0 + 16.0 / num(&cam["sensor-scale"]);
        if !cam["upload-jpeg-q"].is_null() {
            margin += 16.0;
        }
        if r.label == "screen" && !r.params["screen"]["jpeg-q1"].is_null() {
            margin += 16.0 * num(&r.params["screen"]["pitch-px"]);
        }
        let m = margin.ceil() as i64;
        let mut inside_diff = 0u64;
        for (x, y, p) in img.enumerate_pixels() {
            let q = twin.get_pixel(x, y);
            let (xi, yi) = (x as i64, y as i64);
            let near = xi >= x0 as i64 - m
                && xi < x1 as i64 + m
                && yi >= y0 as i64 - m
                && yi < y1 as i64 + m;
            if !near {
                far_checked += 1;
                assert_eq!(
                    p, q,
                    "{} differs from its twin at ({x},{y}) far from the flag",
                    r.path
                );
            } else {
                inside_diff +=
                    p.0.iter()
                        .zip(q.0)
                        .map(|(a, b)| a.abs_diff(b) as u64)
                        .sum::<u64>();
            }
        }
        assert!(inside_diff > 0, "{}: twin flag identical", r.path);
    }
    assert!(
        far_checked > 2000,
        "only {far_checked} pixels far from the flag were compared"
    );
}

#[test]
fn masks_line_up_with_the_warped_image() {
    // The flag mask sits inside the flag box, covers most of it, and its pixels stand out
    // from the pastel card: their mean distance from the plain-card mean colour is far larger
    // than the plain card's own spread.
    let cfg = tiny(6);
    for i in 0..6 {
        let s = render_sample(&cfg, i).unwrap();
        let flag = s.masks.mask("flag").unwrap();
        let card = s.masks.mask("card").unwrap();
        let idx = |name: &str| s.masks.names.iter().position(|n| n == name).unwrap();
        // Plain card: card and guilloche, whatever artifact footprints lie over it (a resolved
        // display grid can cover the whole screen).
        let plain_bits = ["card", "guilloche", "moire", "bands", "glare"]
            .iter()
            .fold(0u16, |b, r| b | (1u16 << idx(r)));
        let [x0, y0, x1, y1] = s.record.boxes["flag"];
        let px = |p: usize| {
            s.image
                .get_pixel((p % 64) as u32, (p / 64) as u32)
                .0
                .map(f64::from)
        };
        let plain: Vec<usize> = (0..s.masks.bits.len())
            .filter(|&p| card[p] && s.masks.bits[p] & !plain_bits == 0)
            .collect();
        let mean: Vec<f64> = (0..3)
            .map(|c| plain.iter().map(|&p| px(p)[c]).sum::<f64>() / plain.len() as f64)
            .collect();
        let dist = |p: usize| {
            px(p)
                .iter()
                .zip(&mean)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let spread = plain.iter().map(|&p| dist(p)).sum::<f64>() / plain.len() as f64;
        let mut n = 0;
        let mut flag_dist = 0.0;
        for (p, (&f, &c)) in flag.iter().zip(&card).enumerate() {
            if f {
                let (x, y) = ((p % 64) as u32, (p / 64) as u32);
                assert!(
                    x >= x0 && x < x1 && y >= y0 && y < y1,
                    "sample {i}: flag pixel outside box"
                );
                assert!(c, "sample {i}: flag pixel outside the card");
                n += 1;
                flag_dist += dist(p);
            }
        }
        let box_area = ((x1 - x0) * (y1 - y0)) as usize;
        assert!(
            n * 2 > box_area / 2,
            "sample {i}: flag mask {n} px vs box {box_area}"
        );
        let flag_dist = flag_dist / n as f64;
        assert!(
            flag_dist > 2.0 * spread,
            "sample {i}: flag {flag_dist:.1} vs card spread {spread:.1}"
        );
        // A quarter of the card width at 64 px (the cap): at least 11 px at the smallest
        // card scale.
        assert!(x1 - x0 >= 11, "sample {i}: flag only {} px wide", x1 - x0);
    }
}

/// Generate `cfg` into `out`, reusing samples from `donors` (data-set folders).
fn generate_from(cfg: &moirelab_synth::GenConfig, out: &Path, donors: &[&Path]) -> usize {
    let donors: Vec<Donor> = donors
        .iter()
        .filter_map(|d| Donor::open(cfg, d).unwrap())
        .collect();
    generate_reusing(cfg, out, false, &|_, _| {}, &donors)
        .unwrap()
        .reused
}

#[test]
fn reusing_a_sibling_data_set_gives_the_same_bytes_as_rendering() {
    // A ρ sweep: the shortcut set and the debiased set share the seed, so every sample whose
    // label and groups agree is the same sample.
    let dir = tempfile::tempdir().unwrap();
    let mut shortcut = tiny(40);
    shortcut.twins = true;
    shortcut.knobs.rho_flag = 0.95;
    let mut clean = shortcut.clone();
    clean.knobs.rho_flag = 0.5;
    let (a, fresh, reused) = (
        dir.path().join("shortcut"),
        dir.path().join("clean-fresh"),
        dir.path().join("clean-reused"),
    );
    assert_eq!(generate_from(&shortcut, &a, &[]), 0);
    assert_eq!(generate_from(&clean, &fresh, &[]), 0);
    let n = generate_from(&clean, &reused, &[&a]);
    // The test split (test-rho is the same) and the agreeing train/val samples are copied.
    assert!((10..40).contains(&n), "reused {n} of 40");
    assert!(
        files(&fresh) == files(&reused),
        "reusing samples changed the data set"
    );
}

#[test]
fn reuse_across_other_split_fractions_stays_byte_identical_with_split_dependent_rendering() {
    // With a held-out factor or cue dropout, a sample renders differently in test than in
    // train; other fractions move samples across that line, and those must be rendered.
    let dir = tempfile::tempdir().unwrap();
    let mut holdout = tiny(40);
    holdout.knobs.holdout = Holdout::Layout(Layout::Pentile);
    let mut dropout = tiny(40);
    dropout.knobs.cue_dropout = 0.5;
    for (k, base) in [holdout, dropout].into_iter().enumerate() {
        let mut other = base.clone();
        (other.knobs.train_frac, other.knobs.val_frac) = (0.4, 0.1);
        let (a, fresh, reused) = (
            dir.path().join(format!("a{k}")),
            dir.path().join(format!("fresh{k}")),
            dir.path().join(format!("reused{k}")),
        );
        generate_from(&base, &a, &[]);
        generate_from(&other, &fresh, &[]);
        let n = generate_from(&other, &reused, &[&a]);
        assert!((5..40).contains(&n), "case {k}: reused {n} of 40");
        assert!(
            files(&fresh) == files(&reused),
            "case {k}: reuse changed bytes"
        );
    }
}

#[test]
fn data_sets_that_render_differently_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny(12);
    let a = dir.path().join("a");
    generate_from(&base, &a, &[]);
    let mut other_seed = base.clone();
    other_seed.seed += 1;
    let mut other_gain = base.clone();
    other_gain.knobs.artifact_gain = 2.0;
    let mut other_twins = base.clone();
    other_twins.twins = true;
    let mut other_foils = base.clone();
    other_foils.knobs.hologram_prob = 0.5;
    let mut other_layouts = base.clone();
    other_layouts.knobs.layouts = Layout::ALL.to_vec();
    let mut other_shapes = base.clone();
    other_shapes.knobs.subpixel_jitter = 0.5;
    for (k, cfg) in [
        other_seed,
        other_gain,
        other_twins,
        other_foils,
        other_layouts,
        other_shapes,
    ]
    .iter()
    .enumerate()
    {
        assert!(Donor::open(cfg, &a).unwrap().is_none(), "case {k}");
        let out = dir.path().join(format!("out{k}"));
        assert_eq!(generate_from(cfg, &out, &[&a]), 0, "case {k}");
    }
    // Not a data set at all: nothing to reuse, no error.
    assert!(Donor::open(&base, dir.path()).unwrap().is_none());
    // The same config reuses everything.
    let again = dir.path().join("again");
    assert_eq!(generate_from(&base, &again, &[&a]), 12);
    assert!(
        files(&a) == files(&again),
        "a full reuse differs from the donor"
    );
}

#[test]
fn photos_of_several_sizes_are_the_same_samples_at_their_own_side() {
    // `sizes` draws each photo's side; everything else about sample i is what a data set of
    // that one side renders, the mask has the photo's side, and a donor must agree on sizes.
    let dir = tempfile::tempdir().unwrap();
    let mut mixed = tiny(16);
    mixed
        .apply(&moirelab_synth::Overrides::from_sets(&["sizes=96,64"]).unwrap())
        .unwrap();
    assert_eq!((mixed.size, mixed.sizes.clone()), (96, Some(vec![64, 96])));
    let out = dir.path().join("mixed");
    generate_from(&mixed, &out, &[]);
    let meta: DatasetMeta = read_json(&out.join("dataset.json")).unwrap();
    assert_eq!(meta.image_size, None);
    let recs: Vec<ManifestRecord> = read_jsonl_strict(&out.join("manifest.jsonl")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in recs.iter().enumerate() {
        let img = image::open(out.join(&r.path)).unwrap().into_rgb8();
        let side = mixed.photo_size(i);
        assert_eq!((img.width(), img.height()), (side, side), "sample {i}");
        assert_eq!(r.params["size"], side, "sample {i}");
        let names: Vec<String> = REGIONS.iter().map(|s| s.to_string()).collect();
        let m = read_mask_png(&out.join(r.mask.as_ref().unwrap()), &names).unwrap();
        assert_eq!((m.width, m.height), (side, side), "sample {i}");
        let mut one = tiny(16);
        one.size = side;
        assert!(render_sample(&one, i).unwrap().image == img, "sample {i}");
        seen.insert(side);
    }
    assert_eq!(seen.len(), 2, "16 photos all drew one side");
    // Another mixture is no donor; the same one is.
    let mut other = mixed.clone();
    other
        .apply(&moirelab_synth::Overrides::from_sets(&["sizes=64,80,96"]).unwrap())
        .unwrap();
    assert!(Donor::open(&other, &out).unwrap().is_none());
    assert_eq!(
        generate_from(&mixed, &dir.path().join("again"), &[&out]),
        16
    );
    // One side is no mixture, and `size` afterwards ends it.
    let mut c = tiny(4);
    c.apply(&moirelab_synth::Overrides::from_sets(&["sizes=[80]"]).unwrap())
        .unwrap();
    assert_eq!((c.size, c.sizes), (80, None));
    let mut c = mixed.clone();
    c.apply(&moirelab_synth::Overrides::from_sets(&["size=64"]).unwrap())
        .unwrap();
    assert_eq!((c.size, c.sizes), (64, None));
    for bad in ["sizes=[]", "sizes=32,64", "sizes=[64, -1]", "sizes=a"] {
        let msg = match moirelab_synth::Overrides::from_sets(&[bad]) {
            Err(e) => e.to_string(),
            Ok(o) => tiny(4).apply(&o).unwrap_err().to_string(),
        };
        assert!(msg.contains("sizes"), "{bad}: {msg}");
    }
}
