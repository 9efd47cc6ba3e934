//! The camera both classes are photographed with: a Bayer sensor behind a lens, and a phone's
//! image processing (white balance, demosaicing, tone, sharpening, JPEG) followed by the
//! resize to the data set's output size.
//!
//! # Shapes
//! The sensor grid is `[ws][ws]` with `ws = round(sensor_scale · size)`; the raw mosaic is a
//! [`Plane`] of linear light, one colour per site; demosaiced images are [`Rgb`]; the result
//! is `[size][size][3]` sRGB bytes.

use crate::config::{GenConfig, Holdout};
use crate::raster::{fill_noise, linear_to_srgb, Plane, Rgb};
use crate::sampling::{log_uniform, log_uniform_band, pick, Hold};
use moirelab_core::jpeg::Chroma;
use moirelab_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// Demosaicing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Demosaic {
    /// Mean of the nearest sites of the missing colour (its 2 or 4 neighbours in the 3×3).
    Bilinear,
    /// Malvar–He–Cutler (2004) gradient-corrected linear 5×5 filters.
    Malvar,
}

impl Demosaic {
    pub const ALL: [Demosaic; 2] = [Demosaic::Bilinear, Demosaic::Malvar];
    pub fn name(self) -> &'static str {
        match self {
            Demosaic::Bilinear => "bilinear",
            Demosaic::Malvar => "malvar",
        }
    }
    pub fn parse(s: &str) -> Option<Demosaic> {
        Demosaic::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// Resampling filters of the final resize (sensor grid → output size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Exact pixel-area average (PIL BOX, OpenCV INTER_AREA).
    Area,
    /// Anti-aliased triangle (PIL BILINEAR).
    Triangle,
    /// Anti-aliased Keys cubic, a = −0.5 (PIL BICUBIC).
    Bicubic,
    /// Bilinear interpolation without anti-aliasing (OpenCV INTER_LINEAR): aliases.
    Bilinear,
}

