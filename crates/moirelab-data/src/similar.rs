//! Near-duplicate detection. A test photo that is a re-encoded, resized or lightly retouched
//! copy of a training photo inflates test metrics as much as an identical copy does, but has
//! other pixels, so the content hash of `decode.rs` misses it. Every decoded image gets a
//! perceptual hash here, and the data check reports a later-split image whose hash is within
//! [`NEAR_BITS`] of an earlier split's.
//!
//! The hash: luma, area-averaged to 32 × 32 (whatever the size and aspect; a side above 128
//! pixels is first shrunk to 128 by a fast box filter), its 2-D DCT-II,
//! the 16 × 16 lowest frequencies without the mean (255 coefficients), each bit set when its
//! coefficient is above their median. Only the structure of the picture counts: its size, a
//! uniform brightness change, JPEG and resampling noise barely move the low frequencies.
//! Measured on 4800 generated 128-px photos (11.5 M pairs of distinct photos that all show
//! the same card layout): no pair within 20 bits, one within 24. Copies of 150 of them differ
//! by at most 14 bits re-encoded as JPEG quality 50, 10 halved, 4 doubled, 16 after a gamma of
//! 0.8 (docs/FORMATS.md, "Duplicates and near-duplicates across splits").

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Side of the thumbnail the hash is computed on.
const THUMB: usize = 32;
/// Side of the block of low frequencies kept (its DC term dropped).
const LOW: usize = 16;
/// Bits in a hash: `LOW² − 1`.
pub const HASH_BITS: u32 = (LOW * LOW - 1) as u32;
/// Two images whose hashes differ in at most this many bits are near-duplicates.
pub const NEAR_BITS: u32 = 20;
/// A thumbnail whose luma varies less than this (standard deviation, 0–255 scale) has no
/// structure to compare; such an image gets no hash.
const FLAT_STD: f64 = 1.0;

/// A perceptual hash: [`HASH_BITS`] bits, row-major over the low-frequency block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PerceptualHash(pub [u64; 4]);

impl PerceptualHash {
    /// Number of bits in which the two hashes differ.
    pub fn distance(&self, other: &PerceptualHash) -> u32 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }
}

/// Weights of an area-average resampling from `n` samples to `m`: for output `i`, the first
/// input index and the share of each input sample in `[i·n/m, (i+1)·n/m)`.
fn area_weights(n: usize, m: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = n as f64 / m as f64;
    (0..m)
        .map(|i| {
            let (lo, hi) = (i as f64 * scale, (i + 1) as f64 * scale);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).clamp(first + 1, n);
            let w = (first..last)
                .map(|x| ((x + 1) as f64).min(hi) - (x as f64).max(lo))
                .map(|overlap| overlap.max(0.0) / scale)
                .collect();
            (first, w)
        })
        .collect()
}

/// Larger images are first shrunk to at most this side by the image crate's fast integer
/// box filter, so that a 12-megapixel photo costs milliseconds, not a float pass over every
/// pixel (×1.6 the time of opening such a data set otherwise).
const PRESHRINK: u32 = 128;

/// The image's hash, `None` for an image without structure (flat at the thumbnail's scale).
pub(crate) fn perceptual_hash(rgb: &RgbImage) -> Option<PerceptualHash> {
    if rgb.width() > PRESHRINK || rgb.height() > PRESHRINK {
        let (w, h) = (rgb.width().min(PRESHRINK), rgb.height().min(PRESHRINK));
        return area_hash(&image::imageops::thumbnail(rgb, w, h));
    }
    area_hash(rgb)
}

