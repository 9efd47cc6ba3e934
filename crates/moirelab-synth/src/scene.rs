//! Stage C, the scene both classes share: where the card lies in the frame (a perspective
//! homography), the desk behind it, the light on it, specular glare, and the warp of the
//! object (the card, or the card on a viewer canvas inside a bezel) onto the camera's sensor
//! grid. Every distribution here is the same for both classes.

use crate::config::{Bezel, GenConfig};
use crate::display::ScreenParams;
use crate::geom::Homography;
use crate::raster::{fast_exp, hsv, lin, sin_turns, Plane, Rgb, ValueNoise};
use crate::sampling::log_uniform;
use moirelab_core::rng::Rng;
use std::f64::consts::{PI, TAU};

#[derive(Debug, Clone)]
pub(crate) struct SceneParams {
    pub(crate) scale: f64,
    pub(crate) rotation: f64,
    pub(crate) jitter: [[f64; 2]; 4],
    pub(crate) offset: [f64; 2],
    pub(crate) bg_colour: [f32; 3],
    pub(crate) bg_noise: ValueNoise,
    pub(crate) bg_noise_amp: f32,
    pub(crate) grain_amp: f32,
    pub(crate) grain_period: f64,
    pub(crate) grain_angle: f64,
    pub(crate) light_g: f64,
    pub(crate) light_dir: f64,
    pub(crate) vignette: f64,
    pub(crate) shadow: Option<(f64, f64, f64, f64)>,
    pub(crate) glare: Option<GlareParams>,
    pub(crate) flag_frac: f64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct GlareParams {
    pub(crate) centre: [f64; 2],
    pub(crate) sigma: [f64; 2],
    pub(crate) angle: f64,
    pub(crate) gain: f64,
}

impl SceneParams {
    pub(crate) fn draw(rng: &mut Rng, cfg: &GenConfig) -> SceneParams {
        const DESKS: [[u8; 3]; 6] = [
            [120, 84, 56],
            [168, 168, 162],
            [232, 230, 224],
            [40, 48, 70],
            [60, 90, 62],
            [90, 90, 96],
        ];
        let desk = lin(DESKS[rng.below(DESKS.len() as u64) as usize]);
        let tint = [
            0.9 + 0.2 * rng.f32(),
            0.9 + 0.2 * rng.f32(),
            0.9 + 0.2 * rng.f32(),
        ];
        let jitter = [0; 4].map(|_| [rng.range(-0.04, 0.04), rng.range(-0.04, 0.04)]);
        let shadow_on = rng.bernoulli(0.3);
        let shadow = (
            rng.range(0.0, TAU),
            rng.range(-0.3, 0.3),
            rng.range(0.1, 0.35),
            rng.range(0.03, 0.15),
        );
        let glare_on = rng.bernoulli(cfg.knobs.glare_prob);
        let glare = GlareParams {
            centre: [rng.range(0.25, 0.75), rng.range(0.25, 0.75)],
            sigma: [rng.range(0.05, 0.2), rng.range(0.03, 0.1)],
            angle: rng.range(0.0, PI),
            gain: rng.range(0.03, 0.15),
        };
        // The flag must span >= ~22 output pixels at the smallest card scale (>= two cells of
        // a stride-8 feature map), otherwise 14 % of the card width; capped at a quarter of
        // the card so tiny outputs (64 px) still look like cards.
        let flag_frac = (22.0 / (0.75 * cfg.size as f64)).clamp(0.14, 0.25);
        SceneParams {
            scale: rng.range(0.75, 0.95),
            rotation: rng.range(-8.0, 8.0).to_radians(),
            jitter,
            offset: [rng.f64(), rng.f64()],
            bg_colour: [desk[0] * tint[0], desk[1] * tint[1], desk[2] * tint[2]],
            bg_noise: ValueNoise::new(rng, 6, 6),
            bg_noise_amp: rng.range(0.05, 0.3) as f32,
            grain_amp: if rng.bernoulli(0.4) {
                rng.range(0.03, 0.12) as f32
            } else {
                0.0
            },
            grain_period: rng.range(0.02, 0.08),
            grain_angle: rng.range(0.0, PI),
            light_g: rng.range(0.0, 0.25),
            light_dir: rng.range(0.0, TAU),
            vignette: rng.range(0.0, 0.3),
            shadow: shadow_on.then_some(shadow),
            glare: glare_on.then_some(glare),
            flag_frac,
        }
    }

