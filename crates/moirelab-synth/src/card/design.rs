//! Card designs beyond the one template (`design-variety`, off by default).
//!
//! Every card of the classic template shares one layout, six pastel papers, one portrait
//! background and one ink. A detector trained on them learns what *our* genuine card looks
//! like, and calls a card it has not seen a screen: a detector trained on the classic cards
//! rejected 0.98 of the genuine photos of `scripts/bench/indep_sim.py`, whose cards are drawn
//! differently (BENCHMARKS.md). A [`Design`] redraws what a document designer chooses, the
//! same way for both classes: the paper and ink colours (any hue), a coloured header band
//! with a light title, the side of the portrait (and with it the flag's corner), the
//! portrait's background, the title, and the weight and size of the lettering.

use crate::raster::{hsv, lin};
use moirelab_core::rng::Rng;

/// Titles of the header (the 8×8 font's glyphs: capitals, digits, space, `.`, `-`).
const TITLES: [&str; 8] = [
    "IDENTITY CARD",
    "NATIONAL ID",
    "RESIDENCE PERMIT",
    "CARTE D IDENTITE",
    "PERSONALAUSWEIS",
    "CARTA DI IDENTITA",
    "DOCUMENTO NACIONAL",
    "ID-KORT",
];

/// A document design drawn for one card (both classes alike).
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// Paper, guilloche ink and portrait background, linear light (replace the template's).
    pub base: [f32; 3],
    pub ink: [f32; 3],
    pub photo_bg: [f32; 3],
    /// Ink of the title, the values and the MRZ.
    pub text_ink: [f32; 3],
    /// A header band across the top (under the title and the flag), and the title's colour.
    pub band: Option<[f32; 3]>,
    pub title_ink: [f32; 3],
    pub title: &'static str,
    /// Portrait on the right, text on the left, the flag in the top-left corner.
    pub mirrored: bool,
    /// Share of each glyph cell that a font pixel fills (1: the template's bold lettering).
    pub weight: f64,
    /// Scale of the rows' lettering.
    pub text_scale: f64,
    /// Contrast of the whole print against its paper (1: full; a pale or faded print below).
    /// Screens lower contrast too (black level, veil), so a detector that has only seen
    /// full-contrast cards calls a pale genuine card a screen.
    pub contrast: f64,
}

impl Design {
    /// A design with probability `p`, else `None` (the template). Every parameter is drawn
    /// whatever the outcome, so `p` changes which cards get one and nothing else.
    pub fn draw(rng: &mut Rng, p: f64) -> Option<Design> {
        let on = rng.bernoulli(p);
        let hue = rng.f64();
        // Paper: mostly light tints of any hue, one card in five a deeper colour.
        let deep = rng.bernoulli(0.2);
        let base = if deep {
            hsv(hue, rng.range(0.2, 0.5), rng.range(0.55, 0.8))
        } else {
            hsv(hue, rng.range(0.02, 0.3), rng.range(0.78, 0.98))
        };
        let ink = hsv(
            hue + rng.range(-0.15, 0.15),
            rng.range(0.3, 0.8),
            rng.range(0.3, 0.6),
        );
        let photo_bg = match rng.below(3) {
            0 => hsv(rng.f64(), rng.range(0.0, 0.35), rng.range(0.75, 0.98)),
            1 => hsv(
                rng.range(0.55, 0.65),
                rng.range(0.1, 0.5),
                rng.range(0.45, 0.8),
            ),
            _ => {
                let g = rng.range(0.85, 1.0);
                hsv(0.0, 0.0, g)
            }
        };
        let text_ink = hsv(rng.f64(), rng.range(0.0, 0.6), rng.range(0.04, 0.3));
        let band_on = rng.bernoulli(0.5);
        let band_v = rng.range(0.2, 0.75);
        let band = hsv(rng.f64(), rng.range(0.35, 0.9), band_v);
        let title_ink = if band_on && band_v < 0.6 {
            hsv(0.0, 0.0, rng.range(0.9, 1.0))
        } else {
            let v = rng.range(0.04, 0.3);
            hsv(0.0, 0.0, v)
        };
        let title = TITLES[rng.below(TITLES.len() as u64) as usize];
        let mirrored = rng.bernoulli(0.4);
        let weight = rng.range(0.45, 1.0);
        let text_scale = rng.range(0.8, 1.1);
        let faded = rng.bernoulli(0.6);
        let contrast = rng.range(0.35, 1.0);
        on.then(|| Design {
            base: lin(base),
            ink: lin(ink),
            photo_bg: lin(photo_bg),
            text_ink: lin(text_ink),
            band: band_on.then(|| lin(band)),
            title_ink: lin(title_ink),
            title,
            mirrored,
            weight,
            text_scale,
            contrast: if faded { contrast } else { 1.0 },
        })
    }

    /// A short description for the manifest: `mirrored`, `band`, the title.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "mirrored": self.mirrored,
            "band": self.band.is_some(),
            "title": self.title,
            "weight": (self.weight * 100.0).round() / 100.0,
            "contrast": (self.contrast * 100.0).round() / 100.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use font8x8::UnicodeFonts;

    #[test]
    fn hsv_corners() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv(2.0 / 3.0, 1.0, 1.0), [0, 0, 255]);
        assert_eq!(hsv(0.3, 0.0, 0.5), [128, 128, 128]);
    }

    #[test]
    fn the_probability_decides_which_cards_and_nothing_else() {
        let mut n = 0;
        for i in 0..400 {
            let a = Design::draw(&mut Rng::new(i), 0.5);
            let b = Design::draw(&mut Rng::new(i), 1.0).unwrap();
            if let Some(a) = a {
                assert_eq!(a, b);
                n += 1;
            }
            assert!(Design::draw(&mut Rng::new(i), 0.0).is_none());
        }
        assert!((160..=240).contains(&n), "{n} of 400");
    }

    #[test]
    fn faded_prints_move_towards_the_paper() {
        use crate::card::{render, CardSpec, FlagFamily, Hair};
        let spec = CardSpec::draw(&mut Rng::new(5), FlagFamily::A, Hair::Dark, 0.0);
        let mut d = Design::draw(&mut Rng::new(9), 1.0).unwrap();
        let contrast_of = |d: &Design| {
            let card = render(&spec.clone().with_design(Some(d.clone())), 160, 0.2);
            // Mean distance of every texel from the paper colour.
            let n = card.rgb.px.len() / 3;
            card.rgb
                .px
                .chunks_exact(3)
                .map(|p| (0..3).map(|k| (p[k] - d.base[k]).abs()).sum::<f32>())
                .sum::<f32>()
                / n as f32
        };
        d.contrast = 1.0;
        let full = contrast_of(&d);
        d.contrast = 0.5;
        let half = contrast_of(&d);
        assert!((half / full - 0.5).abs() < 0.01, "{half} vs {full}");
        let faded = (0..400)
            .filter_map(|i| Design::draw(&mut Rng::new(i), 1.0))
            .filter(|d| d.contrast < 1.0)
            .inspect(|d| assert!((0.35..1.0).contains(&d.contrast)))
            .count();
        assert!((200..=280).contains(&faded), "{faded} of 400 faded");
    }

    #[test]
    fn titles_are_drawable_in_the_card_font() {
        for t in TITLES {
            assert!(
                t.chars().all(|c| font8x8::BASIC_FONTS.get(c).is_some()),
                "{t}"
            );
        }
    }
}
