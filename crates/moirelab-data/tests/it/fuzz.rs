//! A seeded corpus of malformed inputs through the library's decode, validation and loading
//! paths: images whose headers lie about their size (PNG, JPEG, WebP, BMP, GIF), truncated
//! files and chunks, flipped and random bytes, and JSONL/CSV manifests with random damage.
//! Every case must end (time limit), never panic, and either be refused with a one-line
//! reason or decode within the configured limits.

// The corpus prints its case count and outcomes (visible with --nocapture).
#![allow(clippy::print_stderr)]

use crate::fixtures::{cfg, img, save};
use image::{DynamicImage, ImageFormat};
use moirelab_data::{check, load_image_file, DataConfig, Dataset, OnBad};
use moirelab_testkit::png::crc32;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Cases in the corpus (images + manifests); the test asserts it ran all of them.
const IMAGE_CASES: usize = 400;
const MANIFEST_CASES: usize = 120;
const CASE_LIMIT: Duration = Duration::from_secs(20);

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

fn encode(fmt: ImageFormat, w: u32, h: u32, id: u32) -> Vec<u8> {
    let im = DynamicImage::ImageRgb8(img(w, h, id));
    let mut out = Vec::new();
    im.write_to(&mut Cursor::new(&mut out), fmt).unwrap();
    out
}

/// What a case is, and whether the library must refuse it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Must be refused (declared size beyond max-pixels, empty, random bytes, no header).
    Refused,
    /// Either refused, or decoded within the limits (damage inside pixel data can be
    /// undetectable: a flipped bit of a JPEG scan is still a JPEG).
    Either,
}