    /// With probability `p`, a desk of any colour (dark to white, grey to saturated) and any
    /// texture (flat to mottled, with wood grain on one in three): the template's six desks
    /// with mottling are what a detector would otherwise learn as "around a genuine card".
    /// Every value is drawn whatever the outcome, so `p` changes which desks and nothing else.
    pub(crate) fn vary_desk(mut self, rng: &mut Rng, p: f64) -> SceneParams {
        let on = rng.bernoulli(p);
        let (h, sat, val) = (rng.f64(), rng.range(0.0, 0.6), rng.range(0.04, 0.97));
        let amp = log_uniform(rng, 0.003, 0.3) as f32;
        let grain = rng.bernoulli(1.0 / 3.0);
        let grain_amp = rng.range(0.02, 0.1) as f32;
        if on {
            self.bg_colour = lin(hsv(h, sat, val));
            self.bg_noise_amp = amp;
            self.grain_amp = if grain { grain_amp } else { 0.0 };
        }
        self
    }
}

/// The object placed in the scene: the card, optionally on a viewer canvas with a bezel.
pub(crate) struct Object {
    pub(crate) rgb: Rgb,
    pub(crate) alpha: Plane,
    /// Emitted-light coverage (screen area) in object coordinates; empty (0×0) when it
    /// equals `alpha` (`emissive_is_alpha`) or is all zero (`!emits`).
    pub(crate) emissive: Plane,
    /// Offset of the card's top-left corner inside the object, in object pixels.
    pub(crate) margin: [f64; 2],
    /// False when `emissive` is all zero (direct captures).
    pub(crate) emits: bool,
    /// True when `emissive` equals `alpha` (a screen without bezel): the warp reuses the
    /// interpolated alpha instead of interpolating the same values twice.
    pub(crate) emissive_is_alpha: bool,
}

/// The object the camera sees: the card itself (its buffers move in, no copy), or the card
/// on a viewer canvas inside a bezel.
pub(crate) fn build_object(
    card_rgb: Rgb,
    card_alpha: Plane,
    screen: bool,
    sp: &ScreenParams,
    cfg: &GenConfig,
) -> Object {
    let bezel = match cfg.knobs.bezel {
        Bezel::AttackOnly => screen,
        Bezel::Both => true,
        Bezel::Off | Bezel::RectifiedCrop => false,
    };
    if !bezel {
        return Object {
            rgb: card_rgb,
            alpha: card_alpha,
            emissive: Plane::new(0, 0),
            margin: [0.0, 0.0],
            emits: screen,
            emissive_is_alpha: screen,
        };
    }
    let (wc, hc) = (card_rgb.w, card_rgb.h);
    let canvas = (sp.canvas_margin * wc as f64).round() as usize;
    let frame = (sp.bezel_width * wc as f64).round().max(1.0) as usize;
    let m = canvas + frame;
    let (w, h) = (wc + 2 * m, hc + 2 * m);
    let bezel_colour = lin([14, 14, 16]);
    let mut rgb = Rgb::filled(w, h, bezel_colour);
    let mut alpha = Plane::new(w, h);
    alpha.px.iter_mut().for_each(|a| *a = 1.0);
    let mut emissive = Plane::new(w, h);
    for y in frame..h - frame {
        for x in frame..w - frame {
            rgb.set(x, y, sp.canvas_colour);
            if screen {
                emissive.px[y * w + x] = 1.0;
            }
        }
    }
    for y in 0..hc {
        for x in 0..wc {
            rgb.blend(x + m, y + m, card_rgb.get(x, y), card_alpha.px[y * wc + x]);
        }
    }
    Object {
        rgb,
        alpha,
        emissive,
        margin: [m as f64, m as f64],
        emits: screen,
        emissive_is_alpha: false,
    }
}

/// Card corners in output pixels for a card texture of `wc × hc` (only the aspect matters).
pub(crate) fn place(sc: &SceneParams, cfg: &GenConfig, wc: f64, hc: f64) -> [[f64; 2]; 4] {
    let wi = cfg.size as f64;
    if cfg.knobs.bezel == Bezel::RectifiedCrop {
        // A document detector's rectified crop: corners at the frame corners, ≤ 1 % slack.
        let j = |k: usize, i: usize| sc.jitter[k][i] * 0.25 * wi;
        return [
            [j(0, 0), j(0, 1)],
            [wi + j(1, 0), j(1, 1)],
            [wi + j(2, 0), wi + j(2, 1)],
            [j(3, 0), wi + j(3, 1)],
        ];
    }
    let mut cw = sc.scale * wi;
    let ch = cw * hc / wc;
    let (c, s) = (sc.rotation.cos(), sc.rotation.sin());
    let mut pts = [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]].map(|[u, v]| {
        let (x, y) = (u * cw, v * ch);
        [x * c - y * s, x * s + y * c]
    });
    for (p, j) in pts.iter_mut().zip(&sc.jitter) {
        p[0] += j[0] * cw;
        p[1] += j[1] * cw;
    }
    let margin = 0.02 * wi;
    let minx = pts.iter().map(|p| p[0]).fold(f64::MAX, f64::min);
    let maxx = pts.iter().map(|p| p[0]).fold(f64::MIN, f64::max);
    let miny = pts.iter().map(|p| p[1]).fold(f64::MAX, f64::min);
    let maxy = pts.iter().map(|p| p[1]).fold(f64::MIN, f64::max);
    let span = (maxx - minx).max(maxy - miny);
    let shrink = ((wi - 2.0 * margin) / span).min(1.0);
    cw *= shrink;
    let _ = cw;
    for p in &mut pts {
        p[0] *= shrink;
        p[1] *= shrink;
    }
    let (minx, maxx, miny, maxy) = (minx * shrink, maxx * shrink, miny * shrink, maxy * shrink);
    let lo_x = margin - minx;
    let hi_x = wi - margin - maxx;
    let lo_y = margin - miny;
    let hi_y = wi - margin - maxy;
    let cx = lo_x + (hi_x - lo_x).max(0.0) * sc.offset[0];
    let cy = lo_y + (hi_y - lo_y).max(0.0) * sc.offset[1];
    pts.map(|p| [p[0] + cx, p[1] + cy])
}

