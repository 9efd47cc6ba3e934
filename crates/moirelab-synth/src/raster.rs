//! Float raster helpers: linear-light RGB buffers, separable blurs, bilinear sampling, area
//! downsampling, sRGB transfer, JPEG round trips and smooth value noise.
//!
//! # Shapes
//! [`Rgb`] is row-major interleaved `[h][w][3]` `f32` (linear light unless a function says
//! otherwise); [`Plane`] is row-major `[h][w]` `f32`.

use core::f32;
use moirelab_core::rng::Rng;

/// Interleaved RGB `f32` image.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    pub w: usize,
    pub h: usize,
    pub px: Vec<f32>,
}

/// Single-channel `f32` image.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub w: usize,
    pub h: usize,
    pub px: Vec<f32>,
}

impl Rgb {
    pub fn filled(w: usize, h: usize, c: [f32; 3]) -> Rgb {
        let mut px = Vec::with_capacity(w * h * 3);
        for _ in 0..w * h {
            px.extend_from_slice(&c);
        }
        Rgb { w, h, px }
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.w + x) * 3;
        [self.px[i], self.px[i + 1], self.px[i + 2]]
    }

    #[inline]
    pub fn set(&mut self, x: usize, y: usize, c: [f32; 3]) {
        let i = (y * self.w + x) * 3;
        self.px[i..i + 3].copy_from_slice(&c);
    }

    /// Alpha-blend colour `c` with coverage `a` in [0, 1].
    #[inline]
    pub fn blend(&mut self, x: usize, y: usize, c: [f32; 3], a: f32) {
        let i = (y * self.w + x) * 3;
        for k in 0..3 {
            self.px[i + k] += (c[k] - self.px[i + k]) * a;
        }
    }

    /// Bilinear sample at continuous coordinates (pixel centres at +0.5), clamped at edges.
    /// The reference the warp and the motion blur reproduce (they inline it).
    #[cfg(test)]
    pub fn sample(&self, x: f32, y: f32) -> [f32; 3] {
        let fx = (x - 0.5).clamp(0.0, (self.w - 1) as f32);
        let fy = (y - 0.5).clamp(0.0, (self.h - 1) as f32);
        let x0 = fx as usize;
        let y0 = fy as usize;
        let x1 = (x0 + 1).min(self.w - 1);
        let y1 = (y0 + 1).min(self.h - 1);
        let tx = fx - x0 as f32;
        let ty = fy - y0 as f32;
        let a = self.get(x0, y0);
        let b = self.get(x1, y0);
        let c = self.get(x0, y1);
        let d = self.get(x1, y1);
        let mut o = [0.0; 3];
        for k in 0..3 {
            let top = a[k] + (b[k] - a[k]) * tx;
            let bot = c[k] + (d[k] - c[k]) * tx;
            o[k] = top + (bot - top) * ty;
        }
        o
    }

    /// Box-filter down by an integer factor (area average). `w`, `h` must be multiples.
    pub fn downsample(&self, f: usize) -> Rgb {
        if f == 1 {
            return self.clone();
        }
        let (w, h) = (self.w / f, self.h / f);
        if f == 2 {
            return self.downsample2();
        }
        let mut out = vec![0.0f32; w * h * 3];
        let norm = 1.0 / (f * f) as f32;
        for y in 0..h {
            for sy in 0..f {
                let row =
                    &self.px[((y * f + sy) * self.w) * 3..((y * f + sy) * self.w + w * f) * 3];
                let orow = &mut out[y * w * 3..(y + 1) * w * 3];
                for x in 0..w {
                    for sx in 0..f {
                        let i = (x * f + sx) * 3;
                        orow[x * 3] += row[i];
                        orow[x * 3 + 1] += row[i + 1];
                        orow[x * 3 + 2] += row[i + 2];
                    }
                }
            }
        }
        out.iter_mut().for_each(|v| *v *= norm);
        Rgb { w, h, px: out }
    }

    /// [`Rgb::downsample`] by 2 with the same summation order (row 0: left, right; row 1:
    /// left, right; then × 1/4), so results are bit-identical, without the generic loops.
    fn downsample2(&self) -> Rgb {
        let (w, h) = (self.w / 2, self.h / 2);
        let mut out = vec![0.0f32; w * h * 3];
        let stride = self.w * 3;
        for y in 0..h {
            let r0 = &self.px[2 * y * stride..(2 * y + 1) * stride];
            let r1 = &self.px[(2 * y + 1) * stride..(2 * y + 2) * stride];
            let orow = &mut out[y * w * 3..(y + 1) * w * 3];
            for (x, o) in orow.chunks_exact_mut(3).enumerate() {
                let (a, b) = (&r0[x * 6..x * 6 + 6], &r1[x * 6..x * 6 + 6]);
                for k in 0..3 {
                    o[k] = (((0.0 + a[k]) + a[3 + k]) + b[k] + b[3 + k]) * 0.25;
                }
            }
        }
        Rgb { w, h, px: out }
    }

    /// Separable Gaussian blur with standard deviation `sigma` pixels (edges clamped).
    pub fn gaussian_blur(&mut self, sigma: f32) {
        if sigma < 0.05 {
            return;
        }
        let k = gaussian_kernel(sigma);
        convolve_rows(&mut self.px, self.w, self.h, 3, &k);
        convolve_cols(&mut self.px, self.w, self.h, 3, &k);
    }

    /// Linear motion blur of length `len` pixels at angle `theta` (bilinear taps).
    ///
    /// Every tap is the same sub-pixel shift for every pixel, so each one is a fixed 2×2
    /// bilinear stencil; clamping the stencil's indices at the borders gives exactly what
    /// clamping the sample coordinate did (the border pixel).
    pub fn motion_blur(&mut self, len: f32, theta: f32) {
        if len < 0.5 {
            return;
        }
        let taps = (len.ceil() as usize + 1).max(2);
        let (dx, dy) = (theta.cos(), theta.sin());
        let (w, h) = (self.w, self.h);
        let src = std::mem::replace(&mut self.px, vec![0.0; w * h * 3]);
        let norm = 1.0 / taps as f32;
        let stride = w * 3;
        let clampi = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        for t in 0..taps {
            let last = t == taps - 1;
            let s = (t as f32 / (taps - 1) as f32 - 0.5) * len;
            let (ox, oy) = (s * dx, s * dy);
            let (fx, fy) = (ox.floor(), oy.floor());
            let (tx, ty) = (ox - fx, oy - fy);
            let (ix, iy) = (fx as isize, fy as isize);
            // Source columns of the two horizontal taps for every output column.
            let cols: Vec<(usize, usize)> = (0..w as isize)
                .map(|x| (clampi(x + ix, w) * 3, clampi(x + ix + 1, w) * 3))
                .collect();
            for y in 0..h {
                let ya = clampi(y as isize + iy, h);
                let yb = clampi(y as isize + iy + 1, h);
                let ra = &src[ya * stride..(ya + 1) * stride];
                let rb = &src[yb * stride..(yb + 1) * stride];
                let out = &mut self.px[y * stride..(y + 1) * stride];
                for (o, &(xa, xb)) in out.chunks_exact_mut(3).zip(&cols) {
                    for k in 0..3 {
                        let top = ra[xa + k] + (ra[xb + k] - ra[xa + k]) * tx;
                        let bot = rb[xa + k] + (rb[xb + k] - rb[xa + k]) * tx;
                        let v = o[k] + (top + (bot - top) * ty);
                        // The last tap also applies the mean's 1/taps (same operations as
                        // a separate pass over the image afterwards).
                        o[k] = if last { v * norm } else { v };
                    }
                }
            }
        }
    }

    /// Linear light -> 8-bit sRGB.
    pub fn to_srgb8(&self) -> Vec<u8> {
        let lut = srgb8_encode_lut();
        self.px.iter().map(|&v| srgb8_encode(lut, v)).collect()
    }

    /// 8-bit sRGB -> linear light.
    pub fn from_srgb8(w: usize, h: usize, bytes: &[u8]) -> Rgb {
        let lut = srgb8_lut();
        Rgb {
            w,
            h,
            px: bytes.iter().map(|&b| lut[b as usize]).collect(),
        }
    }
}