impl Resize {
    pub const ALL: [Resize; 4] = [
        Resize::Area,
        Resize::Triangle,
        Resize::Bicubic,
        Resize::Bilinear,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Resize::Area => "area",
            Resize::Triangle => "triangle",
            Resize::Bicubic => "bicubic",
            Resize::Bilinear => "bilinear",
        }
    }
    pub fn parse(s: &str) -> Option<Resize> {
        Resize::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// The camera of one sample (same distributions for both classes).
#[derive(Debug, Clone)]
pub(crate) struct CameraParams {
    /// Sensor pixels per output pixel.
    pub(crate) scale: f64,
    /// Gaussian lens blur (optics, and defocus when `defocus` is set), sensor pixels.
    pub(crate) blur: f64,
    /// Defocus σ in output pixels (`defocus-prob`), already part of `blur`.
    pub(crate) defocus: Option<f64>,
    pub(crate) motion_len: f64,
    pub(crate) motion_angle: f64,
    /// Light-sensitive fraction of a sensor pixel's side.
    pub(crate) aperture: f64,
    /// Bayer phase (RGGB, GRBG, GBRG, BGGR).
    pub(crate) phase: [usize; 2],
    /// Raw noise variance `a·x + b` per sensor pixel.
    pub(crate) noise_a: f64,
    pub(crate) noise_b: f64,
    pub(crate) wb: [f64; 3],
    pub(crate) exposure_ev: f64,
    /// Exposure time, seconds (what the rolling shutter integrates a PWM panel over).
    pub(crate) shutter: f64,
    pub(crate) demosaic: Demosaic,
    pub(crate) contrast: f32,
    pub(crate) saturation: f32,
    /// Unsharp mask `(σ sensor px, amount)`; amount 0 = off.
    pub(crate) sharpen: (f32, f32),
    pub(crate) quality: u8,
    /// The camera JPEG's chroma sampling (`jpeg-420-prob`).
    pub(crate) chroma: Chroma,
    pub(crate) resize: Resize,
    /// A second JPEG at the output size (an upload), for some images of both classes.
    pub(crate) upload_q: Option<u8>,
    /// The upload JPEG's chroma sampling (`jpeg-420-prob`, drawn apart from the camera's).
    pub(crate) upload_chroma: Chroma,
}

impl CameraParams {
    /// Ranges (and why):
    /// - scale 1.25–3 sensor px per output px (knob `sensor-scale-min/max`, accepted 1–8):
    ///   the data set's size is a 1.25–3× downscale of the camera frame; a phone's 12 MP
    ///   shrunk to 128 px is far more, but photos from larger sensors are easier, not new
    ///   (BENCHMARKS.md, shift protocol: 0.98 on 3–4.5 for a detector trained on 1.25–3),
    ///   while training on 1.25–5 costs the 1.25–3 photos 0.03 on the same data budget.
    /// - lens blur σ 0.3–0.8 sensor px (knob `lens-sigma-min/max`, accepted 0.1–3): a phone
    ///   lens's MTF at Nyquist is 0.2–0.6; softer lenses, small apertures and the ISP's
    ///   noise reduction reach σ 1.5.
    /// - noise a 1e-4–3e-3 (log; knob `noise-min/max`): ISO 50–1600 on a small sensor,
    ///   before the downscale averages it.
    /// - shutter 1/4000–1/30 s (log): bright screens and daylight to dim rooms.
    /// - sharpening on 3 images in 4 (σ 0.6–1.5 px, amount 0.2–1.2), JPEG q 80–97; one
    ///   image in 4 is JPEG'd again at the output size (q 70–95), as an upload would be
    ///   (knobs `upload-prob`, `upload-q-min/max`).
    pub(crate) fn draw(rng: &mut Rng, cfg: &GenConfig, hold: Hold) -> CameraParams {
        let k = &cfg.knobs;
        let (scale_band, held_demosaic, held_resize) = match k.holdout {
            Holdout::SensorScale(a, b) => (Some((a, b)), None, None),
            Holdout::Demosaic(d) => (None, Some(d), None),
            Holdout::Resize(r) => (None, None, Some(r)),
            _ => (None, None, None),
        };
        let scale = log_uniform_band(
            rng,
            k.sensor_scale_min,
            k.sensor_scale_max,
            scale_band,
            hold,
        );
        let blur = rng.range(k.lens_sigma_min, k.lens_sigma_max);
        let moving = rng.bernoulli(0.4);
        let motion_len = rng.range(0.0, 2.0);
        let motion_angle = rng.range(0.0, std::f64::consts::PI);
        let aperture = rng.range(0.8, 1.0);
        let phase = [rng.below(2) as usize, rng.below(2) as usize];
        let noise_a = log_uniform(rng, k.noise_min, k.noise_max);
        let noise_b = rng.range(1e-6, 5e-5);
        let wb = [rng.range(0.92, 1.08), 1.0, rng.range(0.92, 1.08)];
        let exposure_ev = rng.range(-0.3, 0.3);
        let shutter = log_uniform(rng, 1.0 / 4000.0, 1.0 / 30.0);
        let demosaic = pick(rng, &Demosaic::ALL, held_demosaic, hold);
        let contrast = rng.range(0.0, 0.35) as f32;
        let saturation = rng.range(0.9, 1.15) as f32;
        let sharp_on = rng.bernoulli(0.75);
        let sharpen = (rng.range(0.6, 1.5) as f32, rng.range(0.2, 1.2) as f32);
        let quality = (80 + rng.below(18)) as u8;
        let resize = pick(rng, &Resize::ALL, held_resize, hold);
        let upload = rng.bernoulli(k.upload_prob);
        let (q0, q1) = (k.upload_q_min, k.upload_q_max);
        let upload_q = (q0 as u64 + rng.below((q1 - q0) as u64 + 1)) as u8;
        CameraParams {
            scale,
            blur,
            defocus: None,
            motion_len: if moving { motion_len } else { 0.0 },
            motion_angle,
            aperture,
            phase,
            noise_a,
            noise_b,
            wb,
            exposure_ev,
            shutter,
            demosaic,
            contrast,
            saturation,
            sharpen: if sharp_on { sharpen } else { (1.0, 0.0) },
            quality,
            chroma: Chroma::Full,
            resize,
            upload_q: upload.then_some(upload_q),
            upload_chroma: Chroma::Full,
        }
    }
}

/// Colour of the Bayer site `(x, y)` for a CFA whose red site sits at `phase` (0 = R, 1 = G,
/// 2 = B): RGGB, GRBG, GBRG or BGGR.
#[inline]
pub fn cfa(x: usize, y: usize, phase: [usize; 2]) -> usize {
    match ((x + phase[0]) & 1, (y + phase[1]) & 1) {
        (0, 0) => 0,
        (1, 1) => 2,
        _ => 1,
    }
}

/// Reflect-101 index (−1 → 1, n → n − 2): keeps the Bayer parity at the borders.
#[inline]
fn refl(i: isize, n: usize) -> usize {
    let n = n as isize;
    let mut i = i;
    if i < 0 {
        i = -i;
    }
    if i >= n {
        i = 2 * (n - 1) - i;
    }
    i.clamp(0, n - 1) as usize
}

/// Add signal-dependent sensor noise `x + sqrt(a·x + b)·N(0, 1)` to the raw mosaic.
pub fn add_noise(raw: &mut Plane, a: f64, b: f64, rng: &mut Rng) {
    let mut normals = [0.0f32; 1024];
    for chunk in raw.px.chunks_mut(normals.len()) {
        let normals = &mut normals[..chunk.len()];
        fill_noise(rng, normals);
        for (v, &n) in chunk.iter_mut().zip(normals.iter()) {
            let x = v.max(0.0) as f64;
            *v = (x + (a * x + b).sqrt() * n as f64) as f32;
        }
    }
}

/// Reconstruct full colour from the mosaic.
pub fn demosaic(raw: &Plane, phase: [usize; 2], method: Demosaic) -> Rgb {
    match method {
        Demosaic::Bilinear => demosaic_bilinear(raw, phase),
        Demosaic::Malvar => demosaic_malvar(raw, phase),
    }
}

/// Reflect-padded copy of the mosaic (2 pixels each side), so stencils need no clamping.
fn padded(raw: &Plane) -> (Vec<f32>, usize) {
    let (w, h) = (raw.w, raw.h);
    let (pw, ph) = (w + 4, h + 4);
    let mut pad = vec![0.0f32; pw * ph];
    let cols: Vec<usize> = (0..pw).map(|x| refl(x as isize - 2, w)).collect();
    for y in 0..ph {
        let src = &raw.px[refl(y as isize - 2, h) * w..][..w];
        for (d, &sx) in pad[y * pw..(y + 1) * pw].iter_mut().zip(&cols) {
            *d = src[sx];
        }
    }
    (pad, pw)
}

fn demosaic_bilinear(raw: &Plane, phase: [usize; 2]) -> Rgb {
    let (w, h) = (raw.w, raw.h);
    let mut out = Rgb {
        w,
        h,
        px: vec![0.0; w * h * 3],
    };
    let (pad, pw) = padded(raw);
    for y in 0..h {
        for x in 0..w {
            let i = (y + 2) * pw + x + 2;
            let at = |dx: isize, dy: isize| pad[(i as isize + dy * pw as isize + dx) as usize];
            let v = pad[i];
            let cross = 0.25 * (at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1));
            let diag = 0.25 * (at(-1, -1) + at(1, -1) + at(-1, 1) + at(1, 1));
            let row = 0.5 * (at(-1, 0) + at(1, 0));
            let col = 0.5 * (at(0, -1) + at(0, 1));
            let rgb = match cfa(x, y, phase) {
                0 => [v, cross, diag],
                2 => [diag, cross, v],
                _ if cfa(x ^ 1, y, phase) == 0 => [row, v, col],
                _ => [col, v, row],
            };
            out.px[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb);
        }
    }
    out
}

