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
    #[inline]
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
    pub fn motion_blur(&mut self, len: f32, theta: f32) {
        if len < 0.5 {
            return;
        }
        let taps = (len.ceil() as usize + 1).max(2);
        let (dx, dy) = (theta.cos(), theta.sin());
        let src = self.clone();
        let norm = 1.0 / taps as f32;
        for y in 0..self.h {
            for x in 0..self.w {
                let mut acc = [0.0f32; 3];
                for t in 0..taps {
                    let s = (t as f32 / (taps - 1) as f32 - 0.5) * len;
                    let c = src.sample(x as f32 + 0.5 + s * dx, y as f32 + 0.5 + s * dy);
                    acc[0] += c[0];
                    acc[1] += c[1];
                    acc[2] += c[2];
                }
                self.set(x, y, [acc[0] * norm, acc[1] * norm, acc[2] * norm]);
            }
        }
    }

    /// Linear light -> 8-bit sRGB.
    pub fn to_srgb8(&self) -> Vec<u8> {
        self.px.iter().map(|&v| linear_to_srgb8(v)).collect()
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

    #[inline]
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let fx = (x - 0.5).clamp(0.0, (self.w - 1) as f32);
        let fy = (y - 0.5).clamp(0.0, (self.h - 1) as f32);
        let x0 = fx as usize;
        let y0 = fy as usize;
        let x1 = (x0 + 1).min(self.w - 1);
        let y1 = (y0 + 1).min(self.h - 1);
        let tx = fx - x0 as f32;
        let ty = fy - y0 as f32;
        let p = |x: usize, y: usize| self.px[y * self.w + x];
        let top = p(x0, y0) + (p(x1, y0) - p(x0, y0)) * tx;
        let bot = p(x0, y1) + (p(x1, y1) - p(x0, y1)) * tx;
        top + (bot - top) * ty
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
    let r = (3.0 * sigma).ceil().max(1.0) as i32;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

fn convolve_rows(px: &mut [f32], w: usize, h: usize, ch: usize, k: &[f32]) {
    let r = (k.len() / 2) as isize;
    let mut line = vec![0.0f32; w * ch];
    for y in 0..h {
        let row = &mut px[y * w * ch..(y + 1) * w * ch];
        line.copy_from_slice(row);
        for x in 0..w as isize {
            for c in 0..ch {
                let mut acc = 0.0;
                for (j, &kv) in k.iter().enumerate() {
                    let sx = (x + j as isize - r).clamp(0, w as isize - 1) as usize;
                    acc += kv * line[sx * ch + c];
                }
                row[x as usize * ch + c] = acc;
            }
        }
    }
}

fn convolve_cols(px: &mut [f32], w: usize, h: usize, ch: usize, k: &[f32]) {
    let r = (k.len() / 2) as isize;
    let src = px.to_vec();
    let stride = w * ch;
    for y in 0..h as isize {
        let out = &mut px[y as usize * stride..(y as usize + 1) * stride];
        out.iter_mut().for_each(|v| *v = 0.0);
        for (j, &kv) in k.iter().enumerate() {
            let sy = (y + j as isize - r).clamp(0, h as isize - 1) as usize;
            let srow = &src[sy * stride..(sy + 1) * stride];
            for (o, s) in out.iter_mut().zip(srow) {
                *o += kv * s;
            }
        }
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

/// Linear light -> 8-bit sRGB through a 65 536-entry table (exact rounding of the transfer
/// function at table points; `powf` per pixel dominated the camera stage otherwise).
#[inline]
pub fn linear_to_srgb8(v: f32) -> u8 {
    static LUT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let lut = LUT.get_or_init(|| {
        (0..65536u32)
            .map(|i| (linear_to_srgb(i as f32 / 65535.0) * 255.0 + 0.5) as u8)
            .collect()
    });
    lut[(v.clamp(0.0, 1.0) * 65535.0 + 0.5) as usize]
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

/// Encode 8-bit RGB as baseline JPEG at `quality` and decode it again (both classes pass
/// through the camera's JPEG; screens also through the file's JPEG before display).
pub fn jpeg_round_trip(w: usize, h: usize, rgb8: &[u8], quality: u8) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .write_image(rgb8, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("JPEG encode: {e}"))?;
    let img = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
        .map_err(|e| format!("JPEG decode: {e}"))?
        .into_rgb8();
    Ok(img.into_raw())
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

    /// `u`, `v` in [0, 1] across the lattice.
    #[inline]
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
mod tests {
    use super::*;

    #[test]
    fn srgb_round_trips_every_byte() {
        let lut = srgb8_lut();
        for (i, &v) in lut.iter().enumerate() {
            assert_eq!(linear_to_srgb8(v), i as u8);
        }
    }

    #[test]
    fn blur_and_downsample_preserve_the_mean() {
        let mut r = Rng::new(3);
        let mut img = Rgb {
            w: 16,
            h: 8,
            px: (0..16 * 8 * 3).map(|_| r.f32()).collect(),
        };
        let mean = |i: &Rgb| i.px.iter().sum::<f32>() / i.px.len() as f32;
        let m0 = mean(&img);
        let d = img.downsample(2);
        assert!((mean(&d) - m0).abs() < 1e-5);
        img.gaussian_blur(0.8);
        // Clamped edges keep the mean approximately (not exactly) equal.
        assert!((mean(&img) - m0).abs() < 0.02);
    }
}
