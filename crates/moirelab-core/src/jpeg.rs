//! The lossy half of baseline JPEG, without the bitstream.
//!
//! A JPEG round trip (encode, then decode) changes pixels only in its lossy steps: the
//! RGB → YCbCr transform, the 8×8 DCT, the quantisation by the quality-scaled tables and the
//! way back. Huffman coding in between is lossless, yet it was half the cost of the generator's
//! two round trips per image. [`round_trip`] runs the lossy steps directly: 4:4:4 (no chroma
//! subsampling, as the `image` crate's encoder wrote) or 4:2:0 (libjpeg's box downsampling and
//! triangle upsampling, as phone cameras and browsers write), the JPEG Annex K tables scaled by the
//! libjpeg quality formula, edge blocks padded by replicating the last row and column as
//! encoders do, YCbCr rounded to bytes on both sides as codecs hold it. Against a real
//! encoder + decoder (`jpeg-encoder` + `zune-jpeg`) it differs by 0.2–0.9 levels on average,
//! less than the `image` crate's encoder differs from that same pair (0.9–1.2), and it loses
//! the same amount (the tests check both).
//!
//! # Shapes
//! `rgb8` is `[h][w][3]` bytes; the result has the same shape.

/// JPEG Annex K luminance table, natural (row-major) order.
const LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, //
    12, 12, 14, 19, 26, 58, 60, 55, //
    14, 13, 16, 24, 40, 57, 69, 56, //
    14, 17, 22, 29, 51, 87, 80, 62, //
    18, 22, 37, 56, 68, 109, 103, 77, //
    24, 35, 55, 64, 81, 104, 113, 92, //
    49, 64, 78, 87, 103, 121, 120, 101, //
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// JPEG Annex K chrominance table, natural order.
const CHROMA: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, //
    18, 21, 26, 66, 99, 99, 99, 99, //
    24, 26, 56, 99, 99, 99, 99, 99, //
    47, 66, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99,
];

/// A base table scaled for `quality` (1–100) exactly as libjpeg's `jpeg_quality_scaling` and
/// `jpeg_add_quant_table` (baseline: entries clamped to 1..=255).
fn scaled(base: &[u16; 64], quality: u8) -> [f32; 64] {
    let q = u32::from(quality.clamp(1, 100));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    base.map(|b| ((u32::from(b) * scale + 50) / 100).clamp(1, 255) as f32)
}

/// A 64-entry table as 8 rows of 8 (the block's layout).
fn rows8(t: &[f32; 64]) -> [[f32; 8]; 8] {
    std::array::from_fn(|r| std::array::from_fn(|k| t[r * 8 + k]))
}

/// The orthonormal 8-point DCT-II matrix: `C[u][x] = c(u)/2 · cos((2x+1)uπ/16)`, c(0) = 1/√2.
/// The 2-D JPEG DCT of a block `X` is `C·X·Cᵀ`, its inverse `Cᵀ·F·C`.
fn dct_matrix() -> [[f32; 8]; 8] {
    let mut c = [[0.0f32; 8]; 8];
    for (u, row) in c.iter_mut().enumerate() {
        let cu = if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        for (x, v) in row.iter_mut().enumerate() {
            let a = (2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0;
            *v = (cu * 0.5 * a.cos()) as f32;
        }
    }
    c
}

/// `out = a · b` for 8×8 matrices (row-major); the inner loop runs over the 8 columns of `b`
/// so it vectorises.
#[inline(always)]
fn mul(a: &[[f32; 8]; 8], b: &[[f32; 8]; 8], out: &mut [[f32; 8]; 8]) {
    for (o, ar) in out.iter_mut().zip(a) {
        *o = [0.0; 8];
        for (&s, br) in ar.iter().zip(b) {
            for (ov, &bv) in o.iter_mut().zip(br) {
                *ov += s * bv;
            }
        }
    }
}

fn transpose(a: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
    let mut t = [[0.0f32; 8]; 8];
    for (i, r) in a.iter().enumerate() {
        for (j, &v) in r.iter().enumerate() {
            t[j][i] = v;
        }
    }
    t
}

/// Round to nearest (ties to even) for |v| < 2²²: `f32::round` is a libm call on the
/// baseline x86-64 target (no SSE4.1), and this runs for every sample and coefficient.
#[inline(always)]
fn rint(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³
    (v + MAGIC) - MAGIC
}

/// How a JPEG samples chroma: at full resolution (4:4:4) or at half resolution both ways
/// (4:2:0: the default of libjpeg and of phone cameras and browsers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    Full,
    Half,
}

