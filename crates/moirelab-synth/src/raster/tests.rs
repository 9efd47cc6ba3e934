//! Unit tests of `raster.rs` (kept apart so the module reads as its code).

use super::*;

#[test]
fn srgb_round_trips_every_byte() {
    let lut = srgb8_lut();
    let img = Rgb {
        w: 256,
        h: 1,
        px: lut.iter().flat_map(|&v| [v; 3]).collect(),
    };
    for (i, &b) in img.to_srgb8().iter().enumerate() {
        assert_eq!(b as usize, i / 3);
    }
}

fn random_rgb(w: usize, h: usize, seed: u64) -> Rgb {
    let mut r = Rng::new(seed);
    Rgb {
        w,
        h,
        px: (0..w * h * 3).map(|_| r.f32()).collect(),
    }
}

#[test]
fn ffloor_and_fceil_match_libm() {
    let mut r = Rng::new(13);
    for _ in 0..20_000 {
        let x = r.range(-1e4, 1e4) * if r.bernoulli(0.3) { 1e-4 } else { 1.0 };
        assert_eq!(ffloor(x), x.floor(), "floor {x}");
        assert_eq!(fceil(x), x.ceil(), "ceil {x}");
    }
    for x in [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e15, -1e15] {
        assert_eq!(ffloor(x), x.floor(), "floor {x}");
        assert_eq!(fceil(x), x.ceil(), "ceil {x}");
    }
}

#[test]
fn fast_exp_and_cos_match_libm() {
    let mut r = Rng::new(11);
    for _ in 0..20_000 {
        let y = r.range(-700.0, 5.0);
        assert!((fast_exp(y) / y.exp() - 1.0).abs() < 1e-12, "exp {y}");
        let t = r.range(-3000.0, 3000.0);
        assert!(
            (cos_turns(t) - (std::f64::consts::TAU * t).cos()).abs() < 1e-9,
            "cos {t}"
        );
        assert!(
            (sin_turns(t) - (std::f64::consts::TAU * t).sin()).abs() < 1e-9,
            "sin {t}"
        );
    }
    assert_eq!(fast_exp(0.0), 1.0);
}

#[test]
fn pow01_f32_matches_powf_on_the_tone_range() {
    let mut r = Rng::new(12);
    for _ in 0..20_000 {
        let v = r.f32() * 10f32.powi(-(r.below(30) as i32));
        let g = r.range(0.8, 1.3) as f32;
        let want = (v as f64).powf(g as f64);
        let got = pow01_f32(v, g) as f64;
        let tol = if v >= 1e-3 { 2e-6 } else { 1e-5 };
        assert!(
            (got - want).abs() <= tol * want + 1e-37,
            "{v}^{g}: {got} vs {want}"
        );
    }
    assert_eq!(pow01_f32(0.0, 0.9), 0.0);
    assert!((pow01_f32(1.0, 1.2) - 1.0).abs() < 1e-6);
}

#[test]
fn fill_noise_has_unit_variance_no_correlation_and_bounded_tails() {
    let mut big = vec![0.0f32; 400_000];
    fill_noise(&mut Rng::new(9), &mut big);
    let n = big.len() as f64;
    let mean = big.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = big.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let lag1 = big.windows(2).map(|w| (w[0] * w[1]) as f64).sum::<f64>() / n;
    let kurt = big.iter().map(|&v| (v as f64 - mean).powi(4)).sum::<f64>() / n / (var * var);
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.01, "variance {var}");
    assert!(lag1.abs() < 0.01, "lag-1 correlation {lag1}");
    // Irwin–Hall(4): kurtosis 3 − 1.2/4 = 2.7; bounded at ±√12.
    assert!((kurt - 2.7).abs() < 0.03, "kurtosis {kurt}");
    assert!(big.iter().all(|v| v.abs() <= 12f32.sqrt() + 1e-4));
    // The same seed gives the same noise.
    let mut again = vec![0.0f32; 1000];
    fill_noise(&mut Rng::new(9), &mut again);
    assert_eq!(&again[..], &big[..1000]);
}

