//! A seeded corpus of malformed inputs through the binary (the library-level corpora in
//! moirelab-data's `fuzz.rs` and the config loader's unit test cover hundreds more, faster):
//! lying and broken images, symlink loops, damaged manifests and damaged configs. Every case
//! ends within its time limit, never panics or aborts, and either succeeds with a complete
//! run / report or fails non-zero without leaving a run folder behind.

// The corpus prints its case count and outcomes (visible with --nocapture).
#![allow(clippy::print_stderr)]

use crate::hostile::{assert_no_crash, config, folder};
use crate::stderr;
use moirelab_testkit::png::{lying_png, noise_png as png};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Run the binary with a time limit.
fn run(cwd: &Path, args: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moirelab"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("moirelab {args:?} hung"))
        .expect("the binary runs")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Every run folder is complete (a summary) — a failed run leaves none.
fn assert_no_half_written_runs(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir.join("runs")) else {
        return;
    };
    for e in rd {
        let run = e.unwrap().path();
        assert!(
            run.join("summary.json").is_file(),
            "half-written run folder {}",
            run.display()
        );
    }
}

fn hostile_image(rng: &mut Rng, k: usize) -> Vec<u8> {
    let good = png(20, 20, 9000 + k as u32);
    match rng.below(5) {
        0 => lying_png(
            [100_000, 65_535, 1 << 20, 7_072][rng.below(4)],
            [100_000, 65_535, 1 << 20, 7_072][rng.below(4)],
        ),
        1 => good[..1 + rng.below(good.len() - 1)].to_vec(),
        2 => {
            let mut b = good;
            for _ in 0..1 + rng.below(10) {
                let at = rng.below(b.len());
                b[at] ^= 1 << rng.below(8);
            }
            b
        }
        3 => (0..rng.below(3000)).map(|_| rng.next() as u8).collect(),
        _ => {
            let mut b = good;
            // an IDAT length that claims 4 GB
            b[33..37].copy_from_slice(&u32::MAX.to_be_bytes());
            b
        }
    }
}

#[test]
fn malformed_inputs_through_the_binary_never_panic_hang_or_half_write() {
    let mut rng = Rng(0xc11_f022);
    let mut cases = 0usize;
    let mut failures = 0usize;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    // 1. data check on folders holding hostile images (a few per folder)
    for k in 0..8 {
        let d = format!("img{k}");
        folder(&p.join(&d), 2);
        for j in 0..3 {
            let class = ["direct", "screen"][rng.below(2)];
            std::fs::write(
                p.join(&d)
                    .join("train")
                    .join(class)
                    .join(format!("h{j}.png")),
                hostile_image(&mut rng, k * 3 + j),
            )
            .unwrap();
        }
        let o = run(p, &s(&["data", "check", &d]));
        assert_no_crash(&o);
        failures += !o.status.success() as usize;
        cases += 1;
    }
    // 2. symlink loops and links out of the root
    #[cfg(unix)]
    for k in 0..4 {
        let d = p.join(format!("loop{k}"));
        folder(&d, 2);
        for _ in 0..1 + rng.below(3) {
            let from = ["train/direct", "train/screen", "val/direct", "test/screen"][rng.below(4)];
            let to = [
                "..",
                "../..",
                "../../train",
                "/",
                "../screen",
                "../../val/direct",
            ][rng.below(6)];
            let at = d.join(from).join(format!("l{}", rng.below(1000)));
            let _ = std::os::unix::fs::symlink(to, at);
        }
        let o = run(p, &s(&["data", "check", &format!("loop{k}")]));
        assert_no_crash(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(" 12 files,") || !o.status.success(),
            "links must not add images: {out}"
        );
        failures += !o.status.success() as usize;
        cases += 1;
    }
    // 3. damaged manifests
    let m = p.join("man");
    folder(&m, 2);
    let mut rows = String::from("path,label,split\n");
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for (si, split) in ["train", "val", "test"].iter().enumerate() {
            for j in 0..2 {
                let id = k * 1000 + si * 100 + j;
                rows.push_str(&format!("{split}/{class}/{id}.png,{class},{split}\n"));
            }
        }
    }
    for k in 0..8 {
        let mut t: Vec<u8> = rows.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(t.len());
            match rng.below(3) {
                0 => t[at] = b"\",\n\r\0\xff/.."[rng.below(9)],
                1 => t.truncate(at),
                _ => t.splice(at..at, b"\"x\",".iter().copied()).for_each(drop),
            }
        }
        std::fs::write(m.join(format!("m{k}.csv")), &t).unwrap();
        let o = run(
            p,
            &s(&["data", "check", "man", "--manifest", &format!("m{k}.csv")]),
        );
        assert_no_crash(&o);
        failures += !o.status.success() as usize;
        cases += 1;
    }
    // 4. damaged configs, trained for real: a complete run or an error and no run folder
    folder(&p.join("d"), 4);
    let base = config("d", "");
    for k in 0..5 {
        let mut t = base.clone();
        let lines: Vec<&str> = base.lines().collect();
        let i = rng.below(lines.len());
        let bad = [
            "= 1",
            "[x",
            "-5",
            "\"\"",
            "1e309",
            "root = \"nowhere\"",
            "batch-size = 999",
        ][rng.below(7)];
        t = t.replacen(lines[i], &format!("{} {bad}", lines[i]), 1);
        std::fs::write(p.join(format!("c{k}.toml")), &t).unwrap();
        let o = run(p, &s(&["train", "--config", &format!("c{k}.toml")]));
        assert_no_crash(&o);
        if !o.status.success() {
            let err = stderr(&o);
            assert_eq!(
                err.lines().filter(|l| l.starts_with("error: ")).count(),
                1,
                "{err}"
            );
            failures += 1;
        }
        assert_no_half_written_runs(p);
        cases += 1;
    }
    // 5. training on a folder full of hostile images: refused, no run folder
    let h = p.join("hostile");
    folder(&h, 2);
    for j in 0..6 {
        std::fs::write(
            h.join("train/screen").join(format!("x{j}.png")),
            hostile_image(&mut rng, 100 + j),
        )
        .unwrap();
    }
    std::fs::write(h.join("train/direct/bomb.png"), lying_png(100_000, 100_000)).unwrap();
    std::fs::write(p.join("h.toml"), config("hostile", "")).unwrap();
    let o = run(p, &s(&["train", "--config", "h.toml", "--name", "hostile"]));
    assert_no_crash(&o);
    assert!(!o.status.success());
    assert!(!p.join("runs/hostile").exists());
    assert_no_half_written_runs(p);
    failures += 1;
    cases += 1;
    eprintln!("binary corpus: {cases} cases, {failures} non-zero exits, no panic, no hang");
    assert_eq!(cases, 26);
}