impl Chroma {
    /// The usual name of the sampling: `4:4:4` or `4:2:0`.
    pub fn name(self) -> &'static str {
        match self {
            Chroma::Full => "4:4:4",
            Chroma::Half => "4:2:0",
        }
    }
}

/// Encode at `quality` and decode again, without the lossless entropy coding in between.
///
/// Works on three level-shifted YCbCr planes padded to whole blocks (edge replicated), so
/// the colour transforms are flat loops and every block row is 8 contiguous floats. With
/// [`Chroma::Half`] the chroma planes are averaged over 2×2 samples before the DCT and
/// brought back with the triangle ("fancy") upsampling, both as libjpeg does them.
///
/// # Panics
/// When `rgb8.len() != w·h·3` (a caller bug; the generator always passes whole images).
pub fn round_trip(w: usize, h: usize, rgb8: &[u8], quality: u8, chroma: Chroma) -> Vec<u8> {
    round_trip_impl(w, h, rgb8, quality, chroma)
}

/// The DCT, quantisation at table `q` (reciprocals `rq`) and inverse DCT of every 8×8 block
/// of a `pw`×`ph` plane (both multiples of 8), in place.
fn quantise_plane(p: &mut [f32], pw: usize, ph: usize, q: &[[f32; 8]; 8], rq: &[[f32; 8]; 8]) {
    let c = dct_matrix();
    let ct = transpose(&c);
    let (mut blk, mut t, mut f) = ([[0.0f32; 8]; 8], [[0.0f32; 8]; 8], [[0.0f32; 8]; 8]);
    for by in (0..ph).step_by(8) {
        for bx in (0..pw).step_by(8) {
            for (r, row) in blk.iter_mut().enumerate() {
                row.copy_from_slice(&p[(by + r) * pw + bx..(by + r) * pw + bx + 8]);
            }
            // F = C·X·Cᵀ, quantised and dequantised, then X' = Cᵀ·F'·C.
            mul(&c, &blk, &mut t);
            mul(&t, &ct, &mut f);
            // Row by row (fixed-size rows: no bounds checks, whole vectors).
            for ((fr, qr), rqr) in f.iter_mut().zip(q).zip(rq) {
                for ((v, &qk), &rk) in fr.iter_mut().zip(qr).zip(rqr) {
                    *v = rint(*v * rk) * qk;
                }
            }
            mul(&ct, &f, &mut t);
            mul(&t, &c, &mut blk);
            for (r, row) in blk.iter().enumerate() {
                p[(by + r) * pw + bx..(by + r) * pw + bx + 8].copy_from_slice(row);
            }
        }
    }
}

/// One chroma plane (`pw` wide, level-shifted byte values, `w`×`h` of them valid) through a
/// 4:2:0 JPEG, in place, as libjpeg does it:
/// - the encoder averages each 2×2 block of samples (`(sum + bias) >> 2`, the bias alternating
///   1, 2 along a row), the image edge replicated out to whole blocks of the half plane;
/// - the half plane goes through the DCT and quantisation;
/// - the decoder rounds it to bytes and upsamples it with the triangle filter (each output
///   sample 9/16 of its nearest half-plane sample, 3/16 of each next nearest and 1/16 of the
///   diagonal one, with libjpeg's rounding), the edges replicated.
fn half_chroma(
    p: &mut [f32],
    pw: usize,
    (w, h): (usize, usize),
    q: &[[f32; 8]; 8],
    rq: &[[f32; 8]; 8],
) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (qw, qh) = (cw.div_ceil(8) * 8, ch.div_ceil(8) * 8);
    let mut half = vec![0.0f32; qw * qh];
    for y in 0..qh {
        let (y0, y1) = ((2 * y).min(h - 1), (2 * y + 1).min(h - 1));
        for x in 0..qw {
            let (x0, x1) = ((2 * x).min(w - 1), (2 * x + 1).min(w - 1));
            let sum = p[y0 * pw + x0] + p[y0 * pw + x1] + p[y1 * pw + x0] + p[y1 * pw + x1];
            // (Σ(v + 128) + bias) >> 2, minus 128: the offsets cancel exactly.
            let bias = if x % 2 == 0 { 1.0 } else { 2.0 };
            half[y * qw + x] = ((sum + bias) * 0.25).floor();
        }
    }
    quantise_plane(&mut half, qw, qh, q, rq);
    // Decoded bytes (unsigned, as the upsampler sees them).
    let bytes: Vec<i32> = half
        .iter()
        .map(|&v| (rint(v) + 128.0).clamp(0.0, 255.0) as i32)
        .collect();
    let at = |y: usize, x: usize| bytes[y * qw + x];
    let mut sums = Vec::with_capacity(cw);
    for oy in 0..h {
        let i = oy / 2;
        // The nearer half-plane row and the farther one (above for even rows, below for odd).
        let j = if oy % 2 == 0 {
            i.saturating_sub(1)
        } else {
            (i + 1).min(ch - 1)
        };
        // The vertical pass once per half-plane column, then the horizontal one per pixel.
        sums.clear();
        sums.extend((0..cw).map(|x| 3 * at(i, x) + at(j, x)));
        for ox in 0..w {
            let k = ox / 2;
            let v = if ox % 2 == 0 {
                (3 * sums[k] + sums[k.saturating_sub(1)] + 8) >> 4
            } else {
                (3 * sums[k] + sums[(k + 1).min(cw - 1)] + 7) >> 4
            };
            p[oy * pw + ox] = (v - 128) as f32;
        }
    }
}

