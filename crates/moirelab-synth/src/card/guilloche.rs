//! The guilloche: 2–4 layers of spirograph rosettes and sine-line bundles, thin lines at
//! 5–15 % contrast (optionally drawn aliased: accidental moiré on genuine cards too).

use super::canvas::{stroke, Canvas, EMPTY};
use super::{CardSpec, SS};
use crate::raster::Plane;
use moirelab_core::rng::Rng;

/// Where the guilloche lies, for the labels: one disc `[cx, cy, r]` per rosette and one row
/// band `[y0, y1)` per sine bundle (display pixels).
#[derive(Debug, Clone, Default)]
pub(super) struct Guilloche {
    pub(super) layers: usize,
    pub(super) discs: Vec<[f64; 3]>,
    pub(super) bands: Vec<[f64; 2]>,
}

/// Paint the guilloche layers onto the `wc` × `hc` card; `cov` is a cleared coverage plane
/// of the canvas's size (left cleared).
pub(super) fn paint_guilloche(
    cv: &mut Canvas,
    cov: &mut Plane,
    spec: &CardSpec,
    (wc, hc): (usize, usize),
    rng: &mut Rng,
) -> Guilloche {
    let (wf, hf) = (wc as f64, hc as f64);
    let s = SS as f64;
    let layers = 2 + rng.below(3) as usize;
    let mut out = Guilloche {
        layers,
        ..Guilloche::default()
    };
    // 0.8 display pixels at a 256-px-wide card: 0.4 output pixels at 128 px whatever the
    // texture resolution (a higher floor makes the lines bolder and the paper busier on
    // coarse textures). The floor keeps the analytic coverage honest: a line of width w
    // deposits (w/2 + ½)² of ink per unit length, within 7 % of w from w = 0.6 up.
    let line_w = if spec.aliased {
        0.6
    } else {
        0.8 * s * wf / 256.0
    }
    .max(0.6);
    for _ in 0..layers {
        let contrast = rng.range(0.05, 0.15) as f32;
        let colour = [
            spec.base[0] * (1.0 - contrast * 3.0) + spec.ink[0] * contrast * 3.0,
            spec.base[1] * (1.0 - contrast * 3.0) + spec.ink[1] * contrast * 3.0,
            spec.base[2] * (1.0 - contrast * 3.0) + spec.ink[2] * contrast * 3.0,
        ];
        let region = if rng.bernoulli(0.5) {
            let (region, disc) = rosette(cov, (wf, hf), line_w, spec.aliased, rng);
            out.discs.push(disc);
            region
        } else {
            let (region, band) = sine_bundle(cov, (wc, hf), line_w, spec.aliased, rng);
            out.bands.push(band);
            region
        };
        cv.paint(cov, region, colour, 1.0);
    }
    out
}

/// Stroke 4–9 nested copies of a rosette x = (R−r)cos t + d cos((R−r)t/r),
/// y = (R−r)sin t − d sin((R−r)t/r) into `cov`; returns the touched region and the disc
/// `[cx, cy, r]` (display pixels) the rosette covers.
fn rosette(
    cov: &mut Plane,
    (wf, hf): (f64, f64),
    line_w: f64,
    aliased: bool,
    rng: &mut Rng,
) -> ([usize; 4], [f64; 3]) {
    let s = SS as f64;
    let mut region = EMPTY;
    let big_r = (5 + rng.below(5)) as f64;
    let r = (1 + rng.below(3)) as f64;
    let d = rng.range(0.5, 1.5) * r;
    let outer = big_r - r + d;
    let radius = rng.range(0.18, 0.34) * hf * s;
    let (cx, cy) = (rng.range(0.3, 0.8) * wf * s, rng.range(0.3, 0.7) * hf * s);
    let copies = 4 + rng.below(6) as usize;
    let loops = (r as u64).max(1) as f64;
    for k in 0..copies {
        let scale = radius / outer * (1.0 - 0.07 * k as f64);
        // Enough points that no segment exceeds 1.5 canvas pixels (a chord of length
        // L strays L²/8ρ from a loop of radius ρ: 0.1 px at ρ = 3 px); the curve's
        // speed is at most scale·(R−r)·(1 + d/r) per unit of t.
        let vmax = scale * (big_r - r) * (1.0 + d / r);
        let n = ((std::f64::consts::TAU * loops * vmax / 1.5).ceil() as usize)
            .clamp(64, 600 * loops as usize);
        let rot = k as f64 * 0.05;
        // x = (R−r)cos(t+rot) + d cos(q+rot), y = (R−r)sin(t+rot) − d sin(q+rot),
        // q = (R−r)/r·t: both angles advance by a fixed step, so the unit vectors
        // are rotated by a fixed complex factor instead of four sin/cos per point
        // (relative drift after 1800 steps ~1e-13).
        let dt = std::f64::consts::TAU * loops / n as f64;
        let dq = (big_r - r) / r * dt;
        let (sa, ca) = dt.sin_cos();
        let (sb, cb) = dq.sin_cos();
        let (mut a, mut b) = (rot.sin_cos(), rot.sin_cos());
        let pts: Vec<[f64; 2]> = (0..=n)
            .map(|_| {
                let x = (big_r - r) * a.1 + d * b.1;
                let y = (big_r - r) * a.0 - d * b.0;
                a = (a.0 * ca + a.1 * sa, a.1 * ca - a.0 * sa);
                b = (b.0 * cb + b.1 * sb, b.1 * cb - b.0 * sb);
                [cx + x * scale, cy + y * scale]
            })
            .collect();
        region = stroke(cov, &pts, line_w, aliased, region);
    }
    (region, [cx / s, cy / s, radius / s + 1.0])
}

/// Stroke a bundle of 6–13 sine lines y = c + A sin(2πx/λ + φ) across the card (`wc`
/// display pixels wide) into `cov`; returns the touched region and the row band `[y0, y1)`
/// (display pixels) the bundle covers.
fn sine_bundle(
    cov: &mut Plane,
    (wc, hf): (usize, f64),
    line_w: f64,
    aliased: bool,
    rng: &mut Rng,
) -> ([usize; 4], [f64; 2]) {
    let s = SS as f64;
    let wf = wc as f64;
    let mut region = EMPTY;
    let lines = 6 + rng.below(8) as usize;
    let spacing = rng.range(0.012, 0.03) * hf * s;
    let amp = rng.range(0.03, 0.12) * hf * s;
    let lambda = rng.range(0.25, 0.7) * wf * s;
    let phase = rng.range(0.0, std::f64::consts::TAU);
    let y0 = rng.range(0.2, 0.75) * hf * s;
    for l in 0..lines {
        let c = y0 + l as f64 * spacing;
        let n = (wc * SS) / 2;
        let pts: Vec<[f64; 2]> = (0..=n)
            .map(|i| {
                let x = i as f64 * 2.0;
                let ph = std::f64::consts::TAU * x / lambda + phase + l as f64 * 0.08;
                [x, c + amp * ph.sin()]
            })
            .collect();
        region = stroke(cov, &pts, line_w, aliased, region);
    }
    let band = [
        (y0 - amp) / s - 1.0,
        (y0 + lines as f64 * spacing + amp) / s + 1.0,
    ];
    (region, band)
}