fn put_be32(b: &mut [u8], at: usize, v: u32) {
    if at + 4 <= b.len() {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

fn fix_png_crc(b: &mut [u8], chunk_at: usize) {
    if chunk_at + 8 > b.len() {
        return;
    }
    let len = u32::from_be_bytes(b[chunk_at..chunk_at + 4].try_into().unwrap()) as usize;
    let end = chunk_at + 8 + len;
    if end + 4 <= b.len() {
        let crc = crc32(&b[chunk_at + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A header that claims a size far beyond 50 MP, in the format's own fields.
fn lie_about_size(fmt: ImageFormat, mut b: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let big = [100_000u32, 65_535, 40_000, 1 << 20, u32::MAX >> 1];
    let w = big[rng.below(big.len())];
    let h = big[rng.below(big.len())];
    match fmt {
        ImageFormat::Png => {
            put_be32(&mut b, 16, w);
            put_be32(&mut b, 20, h);
            if rng.below(4) != 0 {
                fix_png_crc(&mut b, 8);
            }
        }
        ImageFormat::Bmp => {
            let (w, h) = (
                (w.min(i32::MAX as u32)) as i32,
                (h.min(i32::MAX as u32)) as i32,
            );
            b[18..22].copy_from_slice(&w.to_le_bytes());
            let h = if rng.below(2) == 0 { h } else { -h };
            b[22..26].copy_from_slice(&h.to_le_bytes());
        }
        ImageFormat::Gif => {
            let (w, h) = (w.min(65_535) as u16, h.min(65_535) as u16);
            // logical screen and the first image descriptor (after the colour table)
            b[6..8].copy_from_slice(&w.to_le_bytes());
            b[8..10].copy_from_slice(&h.to_le_bytes());
            if let Some(at) = b.iter().position(|&x| x == 0x2C) {
                if at + 9 <= b.len() {
                    b[at + 5..at + 7].copy_from_slice(&w.to_le_bytes());
                    b[at + 7..at + 9].copy_from_slice(&h.to_le_bytes());
                }
            }
        }
        ImageFormat::Jpeg => {
            let (w, h) = (w.clamp(8000, 65_535) as u16, h.clamp(8000, 65_535) as u16);
            if let Some(at) = b.windows(2).position(|x| x == [0xFF, 0xC0]) {
                b[at + 5..at + 7].copy_from_slice(&h.to_be_bytes());
                b[at + 7..at + 9].copy_from_slice(&w.to_be_bytes());
            }
        }
        ImageFormat::WebP => {
            // VP8L: after "RIFF....WEBPVP8L" + size(4) + signature 0x2f: 14-bit w-1, h-1
            if let Some(at) = b.windows(4).position(|x| x == b"VP8L") {
                let p = at + 9;
                let v: u32 = 0x3FFF | (0x3FFF << 14) | (u32::from(b[p + 3]) >> 4 << 28);
                b[p..p + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => unreachable!(),
    }
    b
}

fn case(rng: &mut Rng, k: usize) -> (String, Vec<u8>, Expect) {
    let fmts = [
        (ImageFormat::Png, "png"),
        (ImageFormat::Jpeg, "jpg"),
        (ImageFormat::WebP, "webp"),
        (ImageFormat::Bmp, "bmp"),
        (ImageFormat::Gif, "gif"),
    ];
    let (fmt, ext) = fmts[k % fmts.len()];
    let base = encode(
        fmt,
        24 + rng.below(24) as u32,
        24 + rng.below(24) as u32,
        k as u32,
    );
    let name = |what: &str| format!("{k:04}-{what}.{ext}");
    match rng.below(7) {
        0 | 1 => (name("lie"), lie_about_size(fmt, base, rng), Expect::Refused),
        2 => {
            // truncated anywhere after the signature
            let cut = 1 + rng.below(base.len() - 1);
            let expect = if cut < 30 {
                Expect::Refused
            } else {
                Expect::Either
            };
            (name("cut"), base[..cut].to_vec(), expect)
        }
        3 => {
            let mut b = base;
            for _ in 0..1 + rng.below(20) {
                let at = rng.below(b.len());
                b[at] ^= 1 << rng.below(8);
            }
            (name("flip"), b, Expect::Either)
        }
        4 => {
            // the signature, then random bytes
            let mut b = base[..8.min(base.len())].to_vec();
            for _ in 0..rng.below(4000) {
                b.push(rng.next() as u8);
            }
            (name("noise"), b, Expect::Refused)
        }
        5 => {
            // a chunk/segment length that lies (PNG: IHDR/IDAT length; others: a header
            // word set to 0xFFFFFFFF)
            let mut b = base;
            let at = if fmt == ImageFormat::Png {
                [8, 33][rng.below(2)]
            } else {
                4 + rng.below(20)
            };
            put_be32(&mut b, at, u32::MAX - rng.below(1000) as u32);
            (name("len"), b, Expect::Either)
        }
        _ => {
            let b = match rng.below(3) {
                0 => Vec::new(),
                1 => b"GIF89a".to_vec(),
                _ => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            };
            (name("junk"), b, Expect::Refused)
        }
    }
}

/// Run `f` on a thread; `Err` when it panics or exceeds the limit.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(v) => Ok(v),
        Err(mpsc::RecvTimeoutError::Timeout) => Err("hung".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("panicked".into()),
    }
}

fn test_cfg(root: &Path) -> DataConfig {
    let mut c = cfg(root);
    c.image_size = 16;
    c.val_fraction = 0.0;
    c
}

#[test]
fn malformed_image_corpus_is_refused_or_decoded_within_limits_never_panics_or_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for j in 0..4u32 {
            let id = k as u32 * 10 + j;
            save(
                &root,
                &format!("train/{class}/ok{id}.png"),
                &img(24, 24, id),
            );
            save(
                &root,
                &format!("test/{class}/ok{id}.png"),
                &img(24, 24, 50 + id),
            );
        }
    }
    let mut rng = Rng(0x5eed_f022);
    let mut cases: Vec<(PathBuf, String, Expect)> = Vec::new();
    for k in 0..IMAGE_CASES {
        let (name, bytes, expect) = case(&mut rng, k);
        let rel = format!("train/{}/{name}", ["direct", "screen"][k % 2]);
        std::fs::write(root.join(&rel), bytes).unwrap();
        cases.push((root.join(&rel), rel, expect));
    }
    let c = test_cfg(&root);
    // 1. the predict/explain path, one file at a time
    let (mut refused, mut decoded) = (0, 0);
    let mut outcomes = Vec::new();
    for (path, rel, expect) in &cases {
        let (p, c2) = (path.clone(), c.clone());
        let out = bounded(move || {
            load_image_file(&p, &c2)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|why| panic!("{rel}: {why}"));
        match out {
            Err(msg) => {
                assert!(!msg.contains('\n') && !msg.is_empty(), "{rel}: {msg}");
                refused += 1;
                outcomes.push(false);
            }
            Ok(()) => {
                assert_eq!(*expect, Expect::Either, "{rel} was accepted");
                decoded += 1;
                outcomes.push(true);
            }
        }
    }
    // 2. data check and training's validation over the whole folder
    let c2 = c.clone();
    let report = bounded(move || check(&c2, Path::new("/")).map_err(|e| e.to_string()))
        .expect("check ends without panicking")
        .expect("check reports problems instead of failing");
    // ImageFolder lists only IMAGE_EXTENSIONS (no .gif): the GIF cases go through the
    // decode path above, and are reported as ignored files here.
    let listed = |rel: &str| {
        moirelab_data::IMAGE_EXTENSIONS
            .iter()
            .any(|e| rel.ends_with(&format!(".{e}")))
    };
    let decoded_listed = cases
        .iter()
        .zip(&outcomes)
        .filter(|((_, rel, _), ok)| **ok && listed(rel))
        .count();
    for (_, rel, expect) in cases.iter().filter(|(_, rel, _)| listed(rel)) {
        let named = report
            .problems
            .iter()
            .any(|p| p.path.as_deref() == Some(rel));
        if *expect == Expect::Refused {
            assert!(named, "{rel} not reported");
        }
    }
    assert!(report.has_errors());
    let mut skip = c.clone();
    skip.on_bad_image = OnBad::Skip;
    let opened = bounded(move || Dataset::open(&skip, Path::new("/")).map(|d| d.len()))
        .expect("open ends without panicking")
        .expect("skip opens the data set");
    assert_eq!(
        opened,
        16 + decoded_listed,
        "good images plus the undamaged-looking ones"
    );
    let c3 = c.clone();
    let e = bounded(move || Dataset::open(&c3, Path::new("/")).map(|d| d.len()))
        .expect("open ends")
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    eprintln!(
        "image corpus: {} cases, {refused} refused, {decoded} decoded within limits",
        cases.len()
    );
    assert_eq!(refused + decoded, IMAGE_CASES);
}

fn damage(text: &str, rng: &mut Rng) -> String {
    let mut b: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => {
                b.remove(at);
            }
            1 => b.insert(
                at,
                ['{', '}', '"', ',', ':', '\n', '\\', '\0', 'é'][rng.below(9)],
            ),
            2 => b.truncate(at),
            3 => {
                let line: String = b[..at].iter().collect();
                let dup = line.lines().last().unwrap_or("").to_string();
                b.extend(format!("\n{dup}\n").chars());
            }
            4 => {
                let s: String = b.iter().collect();
                let s = s.replacen(
                    [
                        "\"label\"",
                        "\"split\"",
                        "\"path\"",
                        "train",
                        "screen",
                        ".png",
                    ][rng.below(6)],
                    [
                        "\"lable\"",
                        "\"split\":1,\"x\"",
                        "\"path\":null,\"p\"",
                        "valid",
                        "paper",
                        "/../x",
                    ][rng.below(6)],
                    1,
                );
                b = s.chars().collect();
            }
            _ => b[at] = char::from(rng.below(128) as u8),
        }
    }
    b.into_iter().collect()
}

#[test]
fn damaged_manifests_give_an_error_or_a_report_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut json = String::new();
    let mut csv = String::from("path,label,split\n");
    for (k, class) in ["direct", "screen"].iter().enumerate() {
        for (s, split) in ["train", "val", "test"].iter().enumerate() {
            for j in 0..2u32 {
                let id = k as u32 * 100 + s as u32 * 10 + j;
                let rel = format!("images/{id}.png");
                save(root, &rel, &img(24, 24, id));
                json.push_str(&format!(
                    "{{\"path\":\"{rel}\",\"label\":\"{class}\",\"split\":\"{split}\"}}\n"
                ));
                csv.push_str(&format!("{rel},{class},{split}\n"));
            }
        }
    }
    let mut rng = Rng(0x00da_3a9e);
    let (mut errors, mut reports) = (0, 0);
    for k in 0..MANIFEST_CASES {
        let (name, text) = if k % 2 == 0 {
            ("m.jsonl", damage(&json, &mut rng))
        } else {
            ("m.csv", damage(&csv, &mut rng))
        };
        std::fs::write(root.join(name), &text).unwrap();
        let mut c = test_cfg(root);
        c.manifest = Some(name.into());
        let out = bounded(move || check(&c, Path::new("/")).map_err(|e| e.to_string()))
            .unwrap_or_else(|why| panic!("case {k} {why}:\n{text}"));
        match out {
            Err(msg) => {
                assert!(!msg.contains('\n') && !msg.is_empty(), "{msg}");
                errors += 1;
            }
            Ok(r) => {
                assert!(r.files > 0);
                reports += 1;
            }
        }
    }
    eprintln!("manifest corpus: {MANIFEST_CASES} cases, {errors} errors, {reports} reports");
    assert_eq!(errors + reports, MANIFEST_CASES);
}
