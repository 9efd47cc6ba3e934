//! Opening a data set from its disk decode cache (memory-mapped) against decoding it from its
//! image files, and the two hashes a check of the mapped pixels could use.
//!
//! ```text
//! cargo run --release -p moirelab-data --example bench_cache_open -- \
//!     --dir DATA --cache-dir DIR [--size 128] [--rounds 3] [--mode mapped|decode|hash]
//! ```
//! * `mapped`: builds the cache in `--cache-dir` if it is not there, then times `Dataset::open`
//!   from it `--rounds` times (the cache file stays in the page cache between rounds);
//! * `decode`: times `Dataset::open` with `cache = "memory"`: every image decoded;
//! * `hash`: reads the `.mlc` files in `--cache-dir` and times, over the same bytes cut into
//!   one piece per 256 × 256 image and hashed in parallel, CRC-32C (SSE 4.2) against the
//!   64-bit multiply-xorshift mix of `moirelab_data::content_hash`.
//!
//! Prints one `key=value` line per measurement; `scripts/bench/cache_open.sh` interleaves
//! rounds of two builds (with and without a check) on one data set.
#![allow(clippy::print_stdout)]

use moirelab_data::{CacheMode, DataConfig, Dataset};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Args {
    dir: PathBuf,
    cache_dir: PathBuf,
    size: u32,
    rounds: usize,
    mode: String,
}

fn parse() -> Args {
    let mut a = Args {
        dir: PathBuf::new(),
        cache_dir: PathBuf::new(),
        size: 128,
        rounds: 3,
        mode: "mapped".into(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        let num = |s: &str| {
            s.parse::<usize>()
                .unwrap_or_else(|_| panic!("bad number {s}"))
        };
        match pair[0].as_str() {
            "--dir" => a.dir = v.into(),
            // absolute: the data set is opened with base folder `/`
            "--cache-dir" => a.cache_dir = std::path::absolute(&v).expect("cache dir"),
            "--size" => a.size = num(&v) as u32,
            "--rounds" => a.rounds = num(&v),
            "--mode" => a.mode = v,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !a.dir.as_os_str().is_empty() && !a.cache_dir.as_os_str().is_empty(),
        "--dir and --cache-dir are required"
    );
    a
}

fn open(cfg: &DataConfig) -> (f64, usize) {
    let t = Instant::now();
    let ds = Dataset::open(cfg, Path::new("/")).expect("open data set");
    (t.elapsed().as_secs_f64(), ds.len())
}

fn main() {
    let a = parse();
    let mut cfg = DataConfig::for_root(&a.dir);
    cfg.image_size = a.size;
    cfg.cache_dir = Some(a.cache_dir.clone());
    match a.mode.as_str() {
        "mapped" => {
            cfg.cache = CacheMode::Disk;
            let (s, n) = open(&cfg);
            println!("first_open_s={s:.3} images={n}");
            for _ in 0..a.rounds {
                let (s, _) = open(&cfg);
                println!("mapped_open_s={s:.3}");
            }
        }
        "decode" => {
            cfg.cache = CacheMode::Memory;
            for _ in 0..a.rounds {
                let (s, n) = open(&cfg);
                println!("decode_open_s={s:.3} images={n}");
            }
        }
        "hash" => {
            let mut bytes = Vec::new();
            for e in std::fs::read_dir(&a.cache_dir)
                .expect("cache dir")
                .flatten()
            {
                if e.path().extension().is_some_and(|x| x == "mlc") {
                    bytes = std::fs::read(e.path()).expect("read cache file");
                    break;
                }
            }
            assert!(!bytes.is_empty(), "no .mlc file in --cache-dir");
            let piece = 256 * 256 * 3;
            for _ in 0..a.rounds {
                let t = Instant::now();
                let c: u32 = bytes
                    .par_chunks(piece)
                    .map(crc32c::crc32c)
                    .reduce(|| 0, |x, y| x ^ y);
                let crc_s = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let m: u64 = bytes
                    .par_chunks(piece)
                    .map(|piece| moirelab_data::content_hash(256, 256, piece))
                    .reduce(|| 0, |x, y| x ^ y);
                let mix_s = t.elapsed().as_secs_f64();
                println!(
                    "bytes={} crc32c_s={crc_s:.4} mix_s={mix_s:.4} ({c:x} {m:x})",
                    bytes.len()
                );
            }
        }
        other => panic!("unknown --mode {other}"),
    }
}