/// Malvar–He–Cutler kernels (×8), `[dy + 2][dx + 2]`.
const MHC_G_AT_RB: [[f32; 5]; 5] = [
    [0.0, 0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 2.0, 0.0, 0.0],
    [-1.0, 2.0, 4.0, 2.0, -1.0],
    [0.0, 0.0, 2.0, 0.0, 0.0],
    [0.0, 0.0, -1.0, 0.0, 0.0],
];
/// Red (blue) at a green site whose row holds red (blue) sites.
const MHC_RB_AT_G_ROW: [[f32; 5]; 5] = [
    [0.0, 0.0, 0.5, 0.0, 0.0],
    [0.0, -1.0, 0.0, -1.0, 0.0],
    [-1.0, 4.0, 5.0, 4.0, -1.0],
    [0.0, -1.0, 0.0, -1.0, 0.0],
    [0.0, 0.0, 0.5, 0.0, 0.0],
];
/// Red (blue) at a green site whose column holds red (blue) sites.
const MHC_RB_AT_G_COL: [[f32; 5]; 5] = [
    [0.0, 0.0, -1.0, 0.0, 0.0],
    [0.0, -1.0, 4.0, -1.0, 0.0],
    [0.5, 0.0, 5.0, 0.0, 0.5],
    [0.0, -1.0, 4.0, -1.0, 0.0],
    [0.0, 0.0, -1.0, 0.0, 0.0],
];
/// Red at a blue site and blue at a red site.
const MHC_RB_AT_BR: [[f32; 5]; 5] = [
    [0.0, 0.0, -1.5, 0.0, 0.0],
    [0.0, 2.0, 0.0, 2.0, 0.0],
    [-1.5, 0.0, 6.0, 0.0, -1.5],
    [0.0, 2.0, 0.0, 2.0, 0.0],
    [0.0, 0.0, -1.5, 0.0, 0.0],
];