pub(crate) fn background(sc: &SceneParams, wi: usize) -> Rgb {
    let (ca, sa) = (sc.grain_angle.cos(), sc.grain_angle.sin());
    let us: Vec<f32> = (0..wi).map(|x| (x as f32 + 0.5) / wi as f32).collect();
    let noise = sc.bg_noise.grid(&us, &us);
    // The grain's `u·cos` per column (the same products, once per column).
    let u_ca: Vec<f64> = us.iter().map(|&u| u as f64 * ca).collect();
    let mut px = Vec::with_capacity(wi * wi * 3);
    for (&v, nrow) in us.iter().zip(noise.chunks_exact(wi)) {
        let v_sa = v as f64 * sa;
        for (&n, &uc) in nrow.iter().zip(&u_ca) {
            let mut f = 1.0 + sc.bg_noise_amp * (n - 0.5);
            // Wood grain only on 40 % of desks: skip its sine elsewhere.
            if sc.grain_amp != 0.0 {
                let t = (uc + v_sa) / sc.grain_period + n as f64 * 6.0;
                f += sc.grain_amp * sin_turns(t) as f32;
            }
            let f = f.max(0.0);
            px.extend(sc.bg_colour.map(|c| c * f));
        }
    }
    Rgb { w: wi, h: wi, px }
}

