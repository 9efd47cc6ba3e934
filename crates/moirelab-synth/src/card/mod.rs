//! Stage A: the ID-1 card (85.60 × 53.98 mm) rendered at display resolution (analytic
//! coverage for strokes and text, 2×2 sub-samples for the flag and portrait), plus its
//! region geometry ([`Labeler`]).
//!
//! [`render`] composes the stages in painting order, each in its own module: the paper
//! (here), the guilloche (`guilloche.rs`), the title and the flag (`fields.rs`, `flag.rs`),
//! the portrait (`face.rs`), the label/value rows, the signature and the MRZ (`fields.rs`),
//! and on top, when the card carries one, the diffractive foil (`hologram.rs`); they draw on a [`canvas::Canvas`] with the primitives of `canvas.rs`, and `labels.rs`
//! turns the geometry they report into region bits.
//!
//! # Shapes
//! [`Card::rgb`] is `[hc][wc][3]` linear light, [`Card::alpha`] `[hc][wc]` coverage of the
//! rounded card outline; [`Card::labels`] gives the region bit field (bits of
//! [`crate::REGIONS`]) of any texel.

mod canvas;
mod design;
mod face;
mod fields;
mod flag;
mod guilloche;
mod hologram;
mod labels;

pub use design::Design;
pub use face::Hair;
pub use flag::{FlagDesign, FlagFamily};
pub use hologram::Hologram;
pub use labels::Labeler;

use crate::mrz::Td1;
use crate::raster::{lin, Plane, Rgb, ValueNoise};
use canvas::{outline_cov, Canvas};
use face::{paint_portrait, Portrait};
use fields::{paint_mrz, paint_rows, paint_signature, paint_title};
use flag::paint_flag;
use guilloche::{paint_guilloche, Guilloche};
use hologram::paint_hologram;
use moirelab_core::rng::Rng;

/// ID-1 aspect ratio (ISO/IEC 7810).
pub const CARD_ASPECT: f64 = 85.60 / 53.98;
/// Corner radius as a fraction of the card width (3.18 mm / 85.60 mm ≈ 3.7 %).
const CORNER: f64 = 0.037;
/// Supersampling factor of the card canvas over the display resolution. Strokes, text and
/// rectangles are drawn with analytic area coverage and the flag and portrait with 2×2
/// sub-samples per pixel ([`AA`]), so the canvas itself needs none (a factor of 2 would cost
/// 4× the pixels for the same display image).
const SS: usize = 1;
/// Sub-sample offsets (in canvas pixels) of the point-sampled shapes: flag and portrait.
const AA: [(f64, f64); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];

/// Axis-aligned box in card pixels `[x0, y0, x1, y1]` (continuous coordinates).
pub type BoxF = [f64; 4];

