//! The card's optically variable device (OVD): a diffractive foil, as a disc over the
//! portrait's corner or in the text field, or as a strip across the card's height.
//!
//! A diffraction grating sends a different wavelength towards the camera at every angle, so
//! within one photo the foil shows a rainbow whose hue drifts across the patch (the viewing
//! angle changes with position), modulated by the foil's relief design (rings or wavy line
//! bundles: parts of the relief that send no light towards the camera look silvery grey). A
//! photo of a genuine card shows it, and so does the attacker's file shown on a screen (a
//! photo or scan of a card), so it is drawn for both classes from one distribution: a
//! coloured, periodic structure that is *not* screen evidence, next to the colour moiré that
//! is. Off unless `hologram-prob` is set (docs/SYNTH.md).
//!
//! Band limit: the relief's period is given in card widths, as a real foil's is in
//! millimetres; where it spans fewer than [`FADE_TEXELS`] texels the texture cannot hold it
//! (a coarse display cannot show it) and the modulation fades out instead of aliasing.

use super::canvas::Canvas;
use super::{CARD_ASPECT, SS};
use crate::raster::{cos_turns, sin_turns};
use moirelab_core::rng::Rng;

/// Periods of fewer texels than `FADE_TEXELS.1` are attenuated, of fewer than `.0` dropped.
const FADE_TEXELS: (f64, f64) = (2.0, 4.0);

/// Where the foil lies, in card-normalised units (x in widths, y in heights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Centre and radius (the radius in card widths, so the disc is round on the card).
    Disc { c: [f64; 2], r: f64 },
    /// A band across the whole height, `x0..x1` of the width.
    Strip { x0: f64, x1: f64 },
}

/// The foil's relief design.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Relief {
    /// Concentric rings around the shape's centre.
    Rings,
    /// Parallel wavy lines: direction (turns) and the waviness (the lines' sideways
    /// excursion in periods, and the wave's length in card widths).
    Waves { dir: f64, amp: f64, wave: f64 },
}

/// One card's foil (every parameter drawn whether or not the card carries one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hologram {
    pub shape: Shape,
    pub relief: Relief,
    /// Relief period, card widths.
    pub period: f64,
    /// Hue at the shape's centre (turns) and its drift across the card (turns per card
    /// width) along `hue_dir` (turns).
    pub hue0: f64,
    pub hue_drift: f64,
    pub hue_dir: f64,
    /// Opacity of the foil (how much of the print under it is hidden), its brightness
    /// (linear light, relative to white) and saturation (1: pure spectral colours, 0: silver).
    pub opacity: f32,
    pub brightness: f32,
    pub saturation: f32,
    /// Share of the relief's modulation (0: a flat foil).
    pub contrast: f32,
}

impl Hologram {
    /// Draw a foil from `rng`; `None` with probability `1 − p`. All parameters are drawn
    /// first, so `p` does not shift the stream.
    pub fn draw(rng: &mut Rng, p: f64) -> Option<Hologram> {
        // Discs: a seal over the portrait's lower right corner (the photo box ends at 0.32 of
        // the width), or in the text field below the flag (which ends above 0.33 of the height).
        let r = rng.range(0.06, 0.11);
        let disc_photo = [rng.range(0.26, 0.34), rng.range(0.55, 0.68)];
        let disc_text = [rng.range(0.48, 0.85), rng.range(0.52, 0.62)];
        let strip_w = rng.range(0.04, 0.08);
        let strip_c = rng.range(0.33, 0.37);
        let shape = match rng.below(3) {
            0 => Shape::Disc { c: disc_photo, r },
            1 => Shape::Disc { c: disc_text, r },
            _ => Shape::Strip {
                x0: strip_c - strip_w / 2.0,
                x1: strip_c + strip_w / 2.0,
            },
        };
        // The design's lines as a 128-px photo can show them: 1.3–3.4 mm on an 85.6-mm card,
        // 1.5–5 output pixels (finer relief is there on a real foil, but averages to its
        // mean colour at this resolution).
        let period = rng.range(0.015, 0.04);
        let (dir, wave, bend) = (rng.f64(), rng.range(0.05, 0.2), rng.range(0.0, 0.5));
        let relief = if rng.bernoulli(0.5) {
            Relief::Rings
        } else {
            // The excursion is sized so that the waviness adds at most half the lines' own
            // spatial frequency across them (`bend` ≤ 0.5).
            Relief::Waves {
                dir,
                amp: bend * wave / (std::f64::consts::TAU * period),
                wave,
            }
        };
        let h = Hologram {
            shape,
            relief,
            period,
            hue0: rng.f64(),
            hue_drift: rng.range(0.5, 4.0),
            hue_dir: rng.f64(),
            opacity: rng.range(0.2, 0.6) as f32,
            brightness: rng.range(0.45, 1.1) as f32,
            saturation: rng.range(0.25, 0.9) as f32,
            contrast: rng.range(0.3, 1.0) as f32,
        };
        rng.bernoulli(p).then_some(h)
    }