fn demosaic_malvar(raw: &Plane, phase: [usize; 2]) -> Rgb {
    let (w, h) = (raw.w, raw.h);
    let mut out = Rgb {
        w,
        h,
        px: vec![0.0; w * h * 3],
    };
    let (pad, pw) = padded(raw);
    let apply = |k: &[[f32; 5]; 5], x: usize, y: usize| {
        let mut acc = 0.0f32;
        for (dy, row) in k.iter().enumerate() {
            let base = (y + dy) * pw + x;
            for (dx, &kv) in row.iter().enumerate() {
                if kv != 0.0 {
                    acc += kv * pad[base + dx];
                }
            }
        }
        (acc * 0.125).max(0.0)
    };
    for y in 0..h {
        for x in 0..w {
            let c0 = cfa(x, y, phase);
            let v = raw.px[y * w + x];
            let rgb = match c0 {
                0 => [v, apply(&MHC_G_AT_RB, x, y), apply(&MHC_RB_AT_BR, x, y)],
                2 => [apply(&MHC_RB_AT_BR, x, y), apply(&MHC_G_AT_RB, x, y), v],
                _ => {
                    // Which colour shares this green site's row?
                    let red_in_row = cfa(x ^ 1, y, phase) == 0;
                    let (r, b) = if red_in_row {
                        (apply(&MHC_RB_AT_G_ROW, x, y), apply(&MHC_RB_AT_G_COL, x, y))
                    } else {
                        (apply(&MHC_RB_AT_G_COL, x, y), apply(&MHC_RB_AT_G_ROW, x, y))
                    };
                    [r, v, b]
                }
            };
            out.px[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb);
        }
    }
    out
}