#[test]
fn gaussian_kernel_keeps_the_variance_of_narrow_blurs() {
    for sigma in [0.15f32, 0.3, 0.5, 0.64, 0.65, 0.9, 1.5] {
        let k = gaussian_kernel(sigma);
        let r = (k.len() / 2) as f32;
        let sum: f32 = k.iter().sum();
        let var: f32 = k
            .iter()
            .enumerate()
            .map(|(i, w)| w * (i as f32 - r) * (i as f32 - r))
            .sum();
        assert!((sum - 1.0).abs() < 1e-5, "σ {sigma}: sum {sum}");
        let want = sigma * sigma;
        assert!(
            (var - want).abs() < 0.02 * want + 1e-3,
            "σ {sigma}: variance {var}"
        );
    }
}

#[test]
fn value_noise_grid_equals_pointwise_evaluation() {
    let n = ValueNoise::new(&mut Rng::new(2), 5, 4);
    let us: Vec<f32> = (0..37).map(|i| i as f32 / 36.0 - 0.01).collect();
    let vs: Vec<f32> = (0..23).map(|j| j as f32 / 22.0).collect();
    let g = n.grid(&us, &vs);
    for (j, &v) in vs.iter().enumerate() {
        for (i, &u) in us.iter().enumerate() {
            assert_eq!(g[j * us.len() + i], n.at(u, v));
        }
    }
}

#[test]
fn motion_blur_equals_averaging_bilinear_taps() {
    // Reference: the per-pixel formulation (bilinear sample at each tap position).
    for (len, theta) in [(0.8f32, 0.3f32), (2.5, 2.0), (3.0, -0.7), (1.7, 1.4)] {
        let src = random_rgb(19, 13, 7);
        let mut fast = src.clone();
        fast.motion_blur(len, theta);
        let taps = (len.ceil() as usize + 1).max(2);
        let (dx, dy) = (theta.cos(), theta.sin());
        for y in 0..src.h {
            for x in 0..src.w {
                let mut acc = [0.0f32; 3];
                for t in 0..taps {
                    let s = (t as f32 / (taps - 1) as f32 - 0.5) * len;
                    let c = src.sample(x as f32 + 0.5 + s * dx, y as f32 + 0.5 + s * dy);
                    for k in 0..3 {
                        acc[k] += c[k];
                    }
                }
                let got = fast.get(x, y);
                for k in 0..3 {
                    let want = acc[k] / taps as f32;
                    assert!((got[k] - want).abs() < 1e-5, "({x},{y}) {len} {theta}");
                }
            }
        }
    }
}

#[test]
fn gaussian_rows_and_downsample_are_bit_identical_to_naive_loops() {
    let src = random_rgb(14, 6, 9);
    let k = gaussian_kernel(0.9);
    let r = (k.len() / 2) as isize;
    let mut fast = src.px.clone();
    convolve_rows(&mut fast, src.w, src.h, 3, &k);
    for y in 0..src.h {
        for x in 0..src.w as isize {
            for c in 0..3 {
                let mut acc = 0.0;
                for (j, &kv) in k.iter().enumerate() {
                    let sx = (x + j as isize - r).clamp(0, src.w as isize - 1) as usize;
                    acc += kv * src.px[(y * src.w + sx) * 3 + c];
                }
                assert_eq!(fast[(y * src.w + x as usize) * 3 + c], acc);
            }
        }
    }
    let d = src.downsample(2);
    for y in 0..d.h {
        for x in 0..d.w {
            for c in 0..3 {
                let mut acc = 0.0f32;
                for (sx, sy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    acc += src.get(2 * x + sx, 2 * y + sy)[c];
                }
                assert_eq!(d.get(x, y)[c], acc * 0.25);
            }
        }
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