#[inline(always)]
fn round_trip_impl(w: usize, h: usize, rgb8: &[u8], quality: u8, chroma: Chroma) -> Vec<u8> {
    assert_eq!(rgb8.len(), w * h * 3, "round_trip: buffer is not {w}×{h}×3");
    let tables = [
        scaled(&LUMA, quality),
        scaled(&CHROMA, quality),
        scaled(&CHROMA, quality),
    ];
    let recip = tables.map(|t| rows8(&t.map(|q| 1.0 / q)));
    let tables = tables.map(|t| rows8(&t));
    let (pw, ph) = (w.div_ceil(8) * 8, h.div_ceil(8) * 8);
    // RGB → YCbCr bytes (JFIF; encoders hold YCbCr as bytes, so round as they do), level
    // shifted by −128, into planes padded by replicating the last column and row.
    let mut planes = [
        vec![0.0f32; pw * ph],
        vec![0.0f32; pw * ph],
        vec![0.0f32; pw * ph],
    ];
    {
        let [py, pcb, pcr] = &mut planes;
        for y in 0..h {
            let src = &rgb8[y * w * 3..(y + 1) * w * 3];
            let row = y * pw;
            for (x, p) in src.chunks_exact(3).enumerate() {
                let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
                py[row + x] = rint(0.299 * r + 0.587 * g + 0.114 * b) - 128.0;
                pcb[row + x] = rint(-0.168_736 * r - 0.331_264 * g + 0.5 * b);
                pcr[row + x] = rint(0.5 * r - 0.418_688 * g - 0.081_312 * b);
            }
        }
        for p in [&mut *py, &mut *pcb, &mut *pcr] {
            for y in 0..h {
                let last = p[y * pw + w - 1];
                p[y * pw + w..(y + 1) * pw]
                    .iter_mut()
                    .for_each(|v| *v = last);
            }
            for y in h..ph {
                p.copy_within((h - 1) * pw..h * pw, y * pw);
            }
        }
    }
    for (k, (p, (q, rq))) in planes.iter_mut().zip(tables.iter().zip(&recip)).enumerate() {
        if k > 0 && chroma == Chroma::Half {
            half_chroma(p, pw, (w, h), q, rq);
        } else {
            quantise_plane(p, pw, ph, q, rq);
        }
    }
    // Decoders produce YCbCr bytes, then convert to RGB bytes.
    let mut out = vec![0u8; rgb8.len()];
    let [py, pcb, pcr] = &planes;
    let byte = |v: f32| rint(v).clamp(-128.0, 127.0);
    for y in 0..h {
        let dst = &mut out[y * w * 3..(y + 1) * w * 3];
        let row = y * pw;
        for (x, o) in dst.chunks_exact_mut(3).enumerate() {
            let (yy, cb, cr) = (
                byte(py[row + x]) + 128.0,
                byte(pcb[row + x]),
                byte(pcr[row + x]),
            );
            let px = [
                yy + 1.402 * cr,
                yy - 0.344_136 * cb - 0.714_136 * cr,
                yy + 1.772 * cb,
            ];
            for (o, v) in o.iter_mut().zip(px) {
                // An integer in [0, 255]: the saturating `as u8` is exact here (going
                // through i32 gives the same byte but measured more instructions).
                *o = rint(v).clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A real codec round trip: `jpeg-encoder` (the same tables) and `zune-jpeg` via `image`.
    fn codec(w: usize, h: usize, rgb8: &[u8], quality: u8, chroma: Chroma) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut buf, quality);
        enc.set_sampling_factor(match chroma {
            Chroma::Full => jpeg_encoder::SamplingFactor::F_1_1,
            Chroma::Half => jpeg_encoder::SamplingFactor::F_2_2,
        });
        enc.encode(rgb8, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
            .unwrap()
            .into_rgb8()
            .into_raw()
    }

    /// The `image` crate's encoder (4:4:4, the same tables), decoded the same way.
    fn image_crate_codec(w: usize, h: usize, rgb8: &[u8], quality: u8) -> Vec<u8> {
        use image::ImageEncoder;
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
            .write_image(rgb8, w as u32, h as u32, image::ExtendedColorType::Rgb8)
            .unwrap();
        image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
            .unwrap()
            .into_rgb8()
            .into_raw()
    }

    /// Smooth gradients, hard edges, fine stripes and noise: the content the generator feeds
    /// its two round trips.
    fn test_image(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        let mut px = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                for k in 0..3 {
                    let smooth = 128.0
                        + 90.0 * ((x as f64 * 0.05 + k as f64).sin() * (y as f64 * 0.07).cos());
                    let edge = if (x / 13 + y / 9) % 2 == 0 {
                        40.0
                    } else {
                        -40.0
                    };
                    let stripes = if (x + 2 * y + k) % 3 == 0 { 15.0 } else { 0.0 };
                    let noise = (rng.f64() - 0.5) * 20.0;
                    px[(y * w + x) * 3 + k] =
                        (smooth + edge + stripes + noise).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        px
    }

    #[test]
    fn quality_scaling_follows_libjpeg() {
        // Quality 50 is the base table; 100 is all ones; 75 halves (rounding half up).
        assert_eq!(scaled(&LUMA, 50)[0], 16.0);
        assert!(scaled(&LUMA, 100).iter().all(|&q| q == 1.0));
        assert_eq!(scaled(&LUMA, 75)[0], 8.0);
        assert_eq!(scaled(&CHROMA, 75)[63], 50.0);
        assert_eq!(scaled(&LUMA, 1)[63], 255.0);
    }

    #[test]
    fn dct_matrix_is_orthonormal() {
        let c = dct_matrix();
        let mut p = [[0.0f32; 8]; 8];
        mul(&c, &transpose(&c), &mut p);
        for (i, r) in p.iter().enumerate() {
            for (j, &v) in r.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-6, "({i},{j}) {v}");
            }
        }
    }

    /// Mean absolute difference of two byte images.
    fn mad(a: &[u8], b: &[u8]) -> f64 {
        let sum: u64 = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y) as u64).sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn matches_real_encoders_as_closely_as_they_match_each_other() {
        // Sizes with and without partial edge blocks, qualities over the generator's ranges.
        for (w, h, seed) in [(64, 40, 1), (61, 37, 2), (128, 128, 3)] {
            let img = test_image(w, h, seed);
            for q in [75u8, 85, 95, 97, 100] {
                let ours = round_trip(w, h, &img, q, Chroma::Full);
                let real = codec(w, h, &img, q, Chroma::Full);
                let other = image_crate_codec(w, h, &img, q);
                // Two real codecs disagree by about a level (integer DCTs, rounding): ours
                // must be at least as close to one of them as the other one is.
                let (m_ours, m_codecs) = (mad(&ours, &real), mad(&other, &real));
                assert!(
                    m_ours <= m_codecs,
                    "{w}×{h} q{q}: |ours − codec| {m_ours:.3} > |codec − codec| {m_codecs:.3}"
                );
                // And it loses as much as the codec does (the loss is what the generator
                // relies on), several times more than the mismatch.
                let (l_ours, l_real) = (mad(&img, &ours), mad(&img, &real));
                assert!(
                    (l_ours - l_real).abs() <= (0.02 * l_real).max(0.05),
                    "{w}×{h} q{q}: loss {l_ours:.3} vs codec's {l_real:.3}"
                );
                assert!(
                    l_real > 1.5 * m_ours,
                    "{w}×{h} q{q}: loss {l_real} vs {m_ours}"
                );
            }
        }
    }

    /// libjpeg's round trip (Pillow, through `scripts/parity/jpeg.py`), or `None` when the
    /// Python checks are skipped.
    fn libjpeg(w: usize, h: usize, rgb8: &[u8], quality: u8, chroma: Chroma) -> Option<Vec<u8>> {
        let py = moirelab_testkit::python("the libjpeg 4:2:0 parity check")?;
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("in.raw"), dir.path().join("out.raw"));
        std::fs::write(&inp, rgb8).unwrap();
        let sub = if chroma == Chroma::Half { "2" } else { "0" };
        let res = std::process::Command::new(&py)
            .arg(moirelab_testkit::parity_script("jpeg.py"))
            .args(["--width", &w.to_string(), "--height", &h.to_string()])
            .args(["--quality", &quality.to_string(), "--subsampling", sub])
            .arg("--input")
            .arg(&inp)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
        assert!(
            res.status.success(),
            "scripts/parity/jpeg.py failed:\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
        Some(std::fs::read(&out).unwrap())
    }

    #[test]
    fn half_chroma_matches_libjpeg_and_loses_colour_detail() {
        // Sizes with odd edges and partial blocks of the half planes, and one smaller than a
        // block; the qualities of the camera and upload JPEGs.
        for (w, h, seed) in [(64, 40, 1), (61, 37, 2), (128, 128, 3), (9, 7, 4)] {
            let img = test_image(w, h, seed);
            for q in [40u8, 75, 95, 100] {
                let ours = round_trip(w, h, &img, q, Chroma::Half);
                let full = round_trip(w, h, &img, q, Chroma::Full);
                // Fine colour detail is lost at 4:2:0 and kept at 4:4:4 (at lower qualities
                // the quantisation of this noisy content dominates both).
                let (l_ours, l_full) = (mad(&img, &ours), mad(&img, &full));
                assert!(
                    q < 95 || l_ours > 1.3 * l_full,
                    "{w}×{h} q{q}: {l_ours:.3} vs 4:4:4 {l_full:.3}"
                );
                let Some(real) = libjpeg(w, h, &img, q, Chroma::Half) else {
                    continue;
                };
                // Within a level of libjpeg on average (its integer DCT and ours differ by
                // about that at 4:4:4), and losing what it loses. (`jpeg-encoder` + `zune-jpeg`
                // at 4:2:0 differ from libjpeg by about 3 levels: other resampling filters.)
                let m = mad(&ours, &real);
                let l_real = mad(&img, &real);
                assert!(m < 1.0, "{w}×{h} q{q}: |ours − libjpeg| {m:.3}");
                assert!(
                    (l_ours - l_real).abs() <= (0.03 * l_real).max(0.1),
                    "{w}×{h} q{q}: loss {l_ours:.3} vs libjpeg's {l_real:.3}"
                );
            }
        }
    }

    #[test]
    fn half_chroma_flattens_a_sub_pixel_stripe() {
        // Red, green and blue one-pixel columns (an RGB stripe panel seen at one sensor pixel
        // per sub-pixel): 4:2:0 averages the colours away, 4:4:4 keeps them.
        let (w, h) = (48, 32);
        let img: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let mut p = [40u8; 3];
                p[i % w % 3] = 220;
                p
            })
            .collect();
        let chroma_loss = |out: &[u8]| {
            let spread =
                |px: &[u8]| f64::from(*px.iter().max().unwrap() - *px.iter().min().unwrap());
            img.chunks_exact(3)
                .zip(out.chunks_exact(3))
                .map(|(a, b)| spread(a) - spread(b))
                .sum::<f64>()
                / (w * h) as f64
        };
        let half = chroma_loss(&round_trip(w, h, &img, 90, Chroma::Half));
        let full = chroma_loss(&round_trip(w, h, &img, 90, Chroma::Full));
        assert!(
            half > 60.0 && full < 0.2 * half,
            "4:2:0 {half:.1}, 4:4:4 {full:.1}"
        );
    }
}
