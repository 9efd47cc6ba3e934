//! Seeded augmentation and the eval view, on 8-bit RGB buffers.
//!
//! Every sample draws from its own stream `Rng::derive(seed, [epoch, position, AUG])`, so the
//! result does not depend on worker count, batch boundaries or where an epoch resumed.
//!
//! Geometry is a crop rectangle in stored-image coordinates plus flips and an optional
//! transpose of the result; the output `S×S`
//! pixel `(ox, oy)` samples the stored image at
//! `x = x0 + (ox + ½)·cw/S − ½` (bilinear, edges clamped; the torchvision
//! `RandomResizedCrop` convention with `align_corners = False`). Masks are sampled at the same
//! points with nearest neighbour (labels are never interpolated), so they stay aligned.

use crate::config::{AugmentConfig, Mode};
use image::RgbImage;
use moirelab_core::rng::Rng;

/// Stream id of augmentation draws (distinct from permutation / balancing streams).
pub(crate) const AUG_STREAM: u64 = 0xa065;

/// A crop of the stored image plus flips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geom {
    pub x0: f64,
    pub y0: f64,
    pub cw: f64,
    pub ch: f64,
    pub hflip: bool,
    pub vflip: bool,
    /// Swap rows and columns of the `S×S` output, after the flips.
    pub transpose: bool,
}

impl Geom {
    /// Eval view: resize mode uses the whole stored `S×S` image; patch mode the centre
    /// `S×S` crop at native resolution (offsets rounded down).
    pub fn eval(w: u32, h: u32, s: u32, mode: Mode) -> Geom {
        match mode {
            Mode::Resize => Geom {
                x0: 0.0,
                y0: 0.0,
                cw: w as f64,
                ch: h as f64,
                hflip: false,
                vflip: false,
                transpose: false,
            },
            Mode::Patch => Geom {
                x0: ((w - s.min(w)) / 2) as f64,
                y0: ((h - s.min(h)) / 2) as f64,
                cw: s as f64,
                ch: s as f64,
                hflip: false,
                vflip: false,
                transpose: false,
            },
        }
    }

    /// Random geometry for training.
    pub fn sample(w: u32, h: u32, s: u32, mode: Mode, a: &AugmentConfig, rng: &mut Rng) -> Geom {
        let (wf, hf) = (w as f64, h as f64);
        let mut g = match mode {
            // Random resized crop (Szegedy et al. 2015, "Going deeper with convolutions"),
            // torchvision's 10-attempt rejection sampler with a whole-image fallback.
            Mode::Resize => {
                let mut g = Geom::eval(w, h, s, mode);
                let area = wf * hf;
                let (lr0, lr1) = (a.ratio[0].ln(), a.ratio[1].ln());
                for _ in 0..10 {
                    let target = area * rng.range(a.scale[0], a.scale[1]);
                    let ratio = rng.range(lr0, lr1).exp();
                    let cw = (target * ratio).sqrt();
                    let ch = (target / ratio).sqrt();
                    if cw <= wf && ch <= hf {
                        g.cw = cw;
                        g.ch = ch;
                        g.x0 = rng.f64() * (wf - cw);
                        g.y0 = rng.f64() * (hf - ch);
                        break;
                    }
                }
                g
            }
            // Patch mode: integer offsets, no resampling — native pixels reach the network.
            Mode::Patch => {
                let sw = s.min(w);
                let sh = s.min(h);
                Geom {
                    x0: rng.below((w - sw + 1) as u64) as f64,
                    y0: rng.below((h - sh + 1) as u64) as f64,
                    cw: sw as f64,
                    ch: sh as f64,
                    hflip: false,
                    vflip: false,
                    transpose: false,
                }
            }
        };
        g.hflip = rng.bernoulli(a.hflip);
        g.vflip = rng.bernoulli(a.vflip);
        // Drawn only when enabled: configs without it keep every later draw unchanged.
        g.transpose = a.transpose > 0.0 && rng.bernoulli(a.transpose);
        g
    }

