//! The card's region geometry: which regions (bits of [`crate::REGIONS`]) any texel belongs
//! to, evaluated on demand from the boxes and shapes the renderer drew.

use super::canvas::{ellipse, in_box, outline_cov};
use super::face::Ellipse;
use super::BoxF;
use crate::region_bit;

/// The card's region geometry in display pixels: [`Labeler::at`] gives the region bits of
/// one texel (evaluated at its centre).
#[derive(Debug, Clone)]
pub struct Labeler {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) rad: f64,
    pub(super) flag: BoxF,
    pub(super) photo: BoxF,
    /// Head and hair ellipses (centre, radii) and the hair's lower cut-off.
    pub(super) head: Ellipse,
    pub(super) hair: Ellipse,
    pub(super) hair_cut: f64,
    pub(super) mrz: BoxF,
    pub(super) text: Vec<BoxF>,
    pub(super) sig: BoxF,
    pub(super) guil_discs: Vec<[f64; 3]>,
    pub(super) guil_bands: Vec<[f64; 2]>,
    /// Bits of card, flag, photo, face, mrz, text, signature, guilloche.
    pub(super) bits: [u16; 8],
}

/// The regions a [`Labeler`] knows, in the order of [`Labeler::bits`].
pub(super) fn card_region_bits() -> [u16; 8] {
    [
        "card",
        "flag",
        "photo",
        "face",
        "mrz",
        "text",
        "signature",
        "guilloche",
    ]
    .map(region_bit)
}

impl Labeler {
    /// Width and height of the card texture, texels.
    pub fn size(&self) -> (usize, usize) {
        (self.w, self.h)
    }

    /// Region bits of texel `(x, y)`; 0 outside the rounded card outline (coverage < ½).
    pub fn at(&self, x: usize, y: usize) -> u16 {
        let (wf, hf) = (self.w as f64, self.h as f64);
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        if outline_cov(px, py, wf, hf, self.rad) < 0.5 {
            return 0;
        }
        let [b_card, b_flag, b_photo, b_face, b_mrz, b_text, b_sig, b_guil] = self.bits;
        let mut b = b_card;
        if in_box(&self.flag, px, py) {
            b |= b_flag;
        }
        if in_box(&self.photo, px, py) {
            b |= b_photo;
            let (hc, hr) = self.head;
            let (hac, har) = self.hair;
            if ellipse(hc, hr, px, py) < 1.0
                || (ellipse(hac, har, px, py) < 1.0 && py < self.hair_cut)
            {
                b |= b_face;
            }
        }
        if in_box(&self.mrz, px, py) {
            b |= b_mrz;
        }
        if self.text.iter().any(|t| in_box(t, px, py)) {
            b |= b_text;
        }
        if in_box(&self.sig, px, py) {
            b |= b_sig;
        }
        let in_g = self
            .guil_discs
            .iter()
            .any(|d| (px - d[0]).powi(2) + (py - d[1]).powi(2) < d[2] * d[2])
            || self.guil_bands.iter().any(|b| py >= b[0] && py < b[1]);
        if in_g {
            b |= b_guil;
        }
        b
    }
}