/// Warp the object onto the sensor grid: inverse mapping, bilinear texture reads, `n × n`
/// sub-samples per sensor pixel (the pixel's area integrates the texture; `n` grows with the
/// number of texels that fall on one pixel). Returns the image and the emissive coverage.
///
/// The object's colour, alpha and emissive coverage are interleaved into one texture so each
/// sub-sample computes its bilinear weights once and reads one cache line per neighbour.
pub(crate) fn warp(
    obj: &Object,
    fwd: &Homography,
    inv: &Homography,
    bg: Rgb,
    n: usize,
) -> (Rgb, Plane) {
    let wi = bg.w;
    let mut out = bg;
    let mut emis = Plane::new(wi, wi);
    let (tw, th) = (obj.rgb.w, obj.rgb.h);
    let (ow, oh) = (tw as f64, th as f64);
    // `[r, g, b, alpha]` per texel: the four lanes are interpolated together (one SIMD lane
    // each); the emissive plane is read only for screens.
    let tex: Vec<[f32; 4]> = (0..tw * th)
        .map(|i| {
            let c = &obj.rgb.px[i * 3..i * 3 + 3];
            [c[0], c[1], c[2], obj.alpha.px[i]]
        })
        .collect();
    let em = &obj.emissive.px;
    let (xmax, ymax) = ((tw - 1) as f32, (th - 1) as f32);
    // f32 is plenty for the mapping: texture coordinates stay below ~10³, where f32 resolves
    // 1e-4 texel, and f32 division is about twice as fast as f64's.
    let m = inv.m.map(|v| v as f32);
    let (owf, ohf) = (ow as f32, oh as f32);
    // Only pixels inside the image-space bounding box of the texture grown by the 1-texel
    // margin below can have a sub-sample that lands on it (the box of a convex quad holds
    // every point that maps into it); the others keep the background.
    let bb = bbox(fwd, &[-1.0, -1.0, ow + 1.0, oh + 1.0]);
    let span = |lo: f64, hi: f64| {
        let a = (lo - 1.0).floor().clamp(0.0, wi as f64) as usize;
        let b = (hi + 1.0).ceil().clamp(0.0, wi as f64) as usize;
        a..b.max(a)
    };
    let (xs, ys) = (span(bb[0], bb[2]), span(bb[1], bb[3]));
    let n = n.max(1);
    // Sub-sample offsets within a pixel, row-major: (a, b) for a sub-sample at
    // ((a + 0.5)/n, (b + 0.5)/n).
    let off = |i: usize| (i as f32 + 0.5) / n as f32;
    // The mapping's products with the sub-sample's x (per column and a) and y (per row and
    // b) are computed once each; every sub-sample adds the same products in the same order
    // as `m[0]·px + m[1]·py + m[2]` did.
    let col_terms: Vec<[f32; 3]> = xs
        .clone()
        .flat_map(|x| {
            (0..n).map(move |a| {
                let px = x as f32 + off(a);
                [m[0] * px, m[3] * px, m[6] * px]
            })
        })
        .collect();
    let mut row_terms = vec![[0.0f32; 3]; n];
    let norm = 1.0 / (n * n) as f32;
    for y in ys {
        for (b, t) in row_terms.iter_mut().enumerate() {
            let py = y as f32 + off(b);
            *t = [m[1] * py, m[4] * py, m[7] * py];
        }
        for (x, cols) in xs.clone().zip(col_terms.chunks_exact(n)) {
            let mut acc = [0.0f32; 3];
            let mut a_acc = 0.0f32;
            let mut e_acc = 0.0f32;
            for (&[m1py, m4py, m7py], &[m0px, m3px, m6px]) in row_terms
                .iter()
                .flat_map(|r| cols.iter().map(move |c| (r, c)))
            {
                let rw = 1.0 / (m6px + m7py + m[8]);
                let u = (m0px + m1py + m[2]) * rw;
                let v = (m3px + m4py + m[5]) * rw;
                if u < -1.0 || v < -1.0 || u > owf + 1.0 || v > ohf + 1.0 {
                    continue;
                }
                // Bilinear weights exactly as `Plane::sample` / `Rgb::sample` computed them.
                let fx = (u - 0.5).clamp(0.0, xmax);
                let fy = (v - 0.5).clamp(0.0, ymax);
                // fx, fy ≥ 0 after the clamp: through i32 is one conversion instruction and
                // the same index as the saturating `as usize`.
                let (x0, y0) = (fx as i32 as usize, fy as i32 as usize);
                let (x1, y1) = ((x0 + 1).min(tw - 1), (y0 + 1).min(th - 1));
                let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
                let (i00, i10, i01, i11) = (y0 * tw + x0, y0 * tw + x1, y1 * tw + x0, y1 * tw + x1);
                let (p00, p10, p01, p11) = (tex[i00], tex[i10], tex[i01], tex[i11]);
                let mut c = [0.0f32; 4];
                for k in 0..4 {
                    let top = p00[k] + (p10[k] - p00[k]) * tx;
                    let bot = p01[k] + (p11[k] - p01[k]) * tx;
                    c[k] = top + (bot - top) * ty;
                }
                // Away from the texture border the edge coverage is exactly 1.
                let interior = u >= 0.5 && v >= 0.5 && u <= owf - 0.5 && v <= ohf - 0.5;
                let a = if interior {
                    c[3]
                } else {
                    c[3] * edge_cov(u, owf) * edge_cov(v, ohf)
                };
                if a <= 0.0 {
                    continue;
                }
                for k in 0..3 {
                    acc[k] += c[k] * a;
                }
                a_acc += a;
                if obj.emissive_is_alpha {
                    e_acc += c[3] * a;
                } else if obj.emits {
                    let top = em[i00] + (em[i10] - em[i00]) * tx;
                    let bot = em[i01] + (em[i11] - em[i01]) * tx;
                    e_acc += (top + (bot - top) * ty) * a;
                }
            }
            if a_acc > 0.0 {
                let i = (y * wi + x) * 3;
                for k in 0..3 {
                    out.px[i + k] = out.px[i + k] * (1.0 - a_acc * norm) + acc[k] * norm;
                }
                emis.px[y * wi + x] = e_acc * norm;
            }
        }
    }
    (out, emis)
}