/// A rendered card.
#[derive(Debug, Clone)]
pub struct Card {
    pub rgb: Rgb,
    pub alpha: Plane,
    /// Region bits of any texel, evaluated on demand (the pipeline needs them only at the
    /// texels its output pixels land on: about a tenth of the texture).
    pub labels: Labeler,
    pub boxes: Vec<(&'static str, BoxF)>,
    /// Parameters worth recording in the manifest.
    pub params: serde_json::Value,
}

/// Everything stage A draws at random, fixed before rendering so the flag-swapped twin
/// differs in the flag only.
#[derive(Debug, Clone)]
pub struct CardSpec {
    pub base: [f32; 3],
    pub ink: [f32; 3],
    pub flags: [FlagDesign; 2],
    pub family: FlagFamily,
    pub hair: Hair,
    pub hair_colour: [f32; 3],
    pub skin: [f32; 3],
    pub photo_bg: [f32; 3],
    pub cloth: [f32; 3],
    pub doc: Td1,
    pub aliased: bool,
    /// The optically variable foil, if the card carries one (drawn from its own stream by
    /// the pipeline, so that the knob leaves every other draw where it was).
    pub hologram: Option<Hologram>,
    /// A design other than the template (`design-variety`), from its own stream as well.
    pub design: Option<Design>,
    pub seed_stream: u64,
}

impl CardSpec {
    pub fn draw(rng: &mut Rng, family: FlagFamily, hair: Hair, aliased_p: f64) -> CardSpec {
        const BASES: [[u8; 3]; 6] = [
            [214, 228, 240],
            [222, 238, 220],
            [244, 224, 228],
            [238, 232, 212],
            [228, 222, 242],
            [226, 236, 236],
        ];
        let jitter = |c: [u8; 3], r: &mut Rng| {
            let mut l = lin(c);
            for v in &mut l {
                *v *= 1.0 + (r.f32() - 0.5) * 0.08;
            }
            l
        };
        let base = jitter(BASES[rng.below(BASES.len() as u64) as usize], rng);
        let ink = [base[0] * 0.55, base[1] * 0.55, base[2] * 0.62];
        let flag_a = FlagDesign::random(rng, FlagFamily::A);
        let flag_b = FlagDesign::random(rng, FlagFamily::B);
        // Both hair palettes are drawn so the stream does not depend on the attribute.
        let dark = [[30u8, 22, 18], [52, 36, 26], [20, 20, 24]];
        let light = [[222u8, 196, 140], [200, 170, 120], [226, 222, 214]];
        let d = lin(dark[rng.below(3) as usize]);
        let l = lin(light[rng.below(3) as usize]);
        let hair_colour = if hair == Hair::Dark { d } else { l };
        let skins = [
            [241u8, 194, 167],
            [224, 172, 138],
            [198, 134, 98],
            [141, 85, 54],
        ];
        let skin = lin(skins[rng.below(4) as usize]);
        let photo_bg = jitter([205, 214, 222], rng);
        let cloth = lin([
            (40 + rng.below(120)) as u8,
            (40 + rng.below(120)) as u8,
            (60 + rng.below(120)) as u8,
        ]);
        let doc = Td1::random(rng);
        let aliased = rng.bernoulli(aliased_p);
        CardSpec {
            base,
            ink,
            flags: [flag_a, flag_b],
            family,
            hair,
            hair_colour,
            skin,
            photo_bg,
            cloth,
            doc,
            aliased,
            hologram: None,
            design: None,
            seed_stream: rng.next_u64(),
        }
    }

    /// Give the card a design (or keep the template): its paper, ink and portrait background
    /// replace the template's; the rest is read where the card is painted.
    pub fn with_design(mut self, design: Option<Design>) -> CardSpec {
        if let Some(d) = &design {
            self.base = d.base;
            self.ink = d.ink;
            self.photo_bg = d.photo_bg;
        }
        self.design = design;
        self
    }

    /// Ink of the title, the values and the MRZ.
    pub(crate) fn text_ink(&self) -> [f32; 3] {
        self.design.as_ref().map_or(fields::dark(), |d| d.text_ink)
    }

    /// Share of a glyph cell a font pixel fills.
    pub(crate) fn weight(&self) -> f64 {
        self.design.as_ref().map_or(1.0, |d| d.weight)
    }