/// The phone's rendering of linear camera RGB into display-referred sRGB floats in [0, 1]:
/// sRGB transfer, a global contrast S-curve (`contrast` in [0, 1]: mix with smoothstep) and a
/// saturation gain.
pub fn render_srgb(mut img: Rgb, contrast: f32, saturation: f32) -> Rgb {
    // 4096-entry table of the sRGB transfer + S-curve over linear [0, 1].
    const N: usize = 4096;
    // A fixed-size table: with `i ≤ N − 1` the compiler drops both lookups' bounds checks.
    let lut: [f32; N + 1] = std::array::from_fn(|i| {
        let s = linear_to_srgb(i as f32 / N as f32);
        let sm = s * s * (3.0 - 2.0 * s);
        s + (sm - s) * contrast
    });
    let tone = |v: f32| {
        let t = v.clamp(0.0, 1.0) * N as f32;
        // `t` is in [0, N] (or NaN, which both conversions take to 0): converting through
        // i32 is one instruction and the same index as the saturating `as usize`.
        let i = (t as i32 as usize).min(N - 1);
        lut[i] + (lut[i + 1] - lut[i]) * (t - i as f32)
    };
    for p in img.px.chunks_exact_mut(3) {
        let s = [tone(p[0]), tone(p[1]), tone(p[2])];
        let l = 0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2];
        for k in 0..3 {
            p[k] = (l + (s[k] - l) * saturation).clamp(0.0, 1.0);
        }
    }
    img
}

/// Unsharp mask on display-referred values: `x + amount·(x − blur_σ(x))`, clamped to [0, 1].
pub fn sharpen(img: &mut Rgb, sigma: f32, amount: f32) {
    if amount <= 0.0 {
        return;
    }
    let mut blurred = img.clone();
    blurred.gaussian_blur(sigma);
    for (v, b) in img.px.iter_mut().zip(&blurred.px) {
        *v = (*v + amount * (*v - b)).clamp(0.0, 1.0);
    }
}

/// Display-referred floats in [0, 1] → bytes (round half up).
pub fn to_bytes(img: &Rgb) -> Vec<u8> {
    img.px
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
        .collect()
}

/// Bytes → display-referred floats in [0, 1].
pub fn from_bytes(w: usize, h: usize, bytes: &[u8]) -> Rgb {
    Rgb {
        w,
        h,
        px: bytes.iter().map(|&b| b as f32 / 255.0).collect(),
    }
}

/// Weights of one output sample: first input index and the normalised taps.
struct Taps {
    start: usize,
    w: Vec<f32>,
}

fn cubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0
    } else if x < 2.0 {
        a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a
    } else {
        0.0
    }
}

/// Resampling taps from `n_in` to `n_out` samples (pixel centres at +0.5).
fn taps(n_in: usize, n_out: usize, method: Resize) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    // Anti-aliased filters stretch with the scale when shrinking; plain bilinear does not.
    let stretch = match method {
        Resize::Bilinear => 1.0,
        _ => scale.max(1.0),
    };
    let (support, kernel): (f64, fn(f64) -> f64) = match method {
        Resize::Area => (0.5, |_| 1.0),
        Resize::Triangle | Resize::Bilinear => (1.0, |x| (1.0 - x.abs()).max(0.0)),
        Resize::Bicubic => (2.0, cubic),
    };
    (0..n_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support * stretch).floor() as isize).max(0) as usize;
            let hi = ((centre + support * stretch).ceil() as usize).min(n_in);
            let mut w: Vec<f64> = (lo..hi)
                .map(|i| {
                    if method == Resize::Area {
                        // Overlap of input pixel [i, i + 1] with the output footprint.
                        let (a, b) = (centre - 0.5 * stretch, centre + 0.5 * stretch);
                        ((i as f64 + 1.0).min(b) - (i as f64).max(a)).max(0.0)
                    } else {
                        kernel((i as f64 + 0.5 - centre) / stretch)
                    }
                })
                .collect();
            let s: f64 = w.iter().sum();
            if s.abs() > 1e-12 {
                w.iter_mut().for_each(|v| *v /= s);
            }
            Taps {
                start: lo,
                w: w.into_iter().map(|v| v as f32).collect(),
            }
        })
        .collect()
}

