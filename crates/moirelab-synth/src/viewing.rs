//! The panel seen off its axis (artifact `angle`, off by default).
//!
//! LCD and OLED panels change their luminance, gamma, black level and tint with the angle at
//! which they are seen, and a phone held close to a screen sees every part of the card at
//! another angle (the card fills most of its field of view). A recapture therefore carries a
//! smooth tone gradient across the card whose shape depends on the panel technology: IPS
//! panels dim a little and glow in the blacks, VA panels wash out (their gamma drops), TN
//! panels change gamma with the *vertical* angle (washed out from one side, dark from the
//! other), OLEDs keep their tone and drift in tint. The coefficients below are per sin²θ, so
//! an effect grows with the angle squared near the axis, as the panels' measured viewing-angle
//! curves do; their sizes follow the usual review figures (at 30°: IPS about −7 % luminance,
//! VA and TN gamma 10–30 % flatter, OLED a visible white-point shift).

use crate::display::{saturate_balance, ScreenParams};
use crate::raster::{cos_turns, pow01_f32, sin_turns, Rgb};
use moirelab_core::rng::Rng;

/// Panel technology, for its off-axis response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Panel {
    Ips,
    Va,
    Tn,
    Oled,
}

/// Off-axis changes per unit of sin²θ (`gamma_v`: per unit of the vertical sine).
struct OffAxis {
    /// Relative loss of peak luminance.
    lum: f64,
    /// Relative drop of the gamma exponent (flatter curve: washed out).
    gamma: f64,
    /// Drop of the gamma exponent per unit of the vertical sine (TN's asymmetry).
    gamma_v: f64,
    /// Black level added, as a share of white (IPS glow).
    black: f64,
}

impl Panel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Panel::Ips => "ips",
            Panel::Va => "va",
            Panel::Tn => "tn",
            Panel::Oled => "oled",
        }
    }

    fn off_axis(self) -> OffAxis {
        let (lum, gamma, gamma_v, black) = match self {
            Panel::Ips => (0.3, 0.1, 0.0, 0.02),
            Panel::Va => (0.4, 0.6, 0.0, 0.01),
            Panel::Tn => (0.5, 0.5, 0.6, 0.01),
            Panel::Oled => (0.2, 0.0, 0.0, 0.0),
        };
        OffAxis {
            lum,
            gamma,
            gamma_v,
            black,
        }
    }
}

/// How the camera sees the panel: its technology, the sine of the off-axis angle at the
/// object's centre (a 2-vector: x right, y down the panel) and how much that sine changes
/// from the centre to the object's left or right edge (the camera's field of view).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct View {
    pub(crate) panel: Panel,
    pub(crate) tilt: [f64; 2],
    pub(crate) span: f64,
    /// Blue/red drift per sin²θ (OLED; either sign, 0 on LCDs).
    pub(crate) tint: f64,
}

impl View {
    /// Ranges: the phone's axis 0–30° off the panel's normal in any direction (sin 0–0.5);
    /// the card's edges a further 12–27° off (span 0.2–0.45: a phone's 65–75° field of view,
    /// the card filling most of it). LCD stripe panels are IPS (60 %), VA (25 %) or TN (15 %);
    /// PenTile panels are OLED, with a white-point drift of ±15 % blue/red per sin²θ.
    pub(crate) fn draw(rng: &mut Rng, oled: bool) -> View {
        let kind = rng.f64();
        let (dir, mag) = (rng.f64(), rng.range(0.0, 0.5));
        let span = rng.range(0.2, 0.45);
        let tint = if rng.bernoulli(0.5) { 0.15 } else { -0.15 };
        let panel = match (oled, kind) {
            (true, _) => Panel::Oled,
            (false, k) if k < 0.6 => Panel::Ips,
            (false, k) if k < 0.85 => Panel::Va,
            _ => Panel::Tn,
        };
        View {
            panel,
            tilt: [mag * cos_turns(dir), mag * sin_turns(dir)],
            span,
            tint: if oled { tint } else { 0.0 },
        }
    }

    /// Sine of the off-axis angle at `(x, y)`, in object widths from its centre, limited to
    /// sin 60° (no one photographs a panel more obliquely and still reads the card).
    fn sine_at(&self, x: f64, y: f64) -> [f64; 2] {
        let s = [
            self.tilt[0] + 2.0 * self.span * x,
            self.tilt[1] + 2.0 * self.span * y,
        ];
        let n = (s[0] * s[0] + s[1] * s[1]).sqrt();
        let max = 0.866;
        if n > max {
            s.map(|v| v * max / n)
        } else {
            s
        }
    }
}