/// [`perceptual_hash`] on an image of at most [`PRESHRINK`] pixels a side.
fn area_hash(rgb: &RgbImage) -> Option<PerceptualHash> {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return None;
    }
    let luma: Vec<f64> = rgb
        .pixels()
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect();
    // rows first (h × THUMB), then columns (THUMB × THUMB)
    let wx = area_weights(w, THUMB);
    let mut rows = vec![0.0; h * THUMB];
    for y in 0..h {
        let line = &luma[y * w..(y + 1) * w];
        for (i, (first, ws)) in wx.iter().enumerate() {
            rows[y * THUMB + i] = ws.iter().zip(&line[*first..]).map(|(a, b)| a * b).sum();
        }
    }
    let wy = area_weights(h, THUMB);
    let mut thumb = [[0.0f64; THUMB]; THUMB];
    for (j, (first, ws)) in wy.iter().enumerate() {
        for (k, wk) in ws.iter().enumerate() {
            let row = &rows[(first + k) * THUMB..(first + k + 1) * THUMB];
            for (t, r) in thumb[j].iter_mut().zip(row) {
                *t += wk * r;
            }
        }
    }
    let n = (THUMB * THUMB) as f64;
    let mean = thumb.iter().flatten().sum::<f64>() / n;
    let var = thumb
        .iter()
        .flatten()
        .map(|v| (v - mean).powi(2))
        .sum::<f64>()
        / n;
    if var.sqrt() < FLAT_STD {
        return None;
    }
    // DCT-II basis: c[u][x] = cos(π (2x + 1) u / 2N), u < LOW
    let mut c = [[0.0f64; THUMB]; LOW];
    for (u, cu) in c.iter_mut().enumerate() {
        for (x, v) in cu.iter_mut().enumerate() {
            *v = (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * THUMB) as f64).cos();
        }
    }
    // along x: t[y][u] = Σ_x thumb[y][x] c[u][x]; then along y: d[v][u] = Σ_y c[v][y] t[y][u]
    let mut t = [[0.0f64; LOW]; THUMB];
    for (ty, row) in t.iter_mut().zip(&thumb) {
        for (u, tv) in ty.iter_mut().enumerate() {
            *tv = row.iter().zip(&c[u]).map(|(a, b)| a * b).sum();
        }
    }
    let mut coef = Vec::with_capacity(LOW * LOW - 1);
    for cv in &c {
        for u in 0..LOW {
            coef.push(t.iter().zip(cv).map(|(ty, b)| ty[u] * b).sum::<f64>());
        }
    }
    coef.remove(0); // the mean
    let mut sorted = coef.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let mut bits = [0u64; 4];
    for (k, v) in coef.iter().enumerate() {
        if *v > median {
            bits[k / 64] |= 1 << (k % 64);
        }
    }
    Some(PerceptualHash(bits))
}

impl PerceptualHash {
    /// 64 hex digits, the first word first.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|w| format!("{w:016x}")).collect()
    }

    /// The inverse of [`PerceptualHash::to_hex`]; `None` for anything else.
    pub fn from_hex(s: &str) -> Option<PerceptualHash> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut w = [0u64; 4];
        for (k, x) in w.iter_mut().enumerate() {
            *x = u64::from_str_radix(&s[16 * k..16 * (k + 1)], 16).ok()?;
        }
        Some(PerceptualHash(w))
    }
}

/// The perceptual hashes of the images a run trained on, kept in its run folder
/// (`data-hashes.json`), so that data sets evaluated later can be checked for copies of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HashList {
    pub version: u32,
    pub images: Vec<HashedImage>,
}

/// One image of a [`HashList`]: its split, its path in the data set and its hash (hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HashedImage {
    pub split: String,
    pub path: String,
    pub phash: String,
}

impl HashList {
    pub const VERSION: u32 = 1;

    /// `(position in images, hash)` of every entry with a readable hash.
    pub fn hashes(&self) -> Vec<(usize, PerceptualHash)> {
        self.images
            .iter()
            .enumerate()
            .filter_map(|(k, im)| Some((k, PerceptualHash::from_hex(&im.phash)?)))
            .collect()
    }
}

/// Bits of the hash split into `NEAR_BITS + 1` chunks of this many bits (the last 3 bits
/// are in none): two hashes within `NEAR_BITS` agree on at least one whole chunk.
const CHUNK_BITS: usize = HASH_BITS as usize / (NEAR_BITS as usize + 1);

