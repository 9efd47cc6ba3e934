//! The per-epoch dump: files, records, metrics, determinism, memory.

use crate::common::{images, probes, shallow};
use moirelab_core::fsio::read_json;
use moirelab_core::run::{self, CamTarget, MapsFile, ProbesFile};
use moirelab_gradcam::{Dumper, GradcamConfig};
use std::path::Path;

fn cfg(methods: &[&str]) -> GradcamConfig {
    GradcamConfig {
        methods: methods.iter().map(|s| s.to_string()).collect(),
        layers: vec!["conv2".into()],
        batch_size: 3,
        pointing_tolerance: 1,
        ..GradcamConfig::default()
    }
}

fn classes() -> Vec<String> {
    vec!["direct".into(), "screen".into()]
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn dump_writes_the_run_folder_layout_and_region_metrics() {
    let (_vs, net) = shallow(21, 4, 2, true);
    let xs = images(22, 5, 16);
    let mut d = Dumper::new(
        &cfg(&["gradcam", "gradcam++"]),
        classes(),
        probes(&xs, 2),
        net.as_ref(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    d.write_probe_inputs(dir.path()).unwrap();
    let metrics = d.dump(net.as_ref(), dir.path(), 3).unwrap();
    let e = run::epoch_dir(dir.path(), 3);
    assert!(run::probe_input_png(dir.path(), 4).exists());
    assert!(e.join(run::GRID_PNG).exists());
    for kind in ["pred", "true", "overlay"] {
        assert!(
            !run::tile_png(dir.path(), 3, 4, "gradcampp", kind).exists(),
            "{kind}: the maps live in the strips"
        );
    }
    // Raw maps: one 8-bit strip per "<method>/<target>", P maps of H rows, with their ranges.
    let mf: MapsFile = read_json(&e.join(run::MAPS_JSON)).unwrap();
    let keys: Vec<&String> = mf.maps.keys().collect();
    assert_eq!(
        keys,
        [
            "gradcam++/pred",
            "gradcam++/true",
            "gradcam/pred",
            "gradcam/true"
        ]
    );
    assert_eq!(
        (mf.epoch, mf.width, mf.height, mf.layer.as_str()),
        (3, 16, 16, "conv2")
    );
    let strip = &mf.maps["gradcam/pred"];
    assert_eq!(strip.file, "maps/gradcam-pred.png");
    assert_eq!((strip.min.len(), strip.max.len()), (5, 5));
    let img = image::open(e.join(&strip.file)).unwrap();
    assert_eq!(img.color(), image::ColorType::L8);
    assert_eq!((img.width(), img.height()), (16, 5 * 16));
    // The strip decodes back to the raw maps within one quantisation step.
    let raw = moirelab_gradcam::compute(
        net.as_ref(),
        &xs,
        &moirelab_gradcam::Targets::Pred,
        &["conv2"],
        &[moirelab_gradcam::Method::GradCam],
    )
    .unwrap();
    let raw = moirelab_gradcam::overlay::Map2::batch_from_tensor(&raw.maps[0].raw).unwrap();
    let gray = img.to_luma8();
    for (i, m) in raw.iter().enumerate() {
        let (lo, hi) = (strip.min[i], strip.max[i]);
        assert!((f64::from(m.max()) - hi).abs() <= 1e-4 * hi.abs().max(1e-6));
        for (k, &v) in m.data.iter().enumerate() {
            let q = f64::from(
                gray.get_pixel(k as u32 % 16, i as u32 * 16 + k as u32 / 16)
                    .0[0],
            );
            let back = lo + q / 255.0 * (hi - lo);
            assert!(
                (back - f64::from(v)).abs() <= (hi - lo) / 255.0 * 0.51 + 1e-4 * hi.abs(),
                "probe {i} px {k}"
            );
        }
    }
    let pf: ProbesFile = read_json(&e.join(run::PROBES_JSON)).unwrap();
    assert_eq!((pf.epoch, pf.probes.len(), pf.image_size), (3, 5, [16, 16]));
    assert_eq!(pf.methods, vec!["gradcam", "gradcam++"]);
    assert_eq!(pf.probes[1].true_class, 1);
    assert_eq!(pf.probes[1].id, "images/001.png");
    // 2 methods × 2 targets, overall and split by alignment.
    assert_eq!(metrics.len(), 4);
    let m = &metrics[0];
    assert_eq!(
        (m.method.as_str(), m.target, m.layer.as_str()),
        ("gradcam", CamTarget::Pred, "conv2")
    );
    assert!(m.dump_s > 0.0);
    if m.probes > 0 {
        let left = m.regions["left"];
        assert!((0.0..=1.0).contains(&left.mass) && (0.0..=1.0).contains(&left.rank));
        // "corner" lies inside "left": never more mass.
        assert!(m.regions["corner"].mass <= left.mass + 1e-12);
        // The overall mean equals the mean of the per-probe records.
        let per: Vec<f64> = pf
            .probes
            .iter()
            .filter_map(|p| p.regions.get("gradcam/pred").map(|r| r["left"].mass))
            .collect();
        let mean = per.iter().sum::<f64>() / per.len() as f64;
        assert!((mean - left.mass).abs() < 1e-12);
        assert_eq!(per.len() as u64, m.probes);
        assert!(!m.aligned.is_empty() || !m.conflicting.is_empty());
    }
}

#[test]
fn dumps_are_byte_identical_for_the_same_weights_and_probes() {
    let (_vs, net) = shallow(23, 4, 2, true);
    let xs = images(24, 4, 16);
    let mut outs = Vec::new();
    for scale in ["per-image", "run"] {
        let c = GradcamConfig {
            scale: scale.into(),
            ..cfg(&["gradcam", "scorecam"])
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [&a, &b] {
            let mut d = Dumper::new(&c, classes(), probes(&xs, 2), net.as_ref()).unwrap();
            d.write_probe_inputs(dir.path()).unwrap();
            d.dump(net.as_ref(), dir.path(), 1).unwrap();
        }
        let (ta, tb) = (tree(a.path()), tree(b.path()));
        assert!(ta.len() > 10);
        assert_eq!(ta, tb, "scale {scale}");
        outs.push(ta);
    }
    // The scale mode changes the pictures (and adds probes/scales.json), not the raw maps.
    assert_ne!(outs[0], outs[1]);
    assert!(outs[1].iter().any(|(p, _)| p.ends_with("scales.json")));
}

#[test]
fn dump_is_due_on_the_first_every_nth_and_last_epoch() {
    let (_vs, net) = shallow(1, 4, 2, true);
    let xs = images(2, 1, 16);
    let c = GradcamConfig {
        every: 3,
        ..cfg(&["gradcam"])
    };
    let d = Dumper::new(&c, classes(), probes(&xs, 2), net.as_ref()).unwrap();
    let due: Vec<u32> = (1..=10).filter(|&e| d.due(e, 10)).collect();
    assert_eq!(due, vec![1, 3, 6, 9, 10]);
}

#[test]
fn dumper_rejects_unknown_layers_bad_probes_and_class_mismatch() {
    let (_vs, net) = shallow(1, 4, 2, true);
    let xs = images(2, 2, 16);
    let c = GradcamConfig {
        layers: vec!["conv7".into()],
        ..cfg(&["gradcam"])
    };
    let err = Dumper::new(&c, classes(), probes(&xs, 2), net.as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv7") && err.contains("conv1, conv2"),
        "{err}"
    );
    let err = Dumper::new(
        &cfg(&["gradcam"]),
        vec!["a".into(); 3],
        probes(&xs, 2),
        net.as_ref(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("3 class names"), "{err}");
    let mut p = probes(&xs, 2);
    p[1].input = images(3, 1, 32).get(0);
    let err = Dumper::new(&cfg(&["gradcam"]), classes(), p, net.as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("probe 1") && err.contains("images/001.png"),
        "{err}"
    );
    let err = Dumper::new(&cfg(&["gradcam"]), classes(), Vec::new(), net.as_ref())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no probe images"), "{err}");
}

#[test]
fn dumping_leaves_parameter_grads_undefined() {
    let (vs, net) = shallow(25, 4, 2, true);
    let xs = images(26, 3, 16);
    let mut d = Dumper::new(
        &cfg(&["gradcam", "layercam"]),
        classes(),
        probes(&xs, 2),
        net.as_ref(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    d.dump(net.as_ref(), dir.path(), 1).unwrap();
    for (name, t) in vs.variables() {
        assert!(!t.grad().defined(), "{name}");
    }
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// RSS is process-wide and other tests run in parallel threads, so the measurement runs in a
/// child process of this test binary that runs only this test.
#[test]
fn memory_does_not_grow_across_dumps() {
    const CHILD: &str = "MOIRELAB_GRADCAM_MEMORY_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "dump::memory_does_not_grow_across_dumps",
                "--exact",
                "--test-threads",
                "1",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return;
    }
    let (_vs, net) = shallow(27, 4, 2, true);
    let xs = images(28, 8, 32);
    let c = GradcamConfig {
        tiles: false,
        ..cfg(&["gradcam", "scorecam"])
    };
    let mut d = Dumper::new(&c, classes(), probes(&xs, 2), net.as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for e in 0..5 {
        d.dump(net.as_ref(), dir.path(), e).unwrap();
    }
    let after5 = rss_bytes();
    for e in 5..50 {
        d.dump(net.as_ref(), dir.path(), e % 5).unwrap();
    }
    let after50 = rss_bytes();
    // Generous: allocator noise is fine; leaking the maps or the graph (~0.3 MB a dump
    // here) is not.
    let grown = after50.saturating_sub(after5);
    assert!(grown < 4 << 20, "RSS grew by {grown} bytes over 45 dumps");
}