impl Plane {
    pub fn new(w: usize, h: usize) -> Plane {
        Plane {
            w,
            h,
            px: vec![0.0; w * h],
        }
    }

    pub fn box_blur(&mut self, r: usize) {
        if r == 0 {
            return;
        }
        let k = vec![1.0 / (2 * r + 1) as f32; 2 * r + 1];
        convolve_rows(&mut self.px, self.w, self.h, 1, &k);
        convolve_cols(&mut self.px, self.w, self.h, 1, &k);
    }
}

pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    // A sampled Gaussian narrower than ~0.65 px loses variance (sampled at σ = 0.3
    // it is the identity to 1e-2): below that the 3-tap kernel with exactly σ² of variance
    // stands in; from 0.65 px on the sampled kernel is within 1 % of σ².
    if sigma < 0.65 {
        let a = 0.5 * sigma * sigma;
        return vec![a, 1.0 - 2.0 * a, a];
    }
    let r = (3.0 * sigma).ceil().max(1.0) as i32;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

fn convolve_rows(px: &mut [f32], w: usize, h: usize, ch: usize, k: &[f32]) {
    // Monomorphised per channel count so the tap loop over interleaved channels unrolls.
    match ch {
        1 => convolve_rows_ch::<1>(px, w, h, k),
        3 => convolve_rows_ch::<3>(px, w, h, k),
        _ => convolve_rows_any(px, w, h, ch, k),
    }
}

