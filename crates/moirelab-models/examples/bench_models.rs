//! Forward+backward throughput of one architecture, for scripts/bench/models.sh (which runs
//! the PyTorch twin side by side). Prints one JSON line.
//!
//! ```text
//! cargo run --release -p moirelab-models --example bench_models -- \
//!     '{"arch": "resnet", "width": 32, "depth": 4}' SIZE BATCH STEPS THREADS
//! ```

// Printing the JSON line is this program's whole output.
#![allow(clippy::print_stdout)]

use moirelab_models::{build, summary, ModelConfig};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        return Err("usage: bench_models CONFIG_JSON SIZE BATCH STEPS THREADS".into());
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
    let s = summary(net.as_ref(), &vs, [cfg.in_channels, size, size])?;
    let xs = Tensor::randn(
        [batch, cfg.in_channels, size, size],
        (Kind::Float, Device::Cpu),
    );
    let ys = Tensor::randint(cfg.classes, [batch], (Kind::Int64, Device::Cpu));
    let mut vars = vs.trainable_variables();
    let mut step = || -> Result<(), Box<dyn std::error::Error>> {
        for v in vars.iter_mut() {
            v.zero_grad();
        }
        let loss = net.forward_t(&xs, true)?.cross_entropy_for_logits(&ys);
        loss.backward();
        Ok(())
    };
    step()?; // warm-up: allocator and oneDNN primitive caches
    let t0 = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "impl": "moirelab",
            "images_per_s": (batch as f64 * steps as f64) / secs,
            "params": s.params,
            "flops": s.flops,
        })
    );
    Ok(())
}
