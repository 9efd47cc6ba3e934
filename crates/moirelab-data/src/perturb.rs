//! Perturbations of the eval view, for robustness tables (`moirelab eval --perturb`): the same
//! images a little softer, noisier, re-compressed, brighter or with another tone curve. A
//! detector whose verdict flips under them has learnt image quality, not screens.
//!
//! Each acts on the `S×S` view the model sees (after the resize or crop), deterministically:
//! the noise of image `i` is drawn from its own stream, so two runs see the same pixels.

use image::RgbImage;
use moirelab_core::jpeg::{self, Chroma};
use moirelab_core::rng::Rng;

/// Stream id of the perturbation noise (distinct from the loader's streams).
const NOISE_STREAM: u64 = 0x7065_7274;

/// One perturbation and its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Perturbation {
    /// Gaussian blur, σ in pixels of the model's input.
    Blur(f32),
    /// Additive Gaussian noise, σ in 8-bit levels.
    Noise(f32),
    /// One more JPEG at this quality (the `image` crate's codec, chroma at full resolution).
    Jpeg(u8),
    /// One more JPEG at this quality with chroma subsampled 4:2:0, as libjpeg, phone cameras
    /// and browsers write it (moirelab's JPEG model, within a level of libjpeg).
    Jpeg420(u8),
    /// Add this many 8-bit levels to every channel (negative: darker).
    Brightness(f32),
    /// Tone curve `v ↦ v^γ` on [0, 1].
    Gamma(f32),
}

/// Accepted strengths, per kind: (name, min, max, unit).
const KINDS: [(&str, f32, f32, &str); 6] = [
    ("blur", 0.0, 8.0, "sigma in pixels"),
    ("noise", 0.0, 64.0, "sigma in 8-bit levels"),
    ("jpeg", 1.0, 100.0, "quality"),
    ("jpeg420", 1.0, 100.0, "quality"),
    ("brightness", -255.0, 255.0, "8-bit levels"),
    ("gamma", 0.1, 10.0, "exponent"),
];

