//! Loader throughput vs shallow-model training throughput, and peak RSS of a decoded set.
//!
//! ```text
//! cargo run --release -p moirelab-data --example bench_loader -- \
//!     [--images 2000] [--native 160] [--size 128] [--batches 40] [--workers 2] \
//!     [--cache memory|disk] [--rss-only] [--dir PATH]
//! ```
//! Writes a synthetic ImageFolder (smooth gradients + noise, fast PNG) unless `--dir` holds
//! one already, then measures side by side in one process:
//! 1. the decode pass of `Dataset::open`;
//! 2. loader images/s with augmentation (batch 32);
//! 3. shallow-model training images/s on a fixed batch (forward + backward + Adam step);
//! 4. the two together (loader feeding the model), to show whether the model waits.
//!
//! Peak RSS (VmHWM) is read from /proc/self/status at the end.
#![allow(clippy::print_stdout)]

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};
use moirelab_data::{CacheMode, DataConfig, Dataset, Loader, LoaderOptions};
use moirelab_models::ModelConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind};

struct Args {
    images: usize,
    native: u32,
    size: u32,
    batches: usize,
    workers: usize,
    cache: CacheMode,
    rss_only: bool,
    dir: Option<PathBuf>,
}

fn parse() -> Args {
    let mut a = Args {
        images: 2000,
        native: 160,
        size: 128,
        batches: 40,
        workers: 2,
        cache: CacheMode::Memory,
        rss_only: false,
        dir: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        let num = |s: &str| {
            s.parse::<usize>()
                .unwrap_or_else(|_| panic!("bad number {s}"))
        };
        match argv[i].as_str() {
            "--images" => a.images = num(&v),
            "--native" => a.native = num(&v) as u32,
            "--size" => a.size = num(&v) as u32,
            "--batches" => a.batches = num(&v),
            "--workers" => a.workers = num(&v),
            "--cache" => {
                a.cache = if v == "disk" {
                    CacheMode::Disk
                } else {
                    CacheMode::Memory
                }
            }
            "--dir" => a.dir = Some(v.into()),
            "--rss-only" => {
                a.rss_only = true;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Fast fixture writer: smooth gradient + a little hash noise, PNG with fast compression.
fn write_set(root: &Path, n: usize, side: u32) {
    let per_class = n / 2;
    let t = Instant::now();
    let jobs: Vec<(usize, usize)> = (0..2)
        .flat_map(|c| (0..per_class).map(move |k| (c, k)))
        .collect();
    use rayon::prelude::*;
    jobs.par_iter().for_each(|&(c, k)| {
        let class = ["direct", "screen"][c];
        let dir = root.join("train").join(class);
        std::fs::create_dir_all(&dir).expect("create fixture folder");
        let seed = (c * 1_000_003 + k) as u32;
        let img = RgbImage::from_fn(side, side, |x, y| {
            let n = (x.wrapping_mul(374_761_393)
                ^ y.wrapping_mul(668_265_263)
                ^ seed.wrapping_mul(2_246_822_519))
            .wrapping_mul(3_266_489_917)
                >> 28;
            image::Rgb([
                ((x + seed) % 256) as u8 ^ n as u8,
                ((y * 2 + seed / 7) % 256) as u8,
                (((x + y) / 2 + c as u32 * 40) % 256) as u8,
            ])
        });
        let f = std::fs::File::create(dir.join(format!("{k:06}.png"))).expect("create fixture");
        PngEncoder::new_with_quality(
            std::io::BufWriter::new(f),
            CompressionType::Fast,
            FilterType::Sub,
        )
        .write_image(img.as_raw(), side, side, image::ExtendedColorType::Rgb8)
        .expect("encode fixture");
    });
    println!(
        "wrote {n} {side}x{side} PNGs in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let a = parse();
    let tmp;
    let root = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    if !root.join("train").is_dir() {
        write_set(&root, a.images, a.native);
    }
    let mut cfg = DataConfig::for_root(&root);
    cfg.image_size = a.size;
    cfg.cache = a.cache;
    cfg.val_fraction = 0.0;
    cfg.max_imbalance = 100.0;
    let t = Instant::now();
    let ds = Arc::new(Dataset::open(&cfg, Path::new("/")).expect("open data set"));
    let open_s = t.elapsed().as_secs_f64();
    println!(
        "open (decode + validate {} images, cache {:?}): {open_s:.2}s = {:.0} images/s; peak RSS so far {:.0} MB",
        ds.len(),
        a.cache,
        ds.len() as f64 / open_s,
        peak_rss_mb()
    );
    let bs = 32;
    let loader =
        Loader::new(ds.clone(), "train", bs, LoaderOptions::train(1, a.workers)).expect("loader");
    let nb = a.batches.min(loader.batches_per_epoch());
    let t = Instant::now();
    let mut n = 0;
    for b in loader.epoch(0, 0).take(nb) {
        n += b.expect("batch").indices.len();
    }
    let loader_ips = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "loader, augment on, {} workers: {loader_ips:.0} images/s",
        a.workers
    );
    if a.rss_only {
        println!("peak RSS: {:.0} MB", peak_rss_mb());
        return;
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let mcfg = ModelConfig {
        classes: 2,
        ..ModelConfig::default()
    };
    let net = moirelab_models::build(&vs.root(), &mcfg).expect("model");
    let mut opt = nn::Adam::default().build(&vs, 1e-3).expect("optimizer");
    let fixed = loader
        .epoch(0, 0)
        .next()
        .expect("one batch")
        .expect("batch");
    let step = |x: &tch::Tensor, y: &tch::Tensor, opt: &mut nn::Optimizer| {
        let logits = net.forward_t(x, true).expect("forward");
        let loss = logits.cross_entropy_for_logits(y);
        opt.backward_step(&loss);
        let _ = loss.to_kind(Kind::Float).double_value(&[]);
    };
    step(&fixed.images, &fixed.labels, &mut opt); // warm-up
    let t = Instant::now();
    for _ in 0..nb {
        step(&fixed.images, &fixed.labels, &mut opt);
    }
    let model_ips = (nb * bs) as f64 / t.elapsed().as_secs_f64();
    println!("shallow model train step (fixed batch): {model_ips:.0} images/s");
    let t = Instant::now();
    let mut n = 0;
    for b in loader.epoch(1, 0).take(nb) {
        let b = b.expect("batch");
        step(&b.images, &b.labels, &mut opt);
        n += b.indices.len();
    }
    let both_ips = n as f64 / t.elapsed().as_secs_f64();
    println!("loader feeding the model: {both_ips:.0} images/s");
    println!(
        "ratios: loader/model = {:.2}x, (loader+model)/model-alone = {:.2}; peak RSS {:.0} MB",
        loader_ips / model_ips,
        both_ips / model_ips,
        peak_rss_mb()
    );
}