fn convolve_rows_ch<const CH: usize>(px: &mut [f32], w: usize, h: usize, k: &[f32]) {
    let r = k.len() / 2;
    let mut line = vec![0.0f32; (w + 2 * r) * CH];
    for y in 0..h {
        let row = &mut px[y * w * CH..(y + 1) * w * CH];
        for i in 0..r {
            line[i * CH..(i + 1) * CH].copy_from_slice(&row[..CH]);
            let j = r + w + i;
            line[j * CH..(j + 1) * CH].copy_from_slice(&row[(w - 1) * CH..]);
        }
        line[r * CH..(r + w) * CH].copy_from_slice(row);
        // One pass per tap over the whole interleaved row (a flat multiply-add that
        // vectorises); every sample still sums its taps in kernel order from +0, the first
        // tap as `0 + k·t` (bitwise what adding it to a zeroed row gave, without the zeroing
        // pass).
        let (&k0, rest) = k.split_first().expect("kernel has taps");
        for (o, &t) in row.iter_mut().zip(&line[..w * CH]) {
            *o = 0.0 + k0 * t;
        }
        for (j, &kv) in rest.iter().enumerate() {
            let j = j + 1;
            for (o, &t) in row.iter_mut().zip(&line[j * CH..(j * CH + w * CH)]) {
                *o += kv * t;
            }
        }
    }
}