/// Chunk `c` of the hash: bits `[c·CHUNK_BITS, (c+1)·CHUNK_BITS)`.
fn chunk(h: &PerceptualHash, c: usize) -> u16 {
    let start = c * CHUNK_BITS;
    let (w, b) = (start / 64, start % 64);
    let mut v = h.0[w] >> b;
    if b + CHUNK_BITS > 64 {
        v |= h.0[w + 1] << (64 - b);
    }
    (v & ((1 << CHUNK_BITS) - 1)) as u16
}

/// For every image of `later` (index, hash) the closest image of `earlier` within
/// [`NEAR_BITS`]: `(later index, earlier index, distance)`, in `later`'s order; a tie goes
/// to the earlier image listed first. Only images that share a chunk are compared
/// (pigeonhole: a pair within `NEAR_BITS` shares one), so a data set of a million images
/// costs seconds, not the hours of comparing every pair.
pub fn near_copies(
    later: &[(usize, PerceptualHash)],
    earlier: &[(usize, PerceptualHash)],
) -> Vec<(usize, usize, u32)> {
    let chunks = NEAR_BITS as usize + 1;
    let mut index: HashMap<(u8, u16), Vec<u32>> = HashMap::new();
    for (k, (_, h)) in earlier.iter().enumerate() {
        for c in 0..chunks {
            index
                .entry((c as u8, chunk(h, c)))
                .or_default()
                .push(k as u32);
        }
    }
    later
        .par_iter()
        .filter_map(|(j, hj)| {
            (0..chunks)
                .filter_map(|c| index.get(&(c as u8, chunk(hj, c))))
                .flatten()
                .map(|&k| (hj.distance(&earlier[k as usize].1), k))
                .filter(|(d, _)| *d <= NEAR_BITS)
                .min()
                .map(|(d, k)| (*j, earlier[k as usize].0, d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::FilterType;
    use image::Rgb;

    /// Structure at every scale the hash reads: a sum of seeded plane waves of 1–12 cycles
    /// per image side.
    fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut rng = moirelab_core::rng::Rng::derive(u64::from(seed), &[7]);
        let waves: Vec<[f64; 4]> = (0..12)
            .map(|_| {
                let f = 1.0 + 11.0 * rng.f64();
                let a = std::f64::consts::TAU * rng.f64();
                [
                    f * a.cos(),
                    f * a.sin(),
                    std::f64::consts::TAU * rng.f64(),
                    20.0 / f.sqrt(),
                ]
            })
            .collect();
        RgbImage::from_fn(w, h, |x, y| {
            let (u, v) = (x as f64 / w as f64, y as f64 / h as f64);
            let l: f64 = 128.0
                + waves
                    .iter()
                    .map(|[fx, fy, p, a]| a * (std::f64::consts::TAU * (fx * u + fy * v) + p).sin())
                    .sum::<f64>();
            let l = l.clamp(0.0, 255.0) as u8;
            Rgb([l, l / 2 + 40, 255 - l])
        })
    }

    fn hash(im: &RgbImage) -> PerceptualHash {
        perceptual_hash(im).expect("structured image")
    }

    #[test]
    fn copies_are_near_and_other_pictures_are_not() {
        let a = picture(120, 90, 3);
        let ha = hash(&a);
        // resized both ways and re-encoded as JPEG
        let half = image::imageops::resize(&a, 60, 45, FilterType::Triangle);
        let double = image::imageops::resize(&a, 240, 180, FilterType::CatmullRom);
        let mut jpg = Vec::new();
        image::DynamicImage::ImageRgb8(a.clone())
            .write_to(
                &mut std::io::Cursor::new(&mut jpg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let jpg = image::load_from_memory(&jpg).unwrap().to_rgb8();
        let brighter = RgbImage::from_fn(120, 90, |x, y| {
            let p = a.get_pixel(x, y);
            Rgb(p.0.map(|c| c.saturating_add(12)))
        });
        for (name, copy) in [
            ("half", half),
            ("double", double),
            ("jpeg", jpg),
            ("brighter", brighter),
        ] {
            let d = ha.distance(&hash(&copy));
            assert!(d <= NEAR_BITS / 2, "{name}: {d} bits");
        }
        for seed in [4, 5, 11, 20] {
            let d = ha.distance(&hash(&picture(120, 90, seed)));
            assert!(d > 2 * NEAR_BITS, "seed {seed}: {d} bits");
        }
    }

    #[test]
    fn a_flat_image_has_no_hash_and_half_the_bits_are_set() {
        assert_eq!(
            perceptual_hash(&RgbImage::from_pixel(40, 40, Rgb([90; 3]))),
            None
        );
        let h = hash(&picture(64, 64, 1));
        let ones: u32 = h.0.iter().map(|w| w.count_ones()).sum();
        assert_eq!(ones, HASH_BITS / 2, "bits above the median of 255");
        assert_eq!(h.0[3] >> 63, 0, "bit 255 is never used");
    }

    #[test]
    fn area_weights_sum_to_one_up_and_down() {
        for (n, m) in [(100, 32), (32, 32), (7, 32), (33, 32)] {
            for (first, w) in area_weights(n, m) {
                assert!(first + w.len() <= n);
                assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{n}->{m}");
            }
        }
    }

    #[test]
    fn near_copies_keeps_the_closest_under_the_limit() {
        let h = |bits: u64| PerceptualHash([bits, 0, 0, 0]);
        let earlier = [(0, h(0b1111)), (1, h(0b0111)), (2, h(u64::MAX))];
        let later = [(5, h(0b0011)), (6, h(u64::MAX >> 1))];
        assert_eq!(near_copies(&later, &earlier), vec![(5, 1, 1), (6, 2, 1)]);
        let far = [(7, PerceptualHash([u64::MAX; 4]))];
        assert!(near_copies(&far, &earlier[..2]).is_empty());
    }

    /// The chunk index finds exactly what comparing every pair finds: random hashes, some of
    /// them copies of an earlier one with 0 to 30 bits flipped anywhere (chunk edges included).
    #[test]
    fn the_chunk_index_agrees_with_comparing_every_pair() {
        let mut rng = moirelab_core::rng::Rng::derive(5, &[1]);
        let mut random = || {
            let mut w = [0u64; 4];
            for x in &mut w {
                *x =
                    (rng.f64() * 2f64.powi(32)) as u64 | ((rng.f64() * 2f64.powi(32)) as u64) << 32;
            }
            w[3] &= u64::MAX >> 1;
            PerceptualHash(w)
        };
        let earlier: Vec<(usize, PerceptualHash)> = (0..400).map(|i| (i, random())).collect();
        let mut later = Vec::new();
        for (k, (_, e)) in earlier.iter().enumerate().take(300) {
            let mut h = if k % 2 == 0 { *e } else { random() };
            for b in 0..(k % 31) {
                let bit = (b * 37 + k * 11) % HASH_BITS as usize;
                h.0[bit / 64] ^= 1 << (bit % 64);
            }
            later.push((1000 + k, h));
        }
        let brute: Vec<(usize, usize, u32)> = later
            .iter()
            .filter_map(|(j, hj)| {
                earlier
                    .iter()
                    .map(|(i, hi)| (hj.distance(hi), *i))
                    .filter(|(d, _)| *d <= NEAR_BITS)
                    .min()
                    .map(|(d, i)| (*j, i, d))
            })
            .collect();
        let found = near_copies(&later, &earlier);
        assert_eq!(found, brute);
        // the copies with at most NEAR_BITS flips, and nothing else
        assert_eq!(
            found.len(),
            (0..300).filter(|k| k % 2 == 0 && k % 31 <= 20).count()
        );
    }
}