    fn is_integer_copy(&self, s: u32) -> bool {
        self.cw == s as f64
            && self.ch == s as f64
            && self.x0.fract() == 0.0
            && self.y0.fract() == 0.0
    }

    /// Source x (in stored coordinates) of output column `ox`, before the −½ centre shift.
    fn src_x(&self, ox: u32, s: u32) -> f64 {
        let ox = if self.hflip { s - 1 - ox } else { ox };
        self.x0 + (ox as f64 + 0.5) * self.cw / s as f64
    }

    fn src_y(&self, oy: u32, s: u32) -> f64 {
        let oy = if self.vflip { s - 1 - oy } else { oy };
        self.y0 + (oy as f64 + 0.5) * self.ch / s as f64
    }
}

/// Render `geom` of a stored `w×h` HWC RGB image into an `S×S` image.
pub(crate) fn render(w: u32, h: u32, px: &[u8], geom: &Geom, s: u32) -> RgbImage {
    let mut out = vec![0u8; (s * s * 3) as usize];
    let (wu, hu) = (w as usize, h as usize);
    if geom.is_integer_copy(s) {
        let (x0, y0) = (geom.x0 as usize, geom.y0 as usize);
        for oy in 0..s as usize {
            let sy = if geom.vflip { s as usize - 1 - oy } else { oy } + y0;
            let row = &px[(sy * wu + x0) * 3..(sy * wu + x0 + s as usize) * 3];
            let dst = &mut out[oy * s as usize * 3..(oy + 1) * s as usize * 3];
            if geom.hflip {
                for (d, sp) in dst.chunks_exact_mut(3).zip(row.chunks_exact(3).rev()) {
                    d.copy_from_slice(sp);
                }
            } else {
                dst.copy_from_slice(row);
            }
        }
    } else {
        // Bilinear; precompute column taps once per image.
        let taps = |src: f64, n: usize| -> (usize, usize, f32) {
            let x = (src - 0.5).clamp(0.0, (n - 1) as f64);
            let i0 = x.floor() as usize;
            let i1 = (i0 + 1).min(n - 1);
            (i0, i1, (x - i0 as f64) as f32)
        };
        let cols: Vec<(usize, usize, f32)> = (0..s).map(|ox| taps(geom.src_x(ox, s), wu)).collect();
        for oy in 0..s {
            let (y0, y1, fy) = taps(geom.src_y(oy, s), hu);
            let r0 = &px[y0 * wu * 3..(y0 + 1) * wu * 3];
            let r1 = &px[y1 * wu * 3..(y1 + 1) * wu * 3];
            let dst = &mut out[(oy * s * 3) as usize..((oy + 1) * s * 3) as usize];
            for (ox, &(x0, x1, fx)) in cols.iter().enumerate() {
                for c in 0..3 {
                    let a = r0[x0 * 3 + c] as f32 * (1.0 - fx) + r0[x1 * 3 + c] as f32 * fx;
                    let b = r1[x0 * 3 + c] as f32 * (1.0 - fx) + r1[x1 * 3 + c] as f32 * fx;
                    dst[ox * 3 + c] = (a * (1.0 - fy) + b * fy).round() as u8;
                }
            }
        }
    }
    if geom.transpose {
        out = transposed(&out, s as usize, 3);
    }
    RgbImage::from_raw(s, s, out).unwrap_or_else(|| unreachable!("buffer sized S*S*3"))
}

/// `S×S` row-major pixels of `c` values each, rows and columns swapped.
fn transposed<T: Copy>(px: &[T], s: usize, c: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(px.len());
    for y in 0..s {
        for x in 0..s {
            out.extend_from_slice(&px[(x * s + y) * c..(x * s + y + 1) * c]);
        }
    }
    out
}