impl Perturbation {
    /// Parse `kind=value` (`blur=0.8`, `noise=4`, `jpeg=60`, `jpeg420=60`, `brightness=-20`,
    /// `gamma=0.8`);
    /// the error is one line naming what is accepted.
    pub fn parse(s: &str) -> Result<Perturbation, String> {
        let kinds = KINDS.map(|k| k.0).join(", ");
        let (kind, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected kind=value with kind one of {kinds}"))?;
        let Some(&(name, lo, hi, unit)) = KINDS.iter().find(|k| k.0 == kind.trim()) else {
            return Err(format!(
                "`{s}`: unknown kind `{kind}`; valid kinds: {kinds}"
            ));
        };
        let v: f32 = value
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{value}` is not a number"))?;
        if !v.is_finite() || v < lo || v > hi {
            return Err(format!("`{s}`: {name} ({unit}) must lie in [{lo}, {hi}]"));
        }
        Ok(match name {
            "blur" => Perturbation::Blur(v),
            "noise" => Perturbation::Noise(v),
            "jpeg" | "jpeg420" => {
                if v.fract() != 0.0 {
                    return Err(format!("`{s}`: {name} quality must be a whole number"));
                }
                if name == "jpeg" {
                    Perturbation::Jpeg(v as u8)
                } else {
                    Perturbation::Jpeg420(v as u8)
                }
            }
            "brightness" => Perturbation::Brightness(v),
            _ => Perturbation::Gamma(v),
        })
    }

    /// `kind=value`, as parsed.
    pub fn name(&self) -> String {
        match self {
            Perturbation::Blur(v) => format!("blur={v}"),
            Perturbation::Noise(v) => format!("noise={v}"),
            Perturbation::Jpeg(q) => format!("jpeg={q}"),
            Perturbation::Jpeg420(q) => format!("jpeg420={q}"),
            Perturbation::Brightness(v) => format!("brightness={v}"),
            Perturbation::Gamma(v) => format!("gamma={v}"),
        }
    }

    /// Apply to the eval view of sample `index`.
    pub fn apply(&self, img: &mut RgbImage, index: usize) {
        match *self {
            Perturbation::Blur(sigma) => gaussian_blur(img, sigma),
            Perturbation::Noise(sigma) => {
                let mut rng = Rng::derive(index as u64, &[NOISE_STREAM]);
                for v in img.iter_mut() {
                    *v = quantize(*v as f32 + sigma * rng.normal() as f32);
                }
            }
            Perturbation::Jpeg(q) => crate::augment::jpeg_round_trip(img, q),
            Perturbation::Jpeg420(q) => {
                let (w, h) = (img.width() as usize, img.height() as usize);
                let out = jpeg::round_trip(w, h, img.as_raw(), q, Chroma::Half);
                img.copy_from_slice(&out);
            }
            Perturbation::Brightness(d) => {
                img.iter_mut().for_each(|v| *v = quantize(*v as f32 + d))
            }
            Perturbation::Gamma(g) => {
                let lut: Vec<u8> = (0..256)
                    .map(|v| quantize(255.0 * (v as f32 / 255.0).powf(g)))
                    .collect();
                img.iter_mut().for_each(|v| *v = lut[*v as usize]);
            }
        }
    }
}

fn quantize(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Gaussian blur (the `image` crate's separable kernel), rounded back to bytes.
fn gaussian_blur(img: &mut RgbImage, sigma: f32) {
    // Below this the kernel is a delta (and the crate reads σ = 0 as its default 0.8).
    if sigma >= 0.05 {
        *img = image::imageops::blur(img, sigma);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> RgbImage {
        RgbImage::from_fn(16, 16, |x, y| {
            let v = if (x + y) % 2 == 0 { 200 } else { 40 };
            image::Rgb([v, v / 2, 255 - v])
        })
    }

    #[test]
    fn parse_round_trips_and_refuses_bad_input_in_one_line() {
        for s in [
            "blur=0.8",
            "noise=4",
            "jpeg=60",
            "jpeg420=90",
            "brightness=-20",
            "gamma=0.8",
        ] {
            assert_eq!(Perturbation::parse(s).unwrap().name(), s);
        }
        for (s, want) in [
            ("blur", "kind=value"),
            ("sharpen=1", "unknown kind `sharpen`"),
            ("noise=x", "not a number"),
            ("jpeg=101", "[1, 100]"),
            ("jpeg=60.5", "whole number"),
            ("jpeg420=0", "[1, 100]"),
            ("gamma=0", "[0.1, 10]"),
            ("blur=NaN", "[0, 8]"),
        ] {
            let e = Perturbation::parse(s).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{s}: {e}");
        }
    }

    #[test]
    fn each_kind_changes_the_image_the_way_it_says() {
        let img = checker();
        let mean = |i: &RgbImage| i.iter().map(|&v| v as f64).sum::<f64>() / i.len() as f64;
        let detail = |i: &RgbImage| {
            i.as_raw()
                .windows(4)
                .map(|p| (p[3] as f64 - p[0] as f64).abs())
                .sum::<f64>()
        };
        let run = |p: &str, index| {
            let mut out = img.clone();
            Perturbation::parse(p).unwrap().apply(&mut out, index);
            out
        };
        // Blur keeps the mean and removes the checkerboard; σ 0 is the identity.
        let b = run("blur=1.5", 0);
        assert!((mean(&b) - mean(&img)).abs() < 1.0);
        assert!(detail(&b) < 0.1 * detail(&img));
        assert!(run("blur=0", 0) == img);
        // Noise is the same for the same image index and differs between indices.
        assert!(run("noise=4", 3) == run("noise=4", 3));
        assert!(run("noise=4", 3) != run("noise=4", 4));
        assert!((mean(&run("noise=4", 3)) - mean(&img)).abs() < 1.0);
        assert!((mean(&run("brightness=20", 0)) - mean(&img) - 20.0).abs() < 1.0);
        assert!(mean(&run("gamma=2", 0)) < mean(&img) - 10.0);
        assert!(run("jpeg=30", 0) != img);
        // 4:2:0 averages the checkerboard's colours away where 4:4:4 at the same quality
        // keeps them: the spread between channels shrinks.
        let spread = |i: &RgbImage| {
            i.pixels()
                .map(|p| f64::from(p.0.iter().max().unwrap() - p.0.iter().min().unwrap()))
                .sum::<f64>()
        };
        let (half, full) = (run("jpeg420=95", 0), run("jpeg=95", 0));
        assert!(
            spread(&half) < 0.7 * spread(&full),
            "{} vs {}",
            spread(&half),
            spread(&full)
        );
        assert!(run("gamma=1", 0) == img && run("brightness=0", 0) == img);
    }
}