fn convolve_rows_any(px: &mut [f32], w: usize, h: usize, ch: usize, k: &[f32]) {
    let r = k.len() / 2;
    // Edge-replicated copy of the row, so the inner loop has no clamping.
    let mut line = vec![0.0f32; (w + 2 * r) * ch];
    for y in 0..h {
        let row = &mut px[y * w * ch..(y + 1) * w * ch];
        for i in 0..r {
            line[i * ch..(i + 1) * ch].copy_from_slice(&row[..ch]);
            let j = r + w + i;
            line[j * ch..(j + 1) * ch].copy_from_slice(&row[(w - 1) * ch..]);
        }
        line[r * ch..(r + w) * ch].copy_from_slice(row);
        for (x, o) in row.chunks_exact_mut(ch).enumerate() {
            let win = &line[x * ch..(x + k.len()) * ch];
            for c in 0..ch {
                let mut acc = 0.0;
                for (j, &kv) in k.iter().enumerate() {
                    acc += kv * win[j * ch + c];
                }
                o[c] = acc;
            }
        }
    }
}

/// Column pass into a fresh buffer that replaces `px` (the source stays intact, so no copy of
/// it is needed).
fn convolve_cols(px: &mut Vec<f32>, w: usize, h: usize, ch: usize, k: &[f32]) {
    let r = (k.len() / 2) as isize;
    let stride = w * ch;
    let mut out: Vec<f32> = Vec::with_capacity(px.len());
    let (&k0, rest) = k.split_first().expect("kernel has taps");
    let row = |j: usize, y: isize| {
        let sy = (y + j as isize - r).clamp(0, h as isize - 1) as usize;
        &px[sy * stride..(sy + 1) * stride]
    };
    for y in 0..h as isize {
        // Taps in kernel order from +0; the first as `0 + k·s` (what adding it to a zeroed
        // row gave, without zeroing).
        let base = out.len();
        out.extend(row(0, y).iter().map(|&s| 0.0 + k0 * s));
        let orow = &mut out[base..];
        for (j, &kv) in rest.iter().enumerate() {
            for (o, s) in orow.iter_mut().zip(row(j + 1, y)) {
                *o += kv * s;
            }
        }
    }
    *px = out;
}

/// `⌊x⌋` for |x| < 2⁶³ without a libm call (`f64::floor` is one on the baseline x86-64
/// target, which lacks SSE4.1's `roundsd`); the stroke and sub-pixel loops call it per
/// segment and per sub-sample.
#[inline]
pub fn ffloor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// `⌈x⌉` for |x| < 2⁶³ without a libm call (see [`ffloor`]).
#[inline]
pub fn fceil(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t < x {
        t + 1.0
    } else {
        t
    }
}

// The polynomial below is evaluated with Estrin's scheme (independent sub-products) rather
// than Horner's, so its chains overlap in per-pixel loops; its accuracy (relative error
// ~1e-13) is far below what survives the f32 / 16-bit sRGB table.

/// `e^x` for `x ∈ [−700, 700]`: Cody–Waite reduction `x = k·ln2 + r`, |r| ≤ ln2/2, and the
/// Taylor polynomial to `r¹¹` (relative error below 1e-13).
#[inline]
pub fn fast_exp(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Round to nearest through the 1.5·2^52 trick (no libm call).
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let k = (x * std::f64::consts::LOG2_E + MAGIC) - MAGIC;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let lo = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0));
    let mid = (1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5_040.0));
    let hi = (1.0 / 40_320.0 + r * (1.0 / 362_880.0))
        + r2 * (1.0 / 3_628_800.0 + r * (1.0 / 39_916_800.0));
    let p = lo + r4 * mid + r8 * hi;
    p * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// `v^g` for `v ∈ [0, 1]` and `g > 0` in `f32` (relative error below 2e-6 for `v ≥ 1e-3`,
