//! How long does `write_run_report` take on a run of realistic size, and which part costs?
//!
//! Fabricates a run (16 probes, 1 method, 128 px tiles, N epochs, metrics + CAM lines) in a
//! temp folder and times, side by side in one process, the full `write_run_report` and its
//! pieces (`gif::write_probe_gifs`, `plots::write_curves`, `load_run`), plus the GIF baseline
//! it replaced (the `image` crate's GifEncoder: a NeuQuant palette per frame) on the same
//! tiles; prints each as a ratio of the full report so numbers from different machines
//! compare.
//!
//! `cargo run --release -p moirelab-report --example report_timing -- [epochs]`

#![allow(clippy::print_stdout)] // a benchmark binary: printing the numbers is its job

use moirelab_core::fsio::{append_jsonl, write_json_atomic};
use moirelab_core::run::{
    self, CamMetrics, CamTarget, EpochMetrics, MetricsLine, ProbeRecord, ProbesFile, RegionStats,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

fn png(size: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        let v = (x * 3 + y * 5 + seed * 17) as f32 / 40.0;
        image::Rgb([
            (128.0 + 127.0 * v.sin()) as u8,
            (128.0 + 127.0 * (v * 0.7).cos()) as u8,
            ((x ^ y ^ seed) & 0xff) as u8,
        ])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode");
    out
}

fn fabricate(dir: &Path, epochs: u32, probes: usize, size: u32) {
    std::fs::create_dir_all(dir.join("probes")).expect("mkdir");
    std::fs::write(dir.join(run::CONFIG_TOML), "[train]\nepochs = 1\n").expect("config");
    for i in 0..probes {
        std::fs::write(run::probe_input_png(dir, i), png(size, i as u32)).expect("probe");
    }
    let regions: BTreeMap<String, RegionStats> = ["flag", "face", "moire"]
        .iter()
        .map(|r| (r.to_string(), RegionStats::default()))
        .collect();
    let metrics = dir.join(run::METRICS_JSONL);
    for e in 1..=epochs {
        for split in ["train", "val", "test"] {
            let m = EpochMetrics {
                epoch: e,
                split: split.into(),
                loss: 1.0 / f64::from(e),
                accuracy: 0.5 + 0.4 * f64::from(e) / f64::from(epochs),
                confusion: vec![vec![5, 1], vec![1, 5]],
                ..Default::default()
            };
            append_jsonl(&metrics, &MetricsLine::Epoch(m)).expect("metrics");
        }
        let c = CamMetrics {
            epoch: e,
            method: "gradcam".into(),
            layer: "conv3".into(),
            target: CamTarget::Pred,
            probes: probes as u64,
            regions: regions.clone(),
            ..Default::default()
        };
        append_jsonl(&metrics, &MetricsLine::Cam(c)).expect("cam");
        let edir = run::epoch_dir(dir, e);
        std::fs::create_dir_all(edir.join("tiles")).expect("mkdir");
        let pf = ProbesFile {
            epoch: e,
            classes: vec!["direct".into(), "screen".into()],
            methods: vec!["gradcam".into()],
            colormap: "jet".into(),
            probes: (0..probes)
                .map(|i| ProbeRecord {
                    index: i,
                    id: format!("images/{i:06}.png"),
                    probs: vec![0.4, 0.6],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        write_json_atomic(&edir.join(run::PROBES_JSON), &pf).expect("probes");
        for i in 0..probes {
            for kind in ["pred", "true", "overlay"] {
                let p = run::tile_png(dir, e, i, "gradcam", kind);
                std::fs::write(p, png(size, e * 1000 + i as u32)).expect("tile");
            }
        }
    }
}

/// Baseline: the same strips through `image`'s GifEncoder (per-frame NeuQuant palette).
fn neuquant_gifs(dir: &Path, epochs: u32, probes: usize) -> usize {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = 0;
    for i in 0..probes {
        let mut out = Vec::new();
        {
            let mut enc = GifEncoder::new_with_speed(&mut out, 10);
            enc.set_repeat(Repeat::Infinite).expect("repeat");
            for e in 1..=epochs {
                let tile = image::open(run::tile_png(dir, e, i, "gradcam", "overlay"))
                    .expect("tile")
                    .to_rgba8();
                let frame =
                    image::Frame::from_parts(tile, 0, 0, image::Delay::from_numer_denom_ms(700, 1));
                enc.encode_frame(frame).expect("frame");
            }
        }
        bytes += out.len();
    }
    bytes
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed().as_secs_f64(), v)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    let tmp = std::env::temp_dir().join(format!("moirelab-report-timing-{}", std::process::id()));
    let dir = tmp.join("run");
    fabricate(&dir, epochs, 16, 128);
    // Warm-up (font registration, page cache), then measure.
    moirelab_report::write_run_report(&dir)?;
    let (full, _) = time(|| moirelab_report::write_run_report(&dir));
    let (plots, _) = time(|| moirelab_report::plots::write_curves(&dir));
    let (gifs, _) = time(|| moirelab_report::gif::write_probe_gifs(&dir));
    let (load, _) = time(|| moirelab_report::load_run(&dir));
    let (neuquant, _) = time(|| neuquant_gifs(&dir, epochs, 16));
    println!("epochs={epochs} probes=16 methods=1 tile=128px");
    println!("full report        {full:8.3} s   1.00");
    println!("  gifs             {gifs:8.3} s   {:.2}", gifs / full);
    println!("  plots (png+svg)  {plots:8.3} s   {:.2}", plots / full);
    println!("  load run folder  {load:8.3} s   {:.2}", load / full);
    println!(
        "baseline gifs      {neuquant:8.3} s   {:.2}   (image GifEncoder, NeuQuant per frame)",
        neuquant / full
    );
    println!("gif speed-up vs baseline: {:.1}x", neuquant / gifs);
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
