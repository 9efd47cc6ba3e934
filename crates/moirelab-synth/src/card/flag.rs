//! The flag of shortcut S1: the two design families, their layouts and palettes, and the
//! flag's painting onto the card.

use super::canvas::Canvas;
use super::{BoxF, AA, SS};
use crate::raster::lin;
use moirelab_core::rng::Rng;

/// The two flag design families of shortcut S1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagFamily {
    A,
    B,
}

impl FlagFamily {
    pub fn name(self) -> &'static str {
        match self {
            FlagFamily::A => "A",
            FlagFamily::B => "B",
        }
    }
    pub fn other(self) -> FlagFamily {
        match self {
            FlagFamily::A => FlagFamily::B,
            FlagFamily::B => FlagFamily::A,
        }
    }
}

/// Flag layouts. Family A has horizontal structure in warm colours, family B vertical or
/// diagonal structure in cool colours; every flag uses three colours including white, so the
/// ink coverage of "a flag" is the same for both families. Hue plus stripe orientation makes
/// the family a cue a shallow CNN picks up within an epoch — by design: the shortcut must be
/// easier than the screen artifacts (docs/SYNTH.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagLayout {
    HorizontalTricolour,
    HorizontalBicolour,
    NordicCross,
    VerticalTricolour,
    VerticalBicolour,
    Diagonal,
}

impl FlagLayout {
    pub fn name(self) -> &'static str {
        match self {
            FlagLayout::HorizontalTricolour => "horizontal-tricolour",
            FlagLayout::HorizontalBicolour => "horizontal-bicolour",
            FlagLayout::NordicCross => "nordic-cross",
            FlagLayout::VerticalTricolour => "vertical-tricolour",
            FlagLayout::VerticalBicolour => "vertical-bicolour",
            FlagLayout::Diagonal => "diagonal",
        }
    }
}

/// One concrete flag design.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlagDesign {
    pub layout: FlagLayout,
    pub colours: [[f32; 3]; 3],
    pub emblem: bool,
}

const WHITE: [u8; 3] = [245, 245, 245];
const WARM: [[u8; 3]; 3] = [[200, 16, 46], [255, 127, 0], [252, 209, 22]];
const COOL: [[u8; 3]; 3] = [[0, 56, 147], [0, 122, 61], [0, 150, 200]];

impl FlagDesign {
    /// Draw one design of `family`. Both families consume the same number of draws.
    pub fn random(rng: &mut Rng, family: FlagFamily) -> FlagDesign {
        let palette = match family {
            FlagFamily::A => WARM,
            FlagFamily::B => COOL,
        };
        let mut idx = [0usize, 1, 2];
        rng.shuffle(&mut idx);
        // White takes one of the three slots.
        let white_slot = rng.below(3) as usize;
        let mut colours = [
            lin(palette[idx[0]]),
            lin(palette[idx[1]]),
            lin(palette[idx[2]]),
        ];
        colours[white_slot] = lin(WHITE);
        let k = rng.below(3);
        let layout = match (family, k) {
            (FlagFamily::A, 0) => FlagLayout::HorizontalTricolour,
            (FlagFamily::A, 1) => FlagLayout::HorizontalBicolour,
            (FlagFamily::A, _) => FlagLayout::NordicCross,
            (FlagFamily::B, 0) => FlagLayout::VerticalTricolour,
            (FlagFamily::B, 1) => FlagLayout::VerticalBicolour,
            (FlagFamily::B, _) => FlagLayout::Diagonal,
        };
        FlagDesign {
            layout,
            colours,
            emblem: rng.bernoulli(0.35),
        }
    }

    /// Colour at normalised flag coordinates `(s, t)` in [0, 1]².
    fn colour(&self, s: f64, t: f64) -> [f32; 3] {
        let c = &self.colours;
        let base = match self.layout {
            FlagLayout::HorizontalTricolour => c[((t * 3.0) as usize).min(2)],
            FlagLayout::VerticalTricolour => c[((s * 3.0) as usize).min(2)],
            FlagLayout::HorizontalBicolour => c[usize::from(t >= 0.5)],
            FlagLayout::VerticalBicolour => c[usize::from(s >= 0.5)],
            FlagLayout::Diagonal => {
                if (s - t).abs() < 0.12 {
                    c[2]
                } else {
                    c[usize::from(s > t)]
                }
            }
            FlagLayout::NordicCross => {
                // Horizontal arm full width and thick; the short vertical arm sits hoist-side.
                if (0.38..0.62).contains(&t) || (0.30..0.44).contains(&s) {
                    c[1]
                } else {
                    c[0]
                }
            }
        };
        if self.emblem {
            let (dx, dy) = ((s - 0.5) * 1.6, t - 0.5);
            if dx * dx + dy * dy < 0.04 {
                return c[2];
            }
        }
        base
    }
}

/// Paint `flag` into `flag_box` (display pixels), point-sampled with the [`AA`] sub-samples.
pub(super) fn paint_flag(cv: &mut Canvas, flag: &FlagDesign, flag_box: BoxF) {
    let s = SS as f64;
    let [x0, y0, x1, y1] = flag_box.map(|v| v * s);
    for y in (y0.floor() as usize)..(y1.ceil() as usize).min(cv.hi.h) {
        for x in (x0.floor() as usize)..(x1.ceil() as usize).min(cv.hi.w) {
            // Area-weighted by the sub-samples inside the flag; the rest keeps the paper.
            let mut acc = [0.0f32; 3];
            let mut n = 0u32;
            for (sx, sy) in AA {
                let (px, py) = (x as f64 + sx, y as f64 + sy);
                if px >= x0 && px < x1 && py >= y0 && py < y1 {
                    let c = flag.colour((px - x0) / (x1 - x0), (py - y0) / (y1 - y0));
                    for k in 0..3 {
                        acc[k] += c[k];
                    }
                    n += 1;
                }
            }
            if n > 0 {
                cv.hi.blend(x, y, acc.map(|v| v / n as f32), n as f32 / 4.0);
            }
        }
    }
}