/// Separable resize of an interleaved RGB image to `n × n`.
pub fn resize(img: &Rgb, n: usize, method: Resize) -> Rgb {
    if img.w == n && img.h == n {
        return img.clone();
    }
    resize_with(&img.px, img.w, img.h, n, method, |v| v)
}

/// [`resize`] of `[h][w][3]` display-referred bytes, read as [`from_bytes`] reads them (the
/// same floats, without the intermediate float image).
pub fn resize_bytes(w: usize, h: usize, bytes: &[u8], n: usize, method: Resize) -> Rgb {
    if w == n && h == n {
        return from_bytes(w, h, bytes);
    }
    let lut: [f32; 256] = std::array::from_fn(|b| b as f32 / 255.0);
    resize_with(bytes, w, h, n, method, |b| lut[usize::from(b)])
}

/// The separable resize over samples read through `value`: rows first into `[h][n][3]`,
/// then columns. Every output sums its taps in order from +0 (the first tap as `0 + w·s`,
/// which is bitwise what adding it to a zeroed buffer gives).
fn resize_with<T: Copy>(
    src: &[T],
    w: usize,
    h: usize,
    n: usize,
    method: Resize,
    value: impl Fn(T) -> f32,
) -> Rgb {
    let tx = taps(w, n, method);
    let ty = taps(h, n, method);
    let mut mid = Vec::with_capacity(h * n * 3);
    for row in src.chunks_exact(w * 3).take(h) {
        for t in &tx {
            let mut acc = [0.0f32; 3];
            let win = &row[t.start * 3..(t.start + t.w.len()) * 3];
            for (&wv, p) in t.w.iter().zip(win.chunks_exact(3)) {
                for k in 0..3 {
                    acc[k] += wv * value(p[k]);
                }
            }
            mid.extend_from_slice(&acc);
        }
    }
    let stride = n * 3;
    let mut out: Vec<f32> = Vec::with_capacity(n * stride);
    for t in &ty {
        let base = out.len();
        let Some((&w0, rest)) = t.w.split_first() else {
            out.resize(base + stride, 0.0);
            continue;
        };
        let first = &mid[t.start * stride..(t.start + 1) * stride];
        out.extend(first.iter().map(|&s| 0.0 + w0 * s));
        let orow = &mut out[base..];
        for (j, &wv) in rest.iter().enumerate() {
            let srow = &mid[(t.start + 1 + j) * stride..(t.start + 2 + j) * stride];
            for (d, s) in orow.iter_mut().zip(srow) {
                *d += wv * s;
            }
        }
    }
    Rgb {
        w: n,
        h: n,
        px: out,
    }
}