    /// Name for the manifest.
    pub fn name(&self) -> &'static str {
        match (self.shape, self.relief) {
            (Shape::Disc { .. }, Relief::Rings) => "disc-rings",
            (Shape::Disc { .. }, Relief::Waves { .. }) => "disc-waves",
            (Shape::Strip { .. }, Relief::Rings) => "strip-rings",
            (Shape::Strip { .. }, Relief::Waves { .. }) => "strip-waves",
        }
    }

    /// The finest period of the relief anywhere (card widths): the lines' own period,
    /// shortened where the waviness adds frequency across them.
    fn finest_period(&self) -> f64 {
        match self.relief {
            Relief::Rings => self.period,
            Relief::Waves { amp, wave, .. } => {
                let across = std::f64::consts::TAU * amp * self.period / wave;
                self.period / (1.0 + across * across).sqrt()
            }
        }
    }

    /// Centre of the shape (card-normalised), the origin of rings and hue drift.
    fn centre(&self) -> [f64; 2] {
        match self.shape {
            Shape::Disc { c, .. } => c,
            Shape::Strip { x0, x1 } => [(x0 + x1) / 2.0, 0.5],
        }
    }

    /// Bounding box in card-normalised units.
    fn bounds(&self) -> [f64; 4] {
        match self.shape {
            Shape::Disc { c, r } => {
                let ry = r * CARD_ASPECT;
                [c[0] - r, c[1] - ry, c[0] + r, c[1] + ry]
            }
            Shape::Strip { x0, x1 } => [x0, 0.0, x1, 1.0],
        }
    }

    /// Whether a point (in card widths from the centre, both axes) lies on the foil.
    fn inside(&self, dx: f64, dy: f64) -> bool {
        match self.shape {
            Shape::Disc { r, .. } => dx * dx + dy * dy <= r * r,
            Shape::Strip { x0, x1 } => dx.abs() <= (x1 - x0) / 2.0,
        }
    }

    /// Relief phase (turns) at a point in card widths from the centre.
    fn phase(&self, dx: f64, dy: f64) -> f64 {
        match self.relief {
            Relief::Rings => (dx * dx + dy * dy).sqrt() / self.period,
            Relief::Waves { dir, amp, wave } => {
                let (c, s) = (cos_turns(dir), sin_turns(dir));
                let along = dx * c + dy * s;
                let across = -dx * s + dy * c;
                along / self.period + amp * sin_turns(across / wave)
            }
        }
    }
}

/// `[r, g, b]` of hue `h` (turns), three raised cosines a third of a turn apart (their sum is
/// 1.5 at every hue).
fn spectral(h: f64) -> [f32; 3] {
    let c = |t: f64| (0.5 + 0.5 * cos_turns(h - t)) as f32;
    [c(0.0), c(1.0 / 3.0), c(2.0 / 3.0)]
}