/// Render the same geometry of a mask of size `mw×mh` that covers the stored `w×h` image
/// (masks are kept at native resolution; coordinates are scaled).
pub(crate) fn render_mask(
    mw: u32,
    mh: u32,
    bits: &[u16],
    w: u32,
    h: u32,
    geom: &Geom,
    s: u32,
) -> Vec<u16> {
    let sx = mw as f64 / w as f64;
    let sy = mh as f64 / h as f64;
    let cols: Vec<usize> = (0..s)
        .map(|ox| ((geom.src_x(ox, s) * sx).floor() as usize).min(mw as usize - 1))
        .collect();
    let mut out = Vec::with_capacity((s * s) as usize);
    for oy in 0..s {
        let my = ((geom.src_y(oy, s) * sy).floor() as usize).min(mh as usize - 1);
        let row = &bits[my * mw as usize..(my + 1) * mw as usize];
        out.extend(cols.iter().map(|&mx| row[mx]));
    }
    if geom.transpose {
        out = transposed(&out, s as usize, 1);
    }
    out
}

/// Brightness, contrast and saturation jitter (torchvision `ColorJitter` semantics, fixed
/// order), a sharpness factor when `sharpness` is on, then optional JPEG re-compression at a
/// random quality.
pub(crate) fn photometric(img: &mut RgbImage, a: &AugmentConfig, rng: &mut Rng) {
    let b = rng.range(1.0 - a.brightness, 1.0 + a.brightness) as f32;
    let c = rng.range(1.0 - a.contrast, 1.0 + a.contrast) as f32;
    let s = rng.range(1.0 - a.saturation, 1.0 + a.saturation) as f32;
    let jpeg = rng.bernoulli(a.jpeg_prob);
    let q =
        a.jpeg_quality[0] as u64 + rng.below((a.jpeg_quality[1] - a.jpeg_quality[0]) as u64 + 1);
    // Drawn last and only when on, so configs without it keep their streams.
    let sharpness = (a.sharpness > 0.0)
        .then(|| rng.range((1.0 - a.sharpness).max(0.0), 1.0 + a.sharpness) as f32);
    if b != 1.0 || c != 1.0 || s != 1.0 {
        let luma = |p: &[f32]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        let mut f: Vec<f32> = img.as_raw().iter().map(|&v| v as f32 * b).collect();
        let mean = f.chunks_exact(3).map(luma).sum::<f32>() / (f.len() / 3).max(1) as f32;
        for p in f.chunks_exact_mut(3) {
            for v in p.iter_mut() {
                *v = (*v - mean) * c + mean;
            }
            let g = luma(&*p);
            for v in p.iter_mut() {
                *v = g + (*v - g) * s;
            }
        }
        for (d, v) in img.iter_mut().zip(f) {
            *d = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    if let Some(f) = sharpness {
        adjust_sharpness(img, f);
    }
    if jpeg {
        jpeg_round_trip(img, q as u8);
    }
}

/// torchvision's `adjust_sharpness`: blend the image with its smoothed copy (kernel
/// `[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`, rounded to bytes; the one-pixel border is not
/// smoothed) as `smoothed + f · (image − smoothed)`, clamped and truncated to bytes as
/// torchvision does (bit for bit against torchvision 0.28's v1 and v2 on random images).
pub(crate) fn adjust_sharpness(img: &mut RgbImage, f: f32) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 || f == 1.0 {
        return;
    }
    let src = img.as_raw().clone();
    let at = |x: usize, y: usize, c: usize| src[(y * w + x) * 3 + c] as f32;
    let out: &mut [u8] = img;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut sum = 4.0 * at(x, y, c);
                for (dx, dy) in [
                    (0, 0),
                    (1, 0),
                    (2, 0),
                    (0, 1),
                    (1, 1),
                    (2, 1),
                    (0, 2),
                    (1, 2),
                    (2, 2),
                ] {
                    sum += at(x + dx - 1, y + dy - 1, c);
                }
                let smooth = (sum / 13.0).round();
                let v = smooth + f * (at(x, y, c) - smooth);
                out[(y * w + x) * 3 + c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Encode as JPEG at quality `q` and decode again.
pub(crate) fn jpeg_round_trip(img: &mut RgbImage, q: u8) {
    let mut buf = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, q);
    let (w, h) = img.dimensions();
    // Encoding an in-memory RGB buffer cannot fail; if it ever did, the image simply stays
    // un-compressed.
    if image::ImageEncoder::write_image(enc, img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .is_ok()
    {
        if let Ok(d) = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg) {
            *img = d.into_rgb8();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| [(i % w) as u8, (i / w) as u8, 7])
            .collect()
    }

    #[test]
    fn transpose_swaps_rows_and_columns_of_image_and_mask_alike() {
        let px = ramp(8, 8);
        let mut g = Geom::eval(8, 8, 8, Mode::Resize);
        g.transpose = true;
        let out = render(8, 8, &px, &g, 8);
        // ramp: R = x, G = y; transposed, the pixel at (2, 5) comes from (5, 2).
        assert_eq!(out.get_pixel(2, 5).0, [5, 2, 7]);
        let bits: Vec<u16> = (0..64).collect();
        let m = render_mask(8, 8, &bits, 8, 8, &g, 8);
        assert_eq!(m[5 * 8 + 2], 2 * 8 + 5);
        // With a flip first: the flip acts on the source columns, then the swap.
        g.hflip = true;
        let out = render(8, 8, &px, &g, 8);
        assert_eq!(out.get_pixel(2, 5).0, [7 - 5, 2, 7]);
        // Not integer-aligned (bilinear path) transposes too.
        let g = Geom {
            cw: 4.0,
            ch: 4.0,
            transpose: true,
            ..Geom::eval(8, 8, 8, Mode::Resize)
        };
        let upright = Geom {
            transpose: false,
            ..g
        };
        let plain = render(8, 8, &px, &upright, 8);
        let t = render(8, 8, &px, &g, 8);
        for (x, y) in [(0, 3), (6, 1), (7, 7)] {
            assert_eq!(t.get_pixel(x, y), plain.get_pixel(y, x));
        }
    }

    #[test]
    fn transpose_draws_nothing_when_off_and_about_its_share_when_on() {
        let off = AugmentConfig::default();
        let on = AugmentConfig {
            transpose: 0.5,
            ..AugmentConfig::default()
        };
        // Off, a patch crop draws exactly what it drew before the knob existed: two
        // offsets and two flips.
        let mut a = Rng::new(9);
        let g = Geom::sample(64, 64, 32, Mode::Patch, &off, &mut a);
        assert!(!g.transpose);
        let mut c = Rng::new(9);
        let (x0, y0) = (c.below(33), c.below(33));
        let (h, v) = (c.bernoulli(0.5), c.bernoulli(0.0));
        assert_eq!((g.x0, g.y0, g.hflip, g.vflip), (x0 as f64, y0 as f64, h, v));
        assert_eq!(a.f64(), c.f64());
        let mut b = Rng::new(9);
        let turned: u32 = (0..400)
            .map(|_| Geom::sample(64, 64, 32, Mode::Resize, &on, &mut b).transpose as u32)
            .sum();
        assert!((160..=240).contains(&turned), "{turned} of 400");
    }

    #[test]
    fn identity_geometry_copies_pixels_exactly() {
        let px = ramp(8, 8);
        let g = Geom::eval(8, 8, 8, Mode::Resize);
        assert_eq!(render(8, 8, &px, &g, 8).into_raw(), px);
        let mut f = g;
        f.hflip = true;
        let out = render(8, 8, &px, &f, 8);
        assert_eq!(out.get_pixel(0, 3).0, [7, 3, 7]);
    }

    #[test]
    fn patch_eval_is_the_centre_crop() {
        let px = ramp(10, 6);
        let g = Geom::eval(10, 6, 4, Mode::Patch);
        let out = render(10, 6, &px, &g, 4);
        assert_eq!(out.get_pixel(0, 0).0, [3, 1, 7]);
    }

    #[test]
    fn random_resized_crop_stays_inside_and_respects_scale() {
        let a = AugmentConfig {
            scale: [0.6, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            ..AugmentConfig::default()
        };
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let g = Geom::sample(64, 64, 32, Mode::Resize, &a, &mut rng);
            assert!(g.x0 >= 0.0 && g.x0 + g.cw <= 64.0 + 1e-9);
            let frac = g.cw * g.ch / (64.0 * 64.0);
            assert!(
                (0.6 - 1e-9..=1.0 + 1e-9).contains(&frac) || frac == 1.0,
                "{frac}"
            );
        }
    }

    #[test]
    fn zero_jitter_and_no_jpeg_leave_pixels_untouched() {
        let a = AugmentConfig {
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            jpeg_prob: 0.0,
            ..AugmentConfig::default()
        };
        let mut img = RgbImage::from_raw(4, 4, ramp(4, 4)).unwrap();
        let before = img.clone();
        photometric(&mut img, &a, &mut Rng::new(1));
        assert_eq!(img, before);
        let a = AugmentConfig {
            jpeg_prob: 1.0,
            jpeg_quality: [10, 10],
            ..a
        };
        let mut noisy = RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 37 % 256) as u8, (y * 91 % 256) as u8, 0])
        });
        let before = noisy.clone();
        photometric(&mut noisy, &a, &mut Rng::new(1));
        assert_ne!(noisy, before, "quality-10 JPEG must change a noisy image");
    }

    #[test]
    fn sharpness_follows_torchvision_and_draws_only_when_on() {
        // A single bright pixel on grey: the smoothed centre is (4·200 + 200 + 8·100) / 13.
        let mut img = RgbImage::from_pixel(5, 5, image::Rgb([100, 100, 100]));
        img.put_pixel(2, 2, image::Rgb([200, 200, 200]));
        let orig = img.clone();
        let smooth_centre = ((5.0 * 200.0 + 8.0 * 100.0) / 13.0f32).round();
        let smooth_next = ((5.0 * 100.0 + 200.0 + 7.0 * 100.0) / 13.0f32).round();
        let mut soft = orig.clone();
        adjust_sharpness(&mut soft, 0.0);
        assert_eq!(soft.get_pixel(2, 2)[0] as f32, smooth_centre);
        assert_eq!(soft.get_pixel(1, 2)[0] as f32, smooth_next);
        assert_eq!(soft.get_pixel(0, 2)[0], 100, "the border is not smoothed");
        let mut sharp = orig.clone();
        adjust_sharpness(&mut sharp, 2.0);
        assert_eq!(
            sharp.get_pixel(2, 2)[0] as f32,
            (smooth_centre + 2.0 * (200.0 - smooth_centre)).min(255.0)
        );
        // Fractions are truncated: 138 + 0.3 · 62 = 156.6 -> 156.
        let mut part = orig.clone();
        adjust_sharpness(&mut part, 0.3);
        assert_eq!(smooth_centre, 138.0);
        assert_eq!(part.get_pixel(2, 2)[0], 156);
        assert_eq!(
            sharp.get_pixel(1, 2)[0] as f32,
            smooth_next + 2.0 * (100.0 - smooth_next)
        );
        let mut same = orig.clone();
        adjust_sharpness(&mut same, 1.0);
        assert_eq!(same, orig);
        // On, the factor is one more draw, after the others (off, the stream and the image
        // are what they were before the knob existed).
        let quiet = AugmentConfig {
            brightness: 0.0,
            contrast: 0.0,
            ..AugmentConfig::default()
        };
        let on = AugmentConfig {
            sharpness: 0.5,
            ..quiet.clone()
        };
        let (mut r_off, mut r_on) = (Rng::new(9), Rng::new(9));
        let mut a = img.clone();
        photometric(&mut a, &quiet, &mut r_off);
        let mut b = img.clone();
        photometric(&mut b, &on, &mut r_on);
        assert_eq!(a, orig);
        assert_ne!(b, orig, "a factor from [0.5, 1.5] moves the bright pixel");
        assert_ne!(r_off.next_u64(), r_on.next_u64());
    }
}
