//! Generate a data set or a preview from the command line (calibration and benchmarks; the
//! product CLI is `moirelab gen-data`).
//!
//! ```text
//! cargo run -p moirelab-synth --example gen -- --preset clean --out data/clean \
//!     [--count N] [--size S] [--seed S] [--set knob=value]... [--force] [--preview sheet.png]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use moirelab_synth::{generate, write_preview, GenConfig, Overrides};
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut preset = "clean".to_string();
    // `knob=value` overrides, read by the generator as `gen-data --set` reads them.
    let mut sets: Vec<String> = Vec::new();
    let mut out: Option<PathBuf> = None;
    let mut preview: Option<PathBuf> = None;
    let mut force = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--preset" => preset = val()?,
            "--out" => out = Some(val()?.into()),
            "--preview" => preview = Some(val()?.into()),
            "--force" => force = true,
            "--count" | "--size" | "--seed" => sets.push(format!("{}={}", &a[2..], val()?)),
            "--set" => sets.push(val()?),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let mut cfg = GenConfig::preset(&preset)?;
    cfg.apply(&Overrides::from_sets(&sets)?)?;
    cfg.validate()?;
    if let Some(p) = preview {
        write_preview(&cfg, &p, 12)?;
        println!("preview -> {}", p.display());
    }
    if let Some(out) = out {
        let t = std::time::Instant::now();
        let s = generate(&cfg, &out, force, &|_, _| {})?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} images ({} px) -> {} in {secs:.1} s ({:.1} images/s, {} threads); counts {:?}; flag-aligned {:?}",
            s.count,
            cfg.size,
            s.out.display(),
            s.count as f64 / secs,
            rayon::current_num_threads(),
            s.counts,
            s.flag_aligned
        );
    }
    Ok(())
}