/// Paint the foil onto a `wc × hc` canvas (display pixels), with 2×2 sub-samples for its
/// outline.
pub(super) fn paint_hologram(cv: &mut Canvas, h: &Hologram, (wc, hc): (usize, usize)) {
    let (wf, hf) = ((wc * SS) as f64, (hc * SS) as f64);
    // Card widths per canvas pixel, on both axes (the canvas has square texels).
    let unit = 1.0 / wf;
    let fade = {
        let texels = h.finest_period() / unit;
        ((texels - FADE_TEXELS.0) / (FADE_TEXELS.1 - FADE_TEXELS.0)).clamp(0.0, 1.0) as f32
    };
    let [cx, cy] = h.centre();
    let (cx, cy) = (cx, cy / CARD_ASPECT); // centre in card widths
    let [bx0, by0, bx1, by1] = h.bounds();
    let xa = (bx0 * wf).floor().max(0.0) as usize;
    let ya = (by0 * hf).floor().max(0.0) as usize;
    let xb = ((bx1 * wf).ceil().max(0.0) as usize).min(cv.hi.w);
    let yb = ((by1 * hf).ceil().max(0.0) as usize).min(cv.hi.h);
    let (hd_c, hd_s) = (cos_turns(h.hue_dir), sin_turns(h.hue_dir));
    const SUB: [(f64, f64); 4] = super::AA;
    for y in ya..yb {
        for x in xa..xb {
            let cover = SUB
                .iter()
                .filter(|(sx, sy)| {
                    let dx = (x as f64 + sx) * unit - cx;
                    let dy = (y as f64 + sy) * unit - cy;
                    h.inside(dx, dy)
                })
                .count() as f32
                / SUB.len() as f32;
            if cover == 0.0 {
                continue;
            }
            let dx = (x as f64 + 0.5) * unit - cx;
            let dy = (y as f64 + 0.5) * unit - cy;
            let relief = 0.5 + 0.5 * cos_turns(h.phase(dx, dy)) as f32;
            let m = 1.0 - h.contrast * fade * (1.0 - relief);
            let hue = h.hue0 + h.hue_drift * (dx * hd_c + dy * hd_s);
            let sp = spectral(hue);
            let c = sp.map(|v| h.brightness * (h.saturation * v + (1.0 - h.saturation) * 0.5));
            // Where the relief sends light to the camera the foil shows its colour; elsewhere
            // it shows a dimmer silver.
            let silver = 0.35 * h.brightness;
            let col = c.map(|v| m * v + (1.0 - m) * silver);
            cv.hi.blend(x, y, col, cover * h.opacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::Rgb;

    fn canvas(w: usize, h: usize) -> Canvas {
        Canvas {
            hi: Rgb::filled(w, h, [0.5, 0.5, 0.5]),
        }
    }

    #[test]
    fn probability_selects_without_shifting_the_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert!(Hologram::draw(&mut a, 0.0).is_none());
        let h = Hologram::draw(&mut b, 1.0).expect("p = 1 always draws a foil");
        assert_eq!(a.next_u64(), b.next_u64());
        assert!(h.opacity > 0.0 && h.period > 0.0);
        let n = (0..400)
            .filter(|&i| Hologram::draw(&mut Rng::derive(3, &[i]), 0.3).is_some())
            .count();
        assert!((80..160).contains(&n), "{n} of 400 at p = 0.3");
    }

    #[test]
    fn foils_stay_off_the_flag() {
        // The largest flag the scene draws (a quarter of the card width), in either corner
        // (a mirrored design puts it top left), and every shape.
        for mirrored in [false, true] {
            let flag = super::super::layout(0.25, mirrored).flag;
            for i in 0..2000 {
                let h = Hologram::draw(&mut Rng::derive(11, &[i]), 1.0).unwrap();
                let [x0, y0, x1, y1] = h.bounds();
                let apart = x1 <= flag[0] || x0 >= flag[2] || y1 <= flag[1] || y0 >= flag[3];
                assert!(apart, "foil {:?} overlaps the flag {flag:?}", h.shape);
            }
        }
    }

    #[test]
    fn paints_only_inside_its_shape_and_adds_colour() {
        let (wc, hc) = (400, (400.0 / CARD_ASPECT).round() as usize);
        let mut h = Hologram::draw(&mut Rng::new(1), 1.0).unwrap();
        h.shape = Shape::Disc {
            c: [0.5, 0.5],
            r: 0.1,
        };
        let mut cv = canvas(wc, hc);
        paint_hologram(&mut cv, &h, (wc, hc));
        let changed = |x: usize, y: usize| cv.hi.get(x, y) != [0.5, 0.5, 0.5];
        // The disc is round on the card: radius 40 texels on both axes.
        let (cx, cy) = (200, hc / 2);
        assert!(changed(cx, cy));
        assert!(!changed(cx + 42, cy) && !changed(cx, cy + 42) && !changed(cx - 42, cy));
        assert!(changed(cx + 38, cy) && changed(cx, cy - 38));
        // Colour: the channels differ somewhere on the foil (saturation ≥ 0.25).
        let spread = (cx - 30..cx + 30)
            .map(|x| {
                let p = cv.hi.get(x, cy);
                p.iter().cloned().fold(f32::MIN, f32::max)
                    - p.iter().cloned().fold(f32::MAX, f32::min)
            })
            .fold(0.0f32, f32::max);
        assert!(spread > 0.02, "channel spread {spread}");
    }

    #[test]
    fn relief_too_fine_for_the_texture_fades_instead_of_aliasing() {
        // A strip with a vertical-line relief of 1.2 texels: above the texture's Nyquist
        // rate. Faded, the painted rows are flat; on a 10× finer canvas the lines show.
        let relief_spread = |wc: usize, period_texels: f64| {
            let hc = (wc as f64 / CARD_ASPECT).round() as usize;
            let mut h = Hologram::draw(&mut Rng::new(2), 1.0).unwrap();
            h.shape = Shape::Strip { x0: 0.3, x1: 0.7 };
            h.relief = Relief::Waves {
                dir: 0.0,
                amp: 0.0,
                wave: 0.1,
            };
            // Pure green against the silver, fully opaque: the relief's full swing.
            (h.hue0, h.hue_drift, h.saturation, h.opacity) = (1.0 / 3.0, 0.0, 1.0, 1.0);
            h.contrast = 1.0;
            h.period = period_texels / wc as f64;
            let mut cv = canvas(wc, hc);
            paint_hologram(&mut cv, &h, (wc, hc));
            let y = hc / 2;
            let g: Vec<f32> = (wc * 2 / 5..wc * 3 / 5)
                .map(|x| cv.hi.get(x, y)[1])
                .collect();
            g.iter().cloned().fold(f32::MIN, f32::max) - g.iter().cloned().fold(f32::MAX, f32::min)
        };
        assert!(relief_spread(100, 1.2) < 1e-6);
        assert!(relief_spread(1000, 12.0) > 0.05);
    }
}
