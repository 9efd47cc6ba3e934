//! CAM throughput of moirelab-gradcam, for scripts/bench/gradcam.sh (which runs
//! pytorch-grad-cam on the same weights, interleaved).
//!
//! ```text
//! bench_gradcam --arch shallow --batch 64 --size 128 --iters 5 --method gradcam \
//!     --threads 2 --save-dir DIR     # writes DIR/<arch>.safetensors and DIR/<arch>.json
//! ```
//! Prints one JSON line with images/s.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use moirelab_gradcam::{compute, Method, Targets};
use moirelab_models::{build, Arch, ModelConfig};
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_gradcam: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut arch = "shallow".to_string();
    let (mut batch, mut size, mut iters, mut threads) = (64i64, 128i64, 5usize, 2i32);
    let mut method = "gradcam".to_string();
    let mut save_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--arch" => arch = val()?,
            "--batch" => batch = val()?.parse()?,
            "--size" => size = val()?.parse()?,
            "--iters" => iters = val()?.parse()?,
            "--threads" => threads = val()?.parse()?,
            "--method" => method = val()?,
            "--save-dir" => save_dir = Some(PathBuf::from(val()?)),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    tch::set_num_threads(threads);
    let method: Method = method.parse()?;
    let arch_v: Arch = Arch::ALL
        .iter()
        .copied()
        .find(|x| x.as_str() == arch)
        .ok_or_else(|| format!("unknown arch {arch}"))?;
    let cfg = ModelConfig {
        arch: arch_v,
        ..ModelConfig::default()
    };
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = build(&vs.root(), &cfg)?;
    if let Some(dir) = &save_dir {
        std::fs::create_dir_all(dir)?;
        vs.save(dir.join(format!("{arch}.safetensors")))?;
        std::fs::write(dir.join(format!("{arch}.json")), serde_json::to_vec(&cfg)?)?;
    }
    let xs = Tensor::randn(
        [batch, cfg.in_channels, size, size],
        (Kind::Float, Device::Cpu),
    );
    let layer = net.default_cam_layer();
    let once = || -> Result<f64, Box<dyn std::error::Error>> {
        let t0 = Instant::now();
        let b = compute(
            net.as_ref(),
            &xs,
            &Targets::Pred,
            &[layer.as_str()],
            &[method],
        )?;
        // Like pytorch-grad-cam's return value: normalised maps as host floats.
        let v = Vec::<f32>::try_from(&b.maps[0].normalized.flatten(0, -1))?;
        std::hint::black_box(v);
        Ok(t0.elapsed().as_secs_f64())
    };
    once()?; // warm-up
    let seconds: Vec<f64> = (0..iters).map(|_| once()).collect::<Result<_, _>>()?;
    // The floor: one plain forward pass in eval mode without a graph.
    let fwd = || -> Result<f64, Box<dyn std::error::Error>> {
        let t0 = Instant::now();
        let y = tch::no_grad(|| net.forward_t(&xs, false))?;
        std::hint::black_box(Vec::<f32>::try_from(&y.flatten(0, -1))?);
        Ok(t0.elapsed().as_secs_f64())
    };
    fwd()?;
    let fwd_s: Vec<f64> = (0..iters).map(|_| fwd()).collect::<Result<_, _>>()?;
    let fwd_mean = fwd_s.iter().sum::<f64>() / fwd_s.len().max(1) as f64;
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    let best = seconds.iter().cloned().fold(f64::INFINITY, f64::min);
    println!(
        "{}",
        serde_json::json!({
            "impl": "moirelab-gradcam",
            "arch": arch,
            "method": method.as_str(),
            "batch": batch,
            "size": size,
            "threads": tch::get_num_threads(),
            "seconds": seconds,
            "images_per_s": batch as f64 / mean,
            "images_per_s_best": batch as f64 / best,
            "forward_images_per_s": batch as f64 / fwd_mean,
        })
    );
    Ok(())
}