/// Coverage of a texture coordinate near the texture border (bilinear clamps otherwise).
#[inline]
fn edge_cov(u: f32, size: f32) -> f32 {
    (u + 0.5).min(size + 0.5 - u).clamp(0.0, 1.0)
}

/// Image-space bounding box of a rectangle under a homography.
pub(crate) fn bbox(h: &Homography, b: &[f64; 4]) -> [f64; 4] {
    let pts = [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]].map(|p| h.apply(p[0], p[1]));
    [
        pts.iter().map(|p| p[0]).fold(f64::MAX, f64::min),
        pts.iter().map(|p| p[1]).fold(f64::MAX, f64::min),
        pts.iter().map(|p| p[0]).fold(f64::MIN, f64::max),
        pts.iter().map(|p| p[1]).fold(f64::MIN, f64::max),
    ]
}

/// Scene light and exposure on the sensor image: a lighting gradient `1 + g·d·(x−c)/W`,
/// vignetting, an optional soft shadow, and per-channel gains (white balance × exposure).
pub(crate) fn light(img: &mut Rgb, sc: &SceneParams, gain: [f64; 3]) {
    let wi = img.w;
    let (dx, dy) = (sc.light_dir.cos(), sc.light_dir.sin());
    let half = wi as f64 * 0.5;
    let shadow = sc
        .shadow
        .map(|(ang, off, depth, soft)| (ang.cos(), ang.sin(), off, depth, soft));
    // Per-column and per-row products, computed once (each pixel combines the same values
    // in the same order as before).
    let coord = |i: usize| (i as f64 + 0.5 - half) / wi as f64;
    let (sca, ssa) = shadow.map_or((0.0, 0.0), |(ca, sa, ..)| (ca, sa));
    // [u, dx·u, u·u, u·cos] per column.
    let cols: Vec<[f64; 4]> = (0..wi)
        .map(|x| {
            let u = coord(x);
            [u, dx * u, u * u, u * sca]
        })
        .collect();
    for (y, row) in img.px.chunks_exact_mut(wi * 3).enumerate() {
        let v = coord(y);
        let (dyv, vv, vsa) = (dy * v, v * v, v * ssa);
        for (p, &[_, dxu, uu, uca]) in row.chunks_exact_mut(3).zip(&cols) {
            let mut f = 1.0 + sc.light_g * (dxu + dyv) * 2.0;
            f *= 1.0 - sc.vignette * (uu + vv) * 2.0;
            if let Some((_, _, off, depth, soft)) = shadow {
                let s = (uca + vsa - off) / soft;
                f *= 1.0 - depth / (1.0 + fast_exp(-s));
            }
            for k in 0..3 {
                p[k] *= (f * gain[k]) as f32;
            }
        }
    }
}

/// Specular glare (glass or lamination: both classes, same distribution) as additive linear
/// light on a `wi × wi` grid, centred inside the card's bounding box `card_bb` (grid pixels).
/// Empty without glare.
pub(crate) fn glare_field(sc: &SceneParams, card_bb: [f64; 4], wi: usize) -> Vec<f64> {
    let Some(gl) = sc.glare else {
        return Vec::new();
    };
    let cx = card_bb[0] + gl.centre[0] * (card_bb[2] - card_bb[0]);
    let cy = card_bb[1] + gl.centre[1] * (card_bb[3] - card_bb[1]);
    let (ca, sa) = (gl.angle.cos(), gl.angle.sin());
    let (sx, sy) = (gl.sigma[0] * wi as f64, gl.sigma[1] * wi as f64);
    // [dx·cos, −dx·sin] per column (the same products, once per column).
    let cols: Vec<[f64; 2]> = (0..wi)
        .map(|x| {
            let dx = x as f64 + 0.5 - cx;
            [dx * ca, -dx * sa]
        })
        .collect();
    let mut f = vec![0.0; wi * wi];
    for (y, row) in f.chunks_exact_mut(wi).enumerate() {
        let dy = y as f64 + 0.5 - cy;
        let (dy_sa, dy_ca) = (dy * sa, dy * ca);
        for (o, &[dx_ca, ndx_sa]) in row.iter_mut().zip(&cols) {
            let (a, b) = ((dx_ca + dy_sa) / sx, (ndx_sa + dy_ca) / sy);
            let q = 0.5 * (a * a + b * b);
            if q < 12.0 {
                *o = gl.gain * fast_exp(-q);
            }
        }
    }
    f
}