/// growing with f32's resolution of `g·log2 v` to ~1e-5 near 1e-30; results below 2^-126 are
/// returned as 2^-126): `2^(g·log2 v)` with `log2` from the `atanh` series to `s⁹`
/// (|s| ≤ 0.172) and `2^r`, |r| ≤ ½, from the Taylor series of `e^(r·ln2)` to degree 6.
/// Branch-free so the display tone loop vectorises (libm `pow` per channel dominated it).
#[inline]
pub fn pow01_f32(v: f32, g: f32) -> f32 {
    let x = v.max(f32::MIN_POSITIVE);
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = (e + i32::from(big)) as f32;
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let ln_m = 2.0 * s * (1.0 + z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z / 9.0))));
    let l2 = (g * (ln_m * std::f32::consts::LOG2_E + e)).max(-126.0);
    // Round to nearest through the 1.5·2^23 trick.
    const MAGIC: f32 = 12_582_912.0;
    let k = (l2 + MAGIC) - MAGIC;
    let y = (l2 - k) * std::f32::consts::LN_2;
    let p = 1.0
        + y * (1.0
            + y * (0.5 + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0 + y / 720.0)))));
    let r = p * f32::from_bits(((k as i32 + 127) as u32) << 23);
    if v <= 0.0 {
        0.0
    } else {
        r
    }
}

/// `cos(2π·t)` for any finite `t` (|t| < 2^51) given in turns: exact reduction to a quarter
/// turn and the even Taylor polynomial to `x¹⁴` on [0, π/2] (error below 1e-10).
#[inline]
pub fn cos_turns(t: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let a = (t - ((t + MAGIC) - MAGIC)).abs();
    let flip = a > 0.25;
    let b = if flip { 0.5 - a } else { a };
    let x = std::f64::consts::TAU * b;
    let z = x * x;
    let z2 = z * z;
    let z4 = z2 * z2;
    let p = (1.0 - 0.5 * z)
        + z2 * (1.0 / 24.0 - z * (1.0 / 720.0))
        + z4 * ((1.0 / 40_320.0 - z * (1.0 / 3_628_800.0))
            + z2 * (1.0 / 479_001_600.0 - z * (1.0 / 87_178_291_200.0)));
    if flip {
        -p
    } else {
        p
    }
}

/// `sin(2π·t)` in turns (see [`cos_turns`]).
#[inline]
pub fn sin_turns(t: f64) -> f64 {
    cos_turns(t - 0.25)
}

/// Fill `out` with unit-variance camera noise, one 64-bit draw per value: the sum of the
/// draw's four 16-bit lanes (Irwin–Hall, n = 4), centred and scaled. Mean 0 and variance 1 as
/// N(0, 1), tails cut at ±3.46 (excess kurtosis −0.3). After the signal-dependent scaling,
/// the camera JPEG and 8-bit quantisation that shape difference is invisible, and the noise
/// stage runs 3× faster than with Box–Muller (two draws, a logarithm, a square root and a
/// sine per pair).
pub fn fill_noise(rng: &mut Rng, out: &mut [f32]) {
    // Each lane is uniform on {0, …, 65535}: mean 32767.5, variance (65536² − 1)/12.
    const MEAN: f32 = 4.0 * 32_767.5;
    let inv_sd = (1.0 / (4.0 * (65_536.0f64 * 65_536.0 - 1.0) / 12.0).sqrt()) as f32;
    for o in out.iter_mut() {
        let r = rng.next_u64();
        let sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        *o = (sum as f32 - MEAN) * inv_sd;
    }
}

#[inline]
pub fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

#[inline]
pub fn linear_to_srgb(v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// Linear light -> 8-bit sRGB table with 65 536 entries (exact rounding of the transfer
/// function at table points; `powf` per pixel dominated the camera stage otherwise). Fetched
/// once per image: a `OnceLock` access per value showed up in profiles.
fn srgb8_encode_lut() -> &'static [u8; 65536] {
    static LUT: std::sync::OnceLock<Box<[u8; 65536]>> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = Box::new([0u8; 65536]);
        for (i, v) in t.iter_mut().enumerate() {
            *v = (linear_to_srgb(i as f32 / 65535.0) * 255.0 + 0.5) as u8;
        }
        t
    })
}

#[inline]
fn srgb8_encode(lut: &[u8; 65536], v: f32) -> u8 {
    // The clamp keeps the index within 0..=65535, so the lookup never fails its bounds check.
    lut[((v.clamp(0.0, 1.0) * 65535.0 + 0.5) as usize).min(65535)]
}