    pub fn flag(&self) -> &FlagDesign {
        match self.family {
            FlagFamily::A => &self.flags[0],
            FlagFamily::B => &self.flags[1],
        }
    }
}

/// Card layout: the boxes of the card's elements, in normalised card units (x in [0, 1] of
/// the width, y in [0, 1] of the height) from [`layout`], in display pixels after
/// [`Layout::to_px`].
struct Layout {
    flag: BoxF,
    photo: BoxF,
    text: BoxF,
    signature: BoxF,
    mrz: BoxF,
    header: BoxF,
}

fn layout(flag_w: f64, mirrored: bool) -> Layout {
    // The flag box is `flag_w` of the card width wide with a 5:8 flag ratio.
    let fh = flag_w * 0.62 * CARD_ASPECT;
    let m = 0.035;
    if mirrored {
        // Portrait on the right, text on the left, the flag in the top-left corner.
        return Layout {
            flag: [m, m * CARD_ASPECT, m + flag_w, m * CARD_ASPECT + fh],
            header: [m + flag_w + 0.04, 0.07, 0.95, 0.15],
            photo: [0.68, 0.24, 0.95, 0.70],
            signature: [0.69, 0.71, 0.94, 0.78],
            text: [0.05, 0.30, 0.63, 0.70],
            mrz: [0.04, 0.79, 0.96, 0.96],
        };
    }
    Layout {
        flag: [
            1.0 - m - flag_w,
            m * CARD_ASPECT,
            1.0 - m,
            m * CARD_ASPECT + fh,
        ],
        header: [0.05, 0.07, 0.92 - flag_w, 0.15],
        photo: [0.05, 0.24, 0.32, 0.70],
        signature: [0.06, 0.71, 0.31, 0.78],
        text: [0.37, 0.30, 0.95, 0.70],
        mrz: [0.04, 0.79, 0.96, 0.96],
    }
}

impl Layout {
    /// The layout on a `wc` × `hc` card, display pixels.
    fn to_px(&self, (wc, hc): (usize, usize)) -> Layout {
        let (wf, hf) = (wc as f64, hc as f64);
        let px = |b: BoxF| [b[0] * wf, b[1] * hf, b[2] * wf, b[3] * hf];
        Layout {
            flag: px(self.flag),
            photo: px(self.photo),
            text: px(self.text),
            signature: px(self.signature),
            mrz: px(self.mrz),
            header: px(self.header),
        }
    }
}

/// Render the card at display width `wc` pixels; `flag_w` is the flag width as a fraction
/// of the card width. The stages run in painting order and draw from one RNG stream in that
/// order (paper, guilloche, rows, signature), so the flag-swapped twin differs in the flag
/// only.
pub fn render(spec: &CardSpec, wc: usize, flag_w: f64) -> Card {
    let hc = (wc as f64 / CARD_ASPECT).round() as usize;
    let mut rng = Rng::new(spec.seed_stream);
    let mirrored = spec.design.as_ref().is_some_and(|d| d.mirrored);
    let lay = layout(flag_w, mirrored).to_px((wc, hc));
    let mut cv = paint_paper(spec, (wc, hc), &mut rng);
    // One coverage plane for every stroked element: painting clears what a stroke touched.
    let mut cov = Plane::new(wc * SS, hc * SS);
    let guilloche = paint_guilloche(&mut cv, &mut cov, spec, (wc, hc), &mut rng);
    if let Some(band) = spec.design.as_ref().and_then(|d| d.band) {
        // The header band runs across the card under the title and the flag.
        let bottom = lay.flag[3].max(lay.header[3]) + 0.03 * hc as f64;
        cv.fill_rect([0.0, 0.0, wc as f64, bottom], band, 1.0);
    }
    let mut text_boxes = vec![paint_title(&mut cv, spec, lay.header)];
    let flag = spec.flag();
    paint_flag(&mut cv, flag, lay.flag);
    let portrait = paint_portrait(&mut cv, spec, lay.photo);
    text_boxes.extend(paint_rows(&mut cv, spec, lay.text, &mut rng));
    paint_signature(&mut cv, &mut cov, lay.signature, wc, &mut rng);
    let mrz_lines = paint_mrz(&mut cv, spec, lay.mrz);
    if let Some(d) = spec.design.as_ref().filter(|d| d.contrast < 1.0) {
        // A pale or faded print: everything printed moves towards the paper (the foil, a
        // laminate on top, keeps its own contrast).
        let c = d.contrast as f32;
        for p in cv.hi.px.chunks_exact_mut(3) {
            for k in 0..3 {
                p[k] = spec.base[k] + c * (p[k] - spec.base[k]);
            }
        }
    }
    if let Some(h) = &spec.hologram {
        paint_hologram(&mut cv, h, (wc, hc));
    }
    let mut params = serde_json::json!({
        "flag-layout": flag.layout.name(),
        "flag-emblem": flag.emblem,
        "hair": spec.hair.name(),
        "guilloche-layers": guilloche.layers,
        "guilloche-aliased": spec.aliased,
        "mrz": mrz_lines,
    });
    if let Some(h) = &spec.hologram {
        params["hologram"] = h.name().into();
    }
    if let Some(d) = &spec.design {
        params["design"] = d.describe();
    }
    let rad = CORNER * wc as f64;
    Card {
        rgb: if SS == 1 { cv.hi } else { cv.hi.downsample(SS) },
        alpha: outline_alpha((wc, hc), rad),
        boxes: region_boxes(&lay, &portrait, &text_boxes, (wc, hc)),
        labels: labeler(&lay, &portrait, text_boxes, guilloche, (wc, hc), rad),
        params,
    }
}

/// The paper: the spec's pastel base with faint low-frequency mottling, as a new canvas.
fn paint_paper(spec: &CardSpec, (wc, hc): (usize, usize), rng: &mut Rng) -> Canvas {
    let noise = ValueNoise::new(rng, 5, 4);
    let us: Vec<f32> = (0..wc * SS).map(|x| x as f32 / (wc * SS) as f32).collect();
    let vs: Vec<f32> = (0..hc * SS).map(|y| y as f32 / (hc * SS) as f32).collect();
    let mut px = vec![0.0f32; wc * SS * hc * SS * 3];
    for (p, n) in px.chunks_exact_mut(3).zip(noise.grid(&us, &vs)) {
        let f = 1.0 + (n - 0.5) * 0.06;
        for k in 0..3 {
            p[k] = spec.base[k] * f;
        }
    }
    Canvas {
        hi: Rgb {
            w: wc * SS,
            h: hc * SS,
            px,
        },
    }
}

/// Outline coverage (analytic rounded rectangle of corner radius `rad`) at display
/// resolution.
fn outline_alpha((wc, hc): (usize, usize), rad: f64) -> Plane {
    let (wf, hf) = (wc as f64, hc as f64);
    let mut alpha = Plane::new(wc, hc);
    for y in 0..hc {
        for x in 0..wc {
            alpha.px[y * wc + x] = outline_cov(x as f64 + 0.5, y as f64 + 0.5, wf, hf, rad);
        }
    }
    alpha
}

/// The named boxes recorded in the manifest (display pixels); `text` is the union of the
/// title and the rows.
fn region_boxes(
    lay: &Layout,
    portrait: &Portrait,
    text_boxes: &[BoxF],
    (wc, hc): (usize, usize),
) -> Vec<(&'static str, BoxF)> {
    let text_union = text_boxes
        .iter()
        .fold([f64::MAX, f64::MAX, 0.0f64, 0.0f64], |a, t| {
            [
                a[0].min(t[0]),
                a[1].min(t[1]),
                a[2].max(t[2]),
                a[3].max(t[3]),
            ]
        });
    vec![
        ("card", [0.0, 0.0, wc as f64, hc as f64]),
        ("flag", lay.flag),
        ("photo", lay.photo),
        ("face", portrait.face_box()),
        ("mrz", lay.mrz),
        ("text", text_union),
        ("signature", lay.signature),
    ]
}

/// The region geometry of the rendered card.
fn labeler(
    lay: &Layout,
    portrait: &Portrait,
    text_boxes: Vec<BoxF>,
    guilloche: Guilloche,
    (wc, hc): (usize, usize),
    rad: f64,
) -> Labeler {
    Labeler {
        w: wc,
        h: hc,
        rad,
        flag: lay.flag,
        photo: portrait.photo,
        head: portrait.head,
        hair: portrait.hair,
        hair_cut: portrait.hair_cut(),
        mrz: lay.mrz,
        text: text_boxes,
        sig: lay.signature,
        guil_discs: guilloche.discs,
        guil_bands: guilloche.bands,
        bits: labels::card_region_bits(),
    }
}