/// The panel's tone at every pixel of `img` (the shown object, linear light), as seen from
/// `view`: the panel's own curve, white point and gamut (`tone`; an ideal panel without it)
/// with the off-axis changes at that pixel's angle, scaled by `gain` (`artifact-gain`).
pub(crate) fn apply_viewed_tone(
    img: &mut Rgb,
    sp: &ScreenParams,
    tone: bool,
    view: &View,
    gain: f64,
) {
    let (gamma, black, white, blue_red, sat) = if tone {
        (sp.gamma, sp.black, sp.white, sp.blue_red, sp.saturation)
    } else {
        (1.0, 0.0, 1.0, 1.0, 1.0)
    };
    let r = view.panel.off_axis();
    let (w, h) = (img.w, img.h);
    let unit = 1.0 / w as f64;
    for y in 0..h {
        let dy = (y as f64 + 0.5 - h as f64 / 2.0) * unit;
        for x in 0..w {
            let s = view.sine_at((x as f64 + 0.5) * unit - 0.5, dy);
            let s2 = s[0] * s[0] + s[1] * s[1];
            let g = (gamma * (1.0 - gain * (r.gamma * s2 + r.gamma_v * s[1]))).clamp(0.4, 1.6);
            let wt = white * (1.0 - gain * r.lum * s2).max(0.05);
            let bk = black + gain * r.black * s2 * white;
            let rb = (blue_red * (1.0 + gain * view.tint * s2)).max(0.1).sqrt();
            let gains = [(1.0 / rb) as f32, 1.0, rb as f32];
            let i = (y * w + x) * 3;
            let p = &mut img.px[i..i + 3];
            let v = saturate_balance(p, sat as f32, gains);
            for k in 0..3 {
                p[k] = bk as f32 + (wt - bk) as f32 * pow01_f32(v[k].clamp(0.0, 1.0), g as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GenConfig;
    use crate::display::ScreenParams;
    use crate::sampling::Hold;

    fn screen() -> ScreenParams {
        let cfg = GenConfig::preset("clean").unwrap();
        ScreenParams::draw(&mut Rng::new(5), &cfg, Hold::Free)
    }

    fn grey(w: usize, h: usize, v: f32) -> Rgb {
        Rgb::filled(w, h, [v; 3])
    }

    #[test]
    fn on_axis_with_no_field_of_view_an_ideal_panel_changes_nothing() {
        let view = View {
            panel: Panel::Tn,
            tilt: [0.0, 0.0],
            span: 0.0,
            tint: 0.0,
        };
        let mut img = grey(16, 10, 0.4);
        apply_viewed_tone(&mut img, &screen(), false, &view, 1.0);
        for v in img.px {
            assert!((v - 0.4).abs() < 1e-5, "{v}");
        }
    }

    #[test]
    fn off_axis_dims_the_edges_and_tn_depends_on_the_vertical_side() {
        // An IPS panel seen head-on: the edges (larger angle) are darker than the centre.
        let ips = View {
            panel: Panel::Ips,
            tilt: [0.0, 0.0],
            span: 0.4,
            tint: 0.0,
        };
        let mut img = grey(41, 25, 0.5);
        apply_viewed_tone(&mut img, &screen(), false, &ips, 1.0);
        let (centre, edge) = (img.get(20, 12)[1], img.get(0, 12)[1]);
        assert!(edge < centre - 0.005, "edge {edge} centre {centre}");
        // Symmetric left/right.
        assert!((img.get(0, 12)[1] - img.get(40, 12)[1]).abs() < 1e-5);
        // TN: the top and bottom halves differ (the gamma moves with the vertical sine).
        let tn = View {
            panel: Panel::Tn,
            ..ips
        };
        let mut img = grey(41, 41, 0.3);
        apply_viewed_tone(&mut img, &screen(), false, &tn, 1.0);
        let (top, bottom) = (img.get(20, 2)[1], img.get(20, 38)[1]);
        assert!((top - bottom).abs() > 0.02, "top {top} bottom {bottom}");
        // With gain 0 nothing happens at any angle.
        let mut img = grey(41, 41, 0.3);
        apply_viewed_tone(&mut img, &screen(), false, &tn, 0.0);
        assert!(img.px.iter().all(|v| (v - 0.3).abs() < 1e-5));
    }

    #[test]
    fn oled_tint_drifts_with_the_angle_and_lcds_have_none() {
        let mut tinted = 0;
        for i in 0..200 {
            let v = View::draw(&mut Rng::derive(9, &[i]), i % 2 == 0);
            assert_eq!(v.panel == Panel::Oled, i % 2 == 0);
            if v.panel != Panel::Oled {
                assert_eq!(v.tint, 0.0);
            } else {
                tinted += 1;
                assert!(v.tint.abs() > 0.0);
            }
            assert!((v.tilt[0].powi(2) + v.tilt[1].powi(2)).sqrt() <= 0.5 + 1e-12);
        }
        assert_eq!(tinted, 100);
        let oled = View {
            panel: Panel::Oled,
            tilt: [0.5, 0.0],
            span: 0.3,
            tint: 0.15,
        };
        let mut img = grey(20, 12, 0.5);
        apply_viewed_tone(&mut img, &screen(), false, &oled, 1.0);
        let p = img.get(19, 6);
        assert!(p[2] > p[0] + 0.005, "blue {} red {}", p[2], p[0]);
    }
}