pub fn srgb8_lut() -> [f32; 256] {
    let mut t = [0.0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = srgb_to_linear(i as f32 / 255.0);
    }
    t
}

/// sRGB colour given as 0..255 bytes -> linear.
pub fn lin(c: [u8; 3]) -> [f32; 3] {
    c.map(|v| srgb_to_linear(v as f32 / 255.0))
}

/// sRGB bytes of a colour given in HSV (`h` in turns, `s`, `v` in [0, 1]).
pub fn hsv(h: f64, s: f64, v: f64) -> [u8; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let c = v * s;
    let x = c * (1.0 - (h6 % 2.0 - 1.0).abs());
    let (r, g, b) = match h6 as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// Smooth value noise in [0, 1]: a `gx`×`gy` lattice of random values, bicubic-smoothstep
/// interpolated. Cheap low-frequency texture for paper, desks and patchy envelopes.
#[derive(Debug, Clone)]
pub struct ValueNoise {
    gx: usize,
    gy: usize,
    v: Vec<f32>,
}

impl ValueNoise {
    pub fn new(rng: &mut Rng, gx: usize, gy: usize) -> ValueNoise {
        let v = (0..(gx + 1) * (gy + 1)).map(|_| rng.f32()).collect();
        ValueNoise { gx, gy, v }
    }

    /// Values on a separable grid: `out[j·us.len() + i] == self.at(us[i], vs[j])` exactly
    /// (lattice cells and smoothstep weights are computed once per column and per row instead
    /// of once per pixel).
    pub fn grid(&self, us: &[f32], vs: &[f32]) -> Vec<f32> {
        let cell = |u: f32, g: usize| {
            let x = u.clamp(0.0, 1.0) * g as f32;
            let x0 = (x as usize).min(g - 1);
            (x0, smooth(x - x0 as f32))
        };
        let cols: Vec<(usize, f32)> = us.iter().map(|&u| cell(u, self.gx)).collect();
        let s = self.gx + 1;
        // Every lattice row interpolated along x once per column: a pixel's `top` and `bot`
        // are two of these (the same values), leaving one lerp per pixel.
        let along_x: Vec<Vec<f32>> = self
            .v
            .chunks_exact(s)
            .map(|r| {
                cols.iter()
                    .map(|&(x0, tx)| r[x0] + (r[x0 + 1] - r[x0]) * tx)
                    .collect()
            })
            .collect();
        let mut out = Vec::with_capacity(us.len() * vs.len());
        for &v in vs {
            let (y0, ty) = cell(v, self.gy);
            let (r0, r1) = (&along_x[y0], &along_x[y0 + 1]);
            out.extend(r0.iter().zip(r1).map(|(&top, &bot)| top + (bot - top) * ty));
        }
        out
    }

    /// `u`, `v` in [0, 1] across the lattice (the reference [`ValueNoise::grid`] is tested
    /// against).
    #[cfg(test)]
    pub fn at(&self, u: f32, v: f32) -> f32 {
        let x = u.clamp(0.0, 1.0) * self.gx as f32;
        let y = v.clamp(0.0, 1.0) * self.gy as f32;
        let x0 = (x as usize).min(self.gx - 1);
        let y0 = (y as usize).min(self.gy - 1);
        let tx = smooth(x - x0 as f32);
        let ty = smooth(y - y0 as f32);
        let s = self.gx + 1;
        let p = |i: usize, j: usize| self.v[j * s + i];
        let top = p(x0, y0) + (p(x0 + 1, y0) - p(x0, y0)) * tx;
        let bot = p(x0, y0 + 1) + (p(x0 + 1, y0 + 1) - p(x0, y0 + 1)) * tx;
        top + (bot - top) * ty
    }
}

#[inline]
fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests;
