//! Pure training compute: forward, backward and an Adam step of the trainer's own optimizer on
//! one batch already in memory, repeated — the floor an epoch of `moirelab train` is compared
//! with (`scripts/bench/train.sh`). Prints one JSON line.
//!
//!     bench_compute MODEL_JSON SIZE BATCH STEPS THREADS

#![allow(clippy::print_stdout)] // a benchmark's output is its result

use moirelab_models::{build, ModelConfig};
use moirelab_train::optim::{OptimConfig, Optimizer, OptimizerKind};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        return Err("usage: bench_compute MODEL_JSON SIZE BATCH STEPS THREADS".into());
    }
    let cfg: ModelConfig = serde_json::from_str(&args[0])?;
    let size: i64 = args[1].parse()?;
    let batch: i64 = args[2].parse()?;
    let steps: usize = args[3].parse()?;
    let threads: i32 = args[4].parse()?;
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build(&vs.root(), &cfg)?;
    let params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let mut opt = Optimizer::new(&OptimConfig::torch_defaults(OptimizerKind::Adam), params)?;
    let xs = Tensor::randn(
        [batch, cfg.in_channels, size, size],
        (Kind::Float, Device::Cpu),
    );
    let ys = Tensor::randint(cfg.classes, [batch], (Kind::Int64, Device::Cpu));
    let step = |opt: &mut Optimizer| -> Result<(), Box<dyn std::error::Error>> {
        opt.zero_grad()?;
        net.forward_t(&xs, true)?
            .cross_entropy_for_logits(&ys)
            .backward();
        opt.step(1e-3)?;
        Ok(())
    };
    step(&mut opt)?; // warm-up: allocator and oneDNN primitive caches
    let t0 = Instant::now();
    for _ in 0..steps {
        step(&mut opt)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let images = steps as f64 * batch as f64;
    println!(
        "{}",
        serde_json::json!({
            "impl": "moirelab-compute",
            "arch": cfg.arch,
            "size": size,
            "batch": batch,
            "threads": threads,
            "seconds": secs,
            "images": images,
            "images_per_sec": images / secs,
        })
    );
    Ok(())
}