/// Separable resize of a single plane to `n × n` (masks and mask footprints).
pub fn resize_plane(p: &Plane, n: usize, method: Resize) -> Plane {
    let rgb = Rgb {
        w: p.w,
        h: p.h,
        px: p.px.iter().flat_map(|&v| [v, 0.0, 0.0]).collect(),
    };
    let r = resize(&rgb, n, method);
    Plane {
        w: n,
        h: n,
        px: r.px.chunks_exact(3).map(|c| c[0]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mosaic(img: &Rgb, phase: [usize; 2]) -> Plane {
        let mut p = Plane::new(img.w, img.h);
        for y in 0..img.h {
            for x in 0..img.w {
                p.px[y * img.w + x] = img.px[(y * img.w + x) * 3 + cfa(x, y, phase)];
            }
        }
        p
    }

    #[test]
    fn cfa_patterns_have_one_red_one_blue_two_greens() {
        for phase in [[0, 0], [1, 0], [0, 1], [1, 1]] {
            let mut n = [0; 3];
            for y in 0..2 {
                for x in 0..2 {
                    n[cfa(x, y, phase)] += 1;
                }
            }
            assert_eq!(n, [1, 2, 1], "{phase:?}");
        }
    }

    #[test]
    fn demosaicing_a_flat_colour_returns_it_exactly() {
        let c = [0.2f32, 0.5, 0.7];
        let img = Rgb::filled(9, 7, c);
        for phase in [[0, 0], [1, 0], [0, 1], [1, 1]] {
            for m in Demosaic::ALL {
                let out = demosaic(&mosaic(&img, phase), phase, m);
                for p in out.px.chunks_exact(3) {
                    for k in 0..3 {
                        assert!((p[k] - c[k]).abs() < 1e-5, "{m:?} {phase:?}: {p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn malvar_reconstructs_a_linear_ramp_that_bilinear_blurs_at_the_edge() {
        // A luminance ramp is reconstructed exactly by MHC away from the border.
        let (w, h) = (12, 12);
        let mut img = Rgb::filled(w, h, [0.0; 3]);
        for y in 0..h {
            for x in 0..w {
                let v = 0.05 * x as f32 + 0.02 * y as f32;
                img.set(x, y, [v, v, v]);
            }
        }
        let out = demosaic(&mosaic(&img, [0, 0]), [0, 0], Demosaic::Malvar);
        for y in 2..h - 2 {
            for x in 2..w - 2 {
                let a = img.get(x, y);
                let b = out.get(x, y);
                for k in 0..3 {
                    assert!((a[k] - b[k]).abs() < 1e-5, "({x},{y}) {a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn resize_keeps_flat_fields_and_area_averages_blocks() {
        let img = Rgb::filled(30, 30, [0.25, 0.5, 0.75]);
        for m in Resize::ALL {
            let r = resize(&img, 10, m);
            assert_eq!((r.w, r.h), (10, 10));
            for v in r.px.chunks_exact(3) {
                assert!(
                    (v[0] - 0.25).abs() < 1e-5 && (v[2] - 0.75).abs() < 1e-5,
                    "{m:?}"
                );
            }
        }
        // Area by 3: each output pixel is the mean of a 3×3 block.
        let mut img = Rgb::filled(6, 6, [0.0; 3]);
        for (i, p) in img.px.chunks_exact_mut(3).enumerate() {
            p[0] = i as f32;
        }
        let r = resize(&img, 2, Resize::Area);
        let want = (0..3)
            .flat_map(|y| (0..3).map(move |x| (y * 6 + x) as f32))
            .sum::<f32>()
            / 9.0;
        assert!((r.px[0] - want).abs() < 1e-4, "{} vs {want}", r.px[0]);
    }

    #[test]
    fn plain_bilinear_aliases_a_fine_grating_that_area_removes() {
        // A 2-px grating shrunk by 3: the anti-aliased filters flatten it, bilinear does not.
        let mut img = Rgb::filled(96, 96, [0.0; 3]);
        for y in 0..96 {
            for x in 0..96 {
                let v = if x % 2 == 0 { 1.0 } else { 0.0 };
                img.set(x, y, [v, v, v]);
            }
        }
        let spread = |r: &Rgb| {
            let v: Vec<f32> = r.px.iter().step_by(3).copied().collect();
            v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min)
        };
        let area = resize(&img, 40, Resize::Area);
        let lin = resize(&img, 40, Resize::Bilinear);
        assert!(spread(&area) < 0.4, "{}", spread(&area));
        assert!(spread(&lin) > 0.6, "{}", spread(&lin));
    }

    #[test]
    fn sharpening_overshoots_an_edge_and_leaves_flat_areas() {
        let mut img = Rgb::filled(20, 4, [0.3; 3]);
        for y in 0..4 {
            for x in 10..20 {
                img.set(x, y, [0.6; 3]);
            }
        }
        let before = img.clone();
        sharpen(&mut img, 1.0, 1.0);
        assert!(img.get(10, 2)[0] > 0.62, "{:?}", img.get(10, 2));
        assert!(img.get(9, 2)[0] < 0.28, "{:?}", img.get(9, 2));
        assert!((img.get(0, 2)[0] - before.get(0, 2)[0]).abs() < 1e-6);
    }
}
