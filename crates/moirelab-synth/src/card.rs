//! Stage A: the ID-1 card (85.60 × 53.98 mm) rendered at display resolution (analytic
//! coverage for strokes and text, 2×2 sub-samples for the flag and portrait), plus its
//! region geometry ([`Labeler`]).
//!
//! # Shapes
//! [`Card::rgb`] is `[hc][wc][3]` linear light, [`Card::alpha`] `[hc][wc]` coverage of the
//! rounded card outline; [`Card::labels`] gives the region bit field (bits of
//! [`crate::REGIONS`]) of any texel.

use crate::mrz::Td1;
use crate::raster::{fceil, ffloor, lin, Plane, Rgb, ValueNoise};
use crate::region_bit;
use font8x8::UnicodeFonts;
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

/// Portrait attribute of shortcut S2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hair {
    Dark,
    Light,
}

impl Hair {
    pub fn name(self) -> &'static str {
        match self {
            Hair::Dark => "dark",
            Hair::Light => "light",
        }
    }
}

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

/// The card's region geometry in display pixels: [`Labeler::at`] gives the region bits of
/// one texel (evaluated at its centre).
#[derive(Debug, Clone)]
pub struct Labeler {
    w: usize,
    h: usize,
    rad: f64,
    flag: BoxF,
    photo: BoxF,
    /// Head and hair ellipses (centre, radii) and the hair's lower cut-off.
    head: ([f64; 2], [f64; 2]),
    hair: ([f64; 2], [f64; 2]),
    hair_cut: f64,
    mrz: BoxF,
    text: Vec<BoxF>,
    sig: BoxF,
    guil_discs: Vec<[f64; 3]>,
    guil_bands: Vec<[f64; 2]>,
    /// Bits of card, flag, photo, face, mrz, text, signature, guilloche.
    bits: [u16; 8],
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

/// Coverage of the point `(px, py)` by the card's rounded-rectangle outline (analytic,
/// one-pixel ramp).
fn outline_cov(px: f64, py: f64, wf: f64, hf: f64, rad: f64) -> f32 {
    let qx = (px - wf * 0.5).abs() - (wf * 0.5 - rad);
    let qy = (py - hf * 0.5).abs() - (hf * 0.5 - rad);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0);
    (0.5 - (outside - rad)).clamp(0.0, 1.0) as f32
}

/// `((x − c)/r)²` summed over both axes: < 1 inside the ellipse.
fn ellipse(c: [f64; 2], r: [f64; 2], x: f64, y: f64) -> f64 {
    let (dx, dy) = ((x - c[0]) / r[0], (y - c[1]) / r[1]);
    dx * dx + dy * dy
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
            seed_stream: rng.next_u64(),
        }
    }

    pub fn flag(&self) -> &FlagDesign {
        match self.family {
            FlagFamily::A => &self.flags[0],
            FlagFamily::B => &self.flags[1],
        }
    }
}

/// Card layout in normalised card units (x in [0, 1] of the width, y in [0, 1] of the height).
struct Layout {
    flag: BoxF,
    photo: BoxF,
    text: BoxF,
    signature: BoxF,
    mrz: BoxF,
    header: BoxF,
}

fn layout(flag_w: f64) -> Layout {
    // The flag box is `flag_w` of the card width wide with a 5:8 flag ratio.
    let fh = flag_w * 0.62 * CARD_ASPECT;
    let m = 0.035;
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

/// Supersampled drawing surface with a parallel label map at display resolution.
struct Canvas {
    hi: Rgb,
}

impl Canvas {
    /// Fill an axis-aligned rectangle given in display pixels with exact area coverage.
    fn fill_rect(&mut self, b: BoxF, c: [f32; 3], opacity: f32) {
        let s = SS as f64;
        let [x0, y0, x1, y1] = b.map(|v| v * s);
        let xa = ffloor(x0).max(0.0) as usize;
        let ya = ffloor(y0).max(0.0) as usize;
        let xb = (fceil(x1) as usize).min(self.hi.w);
        let yb = (fceil(y1) as usize).min(self.hi.h);
        for y in ya..yb {
            let cy = (y1.min(y as f64 + 1.0) - y0.max(y as f64)).max(0.0);
            for x in xa..xb {
                let cx = (x1.min(x as f64 + 1.0) - x0.max(x as f64)).max(0.0);
                let a = (cx * cy) as f32 * opacity;
                if a > 0.0 {
                    self.hi.blend(x, y, c, a);
                }
            }
        }
    }

    /// Paint a coverage plane (supersampled resolution) with colour `c`; coverage is zero
    /// outside `region` (`[x0, y0, x1, y1)`, as returned by [`stroke`]), which is then
    /// cleared so the plane can be reused.
    fn paint(&mut self, cov: &mut Plane, region: [usize; 4], c: [f32; 3], opacity: f32) {
        let [x0, y0, x1, y1] = region;
        for y in y0..y1 {
            let row = &mut cov.px[y * cov.w + x0..y * cov.w + x1];
            for (x, a) in (x0..x1).zip(row.iter_mut()) {
                if *a > 0.0 {
                    self.hi.blend(x, y, c, a.min(1.0) * opacity);
                    *a = 0.0;
                }
            }
        }
    }

    /// Text with the public-domain 8×8 font; `cell` = glyph pixel size in display pixels.
    /// Returns the text's bounding box in display pixels.
    fn text(&mut self, s: &str, x: f64, y: f64, cell_w: f64, cell_h: f64, c: [f32; 3]) -> BoxF {
        for (i, ch) in s.chars().enumerate() {
            let Some(g) = font8x8::BASIC_FONTS.get(ch) else {
                continue;
            };
            let gx = x + i as f64 * 8.0 * cell_w;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let px = gx + col as f64 * cell_w;
                        let py = y + row as f64 * cell_h;
                        self.fill_rect([px, py, px + cell_w, py + cell_h], c, 1.0);
                    }
                }
            }
        }
        [
            x,
            y,
            x + s.chars().count() as f64 * 8.0 * cell_w,
            y + 8.0 * cell_h,
        ]
    }
}

/// Accumulate an anti-aliased stroke of a polyline into a coverage plane (max-combined, so
/// joints are not painted twice). With `aliased`, coverage is binary (hard-negative mode).
/// Returns the pixel region `[x0, y0, x1, y1)` the stroke may have touched, merged into
/// `region`.
fn stroke(
    cov: &mut Plane,
    pts: &[[f64; 2]],
    width: f64,
    aliased: bool,
    region: [usize; 4],
) -> [usize; 4] {
    let mut region = region;
    let hw = width * 0.5;
    // Aliased (hard-negative) strokes cover pixels within max(hw, 0.5).
    let reach = hw.max(0.5);
    for seg in pts.windows(2) {
        let ([ax, ay], [bx, by]) = (seg[0], seg[1]);
        let x0 = ffloor(ax.min(bx) - hw - 1.0).max(0.0) as usize;
        let y0 = ffloor(ay.min(by) - hw - 1.0).max(0.0) as usize;
        // Coverage is zero unless a pixel centre lies within hw + ½ of the segment: the last
        // pixel that can be covered has its centre below max + hw + ½, i.e. index < max + hw.
        let x1 = (fceil(ax.max(bx) + hw).max(0.0) as usize).min(cov.w);
        let y1 = (fceil(ay.max(by) + hw).max(0.0) as usize).min(cov.h);
        let (dx, dy) = (bx - ax, by - ay);
        let inv_len2 = 1.0 / (dx * dx + dy * dy).max(1e-12);
        if x0 >= x1 || y0 >= y1 {
            // The segment lies wholly outside the plane (e.g. a guilloche curve past the
            // card's right edge): nothing to draw, and `x0..x1` would be an inverted slice.
            continue;
        }
        region = [
            region[0].min(x0),
            region[1].min(y0),
            region[2].max(x1),
            region[3].max(y1),
        ];
        // Branch-free f32 inner loops (the compiler vectorises them); coordinates stay below
        // ~2000 px, where f32 resolves 1e-4 px, far below what coverage can show.
        let (axf, ayf, dxf, dyf) = (ax as f32, ay as f32, dx as f32, dy as f32);
        let inv = inv_len2 as f32;
        let (hwf, reachf) = (hw as f32, reach as f32);
        for y in y0..y1 {
            let py = y as f32 + 0.5 - ayf;
            let row = &mut cov.px[y * cov.w + x0..y * cov.w + x1];
            let mut px = x0 as f32 + 0.5 - axf;
            for p in row.iter_mut() {
                let t = ((px * dxf + py * dyf) * inv).clamp(0.0, 1.0);
                let (qx, qy) = (t * dxf - px, t * dyf - py);
                let d = (qx * qx + qy * qy).sqrt();
                let a = if aliased {
                    if d <= reachf {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    (hwf + 0.5 - d).clamp(0.0, 1.0)
                };
                *p = if a > *p { a } else { *p };
                px += 1.0;
            }
        }
    }
    region
}

fn in_box(b: &BoxF, x: f64, y: f64) -> bool {
    x >= b[0] && x < b[2] && y >= b[1] && y < b[3]
}

/// Render the card at display width `wc` pixels; `flag_w` is the flag width as a fraction
/// of the card width.
pub fn render(spec: &CardSpec, wc: usize, flag_w: f64) -> Card {
    let hc = (wc as f64 / CARD_ASPECT).round() as usize;
    let (wf, hf) = (wc as f64, hc as f64);
    let mut rng = Rng::new(spec.seed_stream);
    let lay = layout(flag_w);
    let to_px = |b: BoxF| [b[0] * wf, b[1] * hf, b[2] * wf, b[3] * hf];

    // Paper: pastel base with faint low-frequency mottling.
    let noise = ValueNoise::new(&mut rng, 5, 4);
    let us: Vec<f32> = (0..wc * SS).map(|x| x as f32 / (wc * SS) as f32).collect();
    let vs: Vec<f32> = (0..hc * SS).map(|y| y as f32 / (hc * SS) as f32).collect();
    let mut px = vec![0.0f32; wc * SS * hc * SS * 3];
    for (p, n) in px.chunks_exact_mut(3).zip(noise.grid(&us, &vs)) {
        let f = 1.0 + (n - 0.5) * 0.06;
        for k in 0..3 {
            p[k] = spec.base[k] * f;
        }
    }
    let hi = Rgb {
        w: wc * SS,
        h: hc * SS,
        px,
    };
    let mut cv = Canvas { hi };
    let s = SS as f64;

    // Guilloche: 2–4 layers of spirograph rosettes and sine-line bundles, thin lines at
    // 5–15 % contrast.
    let layers = 2 + rng.below(3) as usize;
    let mut guil_discs: Vec<[f64; 3]> = Vec::new();
    let mut guil_bands: Vec<[f64; 2]> = Vec::new();
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
    // One coverage plane for every layer: painting clears the region a layer touched.
    let mut cov = Plane::new(wc * SS, hc * SS);
    const EMPTY: [usize; 4] = [usize::MAX, usize::MAX, 0, 0];
    for _ in 0..layers {
        let contrast = rng.range(0.05, 0.15) as f32;
        let colour = [
            spec.base[0] * (1.0 - contrast * 3.0) + spec.ink[0] * contrast * 3.0,
            spec.base[1] * (1.0 - contrast * 3.0) + spec.ink[1] * contrast * 3.0,
            spec.base[2] * (1.0 - contrast * 3.0) + spec.ink[2] * contrast * 3.0,
        ];
        let mut region = EMPTY;
        if rng.bernoulli(0.5) {
            // Rosette x = (R−r)cos t + d cos((R−r)t/r), y = (R−r)sin t − d sin((R−r)t/r).
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
                region = stroke(&mut cov, &pts, line_w, spec.aliased, region);
            }
            guil_discs.push([cx / s, cy / s, radius / s + 1.0]);
        } else {
            // Bundle of sine lines y = c + A sin(2πx/λ + φ) across the card.
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
                region = stroke(&mut cov, &pts, line_w, spec.aliased, region);
            }
            guil_bands.push([
                (y0 - amp) / s - 1.0,
                (y0 + lines as f64 * spacing + amp) / s + 1.0,
            ]);
        }
        cv.paint(&mut cov, region, colour, 1.0);
    }

    // Header title and flag.
    let dark = lin([28, 36, 52]);
    let header = to_px(lay.header);
    let title = "IDENTITY CARD";
    let cw =
        ((header[2] - header[0]) / (title.len() as f64 * 8.0)).min((header[3] - header[1]) / 8.0);
    let header_box = cv.text(title, header[0], header[1], cw, cw, dark);
    let flag_box = to_px(lay.flag);
    let flag = *spec.flag();
    {
        let [x0, y0, x1, y1] = flag_box.map(|v| v * s);
        for y in (y0.floor() as usize)..(y1.ceil() as usize).min(hc * SS) {
            for x in (x0.floor() as usize)..(x1.ceil() as usize).min(wc * SS) {
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

    // Portrait.
    let photo = to_px(lay.photo);
    cv.fill_rect(photo, spec.photo_bg, 1.0);
    let (pw, ph) = (photo[2] - photo[0], photo[3] - photo[1]);
    let head_c = [photo[0] + pw * 0.5, photo[1] + ph * 0.42];
    let head_r = [pw * 0.24, ph * 0.22];
    let hair_c = [head_c[0], head_c[1] - ph * 0.04];
    let hair_r = [head_r[0] * 1.18, head_r[1] * 1.12];
    let shoulder_c = [head_c[0], photo[3] + ph * 0.05];
    let shoulder_r = [pw * 0.48, ph * 0.28];
    let eyes = [
        [head_c[0] - head_r[0] * 0.38, head_c[1] - head_r[1] * 0.05],
        [head_c[0] + head_r[0] * 0.38, head_c[1] - head_r[1] * 0.05],
    ];
    let lips = lin([150, 70, 70]);
    let eye_c = lin([30, 30, 35]);
    {
        let [x0, y0, x1, y1] = photo.map(|v| v * s);
        for y in (y0.floor() as usize)..(y1.ceil() as usize).min(hc * SS) {
            for x in (x0.floor() as usize)..(x1.ceil() as usize).min(wc * SS) {
                // Each sub-sample takes the topmost shape's colour; sub-samples outside every
                // shape (or outside the photo box) keep the pixel's background.
                let under = cv.hi.get(x, y);
                let mut acc = [0.0f32; 3];
                let mut hit = false;
                for (sx, sy) in AA {
                    let (px, py) = ((x as f64 + sx) / s, (y as f64 + sy) / s);
                    let mut c = None;
                    if in_box(&photo, px, py) {
                        if ellipse(shoulder_c, shoulder_r, px, py) < 1.0 {
                            c = Some(spec.cloth);
                        }
                        if ellipse(hair_c, hair_r, px, py) < 1.0 && py < head_c[1] + head_r[1] * 0.4
                        {
                            c = Some(spec.hair_colour);
                        }
                        if ellipse(head_c, head_r, px, py) < 1.0
                            && py >= head_c[1] - head_r[1] * 0.45
                        {
                            c = Some(spec.skin);
                            for e in &eyes {
                                if ellipse(*e, [head_r[0] * 0.12, head_r[1] * 0.08], px, py) < 1.0 {
                                    c = Some(eye_c);
                                }
                            }
                            let m = [head_c[0], head_c[1] + head_r[1] * 0.5];
                            if ellipse(m, [head_r[0] * 0.3, head_r[1] * 0.06], px, py) < 1.0 {
                                c = Some(lips);
                            }
                        }
                    }
                    hit |= c.is_some();
                    let c = c.unwrap_or(under);
                    for k in 0..3 {
                        acc[k] += c[k] * 0.25;
                    }
                }
                if hit {
                    cv.hi.set(x, y, acc);
                }
            }
        }
    }
    let face_box = [
        head_c[0] - hair_r[0],
        hair_c[1] - hair_r[1],
        head_c[0] + hair_r[0],
        head_c[1] + head_r[1],
    ];

    // Label/value rows.
    let text = to_px(lay.text);
    let doc = &spec.doc;
    let mut rows: Vec<(&str, String)> = vec![
        ("SURNAME", doc.surname.clone()),
        ("GIVEN", doc.given.clone()),
        (
            "BORN",
            format!(
                "{}.{}.{}",
                &doc.birth[4..6],
                &doc.birth[2..4],
                &doc.birth[0..2]
            ),
        ),
        ("SEX", doc.sex.to_string()),
        ("NO", doc.number.clone()),
        (
            "EXPIRES",
            format!(
                "{}.{}.{}",
                &doc.expiry[4..6],
                &doc.expiry[2..4],
                &doc.expiry[0..2]
            ),
        ),
    ];
    let nrows = 4 + rng.below(3) as usize;
    rows.truncate(nrows);
    let row_h = (text[3] - text[1]) / nrows as f64;
    let label_c = [spec.ink[0] * 0.8, spec.ink[1] * 0.8, spec.ink[2] * 0.9];
    let tw = text[2] - text[0];
    let cell = (tw / (20.0 * 8.0)).min(row_h * 0.8 / 8.0);
    let mut text_boxes = vec![header_box];
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = text[1] + i as f64 * row_h;
        let lb = cv.text(label, text[0], y, cell * 0.75, cell * 0.75, label_c);
        let vb = cv.text(value, text[0] + tw * 0.36, y, cell, cell, dark);
        text_boxes.push([lb[0], lb[1], vb[2], vb[3].max(lb[3])]);
    }

    // Bézier-scribble signature.
    let sig = to_px(lay.signature);

    let mut pts = Vec::new();
    let mut p0 = [sig[0] + (sig[2] - sig[0]) * 0.05, rng.range(sig[1], sig[3])];
    let segs = 3 + rng.below(3) as usize;
    for k in 0..segs {
        let xe = sig[0] + (sig[2] - sig[0]) * (k + 1) as f64 / segs as f64 * 0.95;
        let p3 = [xe, rng.range(sig[1], sig[3])];
        let p1 = [
            rng.range(p0[0], xe + 4.0),
            rng.range(sig[1] - 4.0, sig[3] + 4.0),
        ];
        let p2 = [
            rng.range(p0[0] - 4.0, xe),
            rng.range(sig[1] - 4.0, sig[3] + 4.0),
        ];
        for i in 0..=24 {
            let t = i as f64 / 24.0;
            let u = 1.0 - t;
            let b = |a: f64, b: f64, c: f64, d: f64| {
                u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
            };
            let q = [
                b(p0[0], p1[0], p2[0], p3[0]),
                b(p0[1], p1[1], p2[1], p3[1]).clamp(sig[1], sig[3]),
            ];
            pts.push([q[0] * s, q[1] * s]);
        }
        p0 = p3;
    }
    let region = stroke(&mut cov, &pts, 1.1 * s * wf / 256.0, false, EMPTY);
    cv.paint(&mut cov, region, lin([20, 30, 110]), 0.9);

    // MRZ.
    let mrz = to_px(lay.mrz);
    let lines = doc.lines();
    let mcw = (mrz[2] - mrz[0]) / (30.0 * 8.0);
    let mch = (mrz[3] - mrz[1]) / (3.0 * 8.0 * 1.25);
    for (i, l) in lines.iter().enumerate() {
        cv.text(
            l,
            mrz[0],
            mrz[1] + i as f64 * 8.0 * mch * 1.25,
            mcw,
            mch,
            dark,
        );
    }

    let rgb = if SS == 1 { cv.hi } else { cv.hi.downsample(SS) };

    // Outline coverage (analytic rounded rectangle) at display resolution.
    let rad = CORNER * wf;
    let mut alpha = Plane::new(wc, hc);
    for y in 0..hc {
        for x in 0..wc {
            alpha.px[y * wc + x] = outline_cov(x as f64 + 0.5, y as f64 + 0.5, wf, hf, rad);
        }
    }
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
    let boxes = vec![
        ("card", [0.0, 0.0, wf, hf]),
        ("flag", flag_box),
        ("photo", photo),
        ("face", face_box),
        ("mrz", mrz),
        ("text", text_union),
        ("signature", sig),
    ];
    let params = serde_json::json!({
        "flag-layout": flag.layout.name(),
        "flag-emblem": flag.emblem,
        "hair": spec.hair.name(),
        "guilloche-layers": layers,
        "guilloche-aliased": spec.aliased,
        "mrz": lines,
    });
    let labels = Labeler {
        w: wc,
        h: hc,
        rad,
        flag: flag_box,
        photo,
        head: (head_c, head_r),
        hair: (hair_c, hair_r),
        hair_cut: head_c[1] + head_r[1] * 0.4,
        mrz,
        text: text_boxes,
        sig,
        guil_discs,
        guil_bands,
        bits: [
            "card",
            "flag",
            "photo",
            "face",
            "mrz",
            "text",
            "signature",
            "guilloche",
        ]
        .map(region_bit),
    };
    Card {
        rgb,
        alpha,
        labels,
        boxes,
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: [usize; 4] = [usize::MAX, usize::MAX, 0, 0];

    #[test]
    fn stroke_coverage_follows_distance_to_the_segment() {
        // Horizontal line through pixel centres of row 10, width 1.6 (half width 0.8):
        // coverage clamp(0.8 + 0.5 − d, 0, 1).
        let mut cov = Plane::new(64, 32);
        stroke(&mut cov, &[[5.0, 10.5], [50.0, 10.5]], 1.6, false, EMPTY);
        let at = |x: usize, y: usize| cov.px[y * 64 + x];
        assert_eq!(at(20, 10), 1.0);
        assert!((at(20, 11) - 0.3).abs() < 1e-6 && (at(20, 9) - 0.3).abs() < 1e-6);
        assert_eq!(at(20, 12), 0.0);
        assert_eq!(at(60, 10), 0.0);
        let mut hard = Plane::new(64, 32);
        stroke(&mut hard, &[[5.0, 10.5], [50.0, 10.5]], 1.6, true, EMPTY);
        assert_eq!((hard.px[10 * 64 + 20], hard.px[11 * 64 + 20]), (1.0, 0.0));
    }

    #[test]
    fn strokes_wholly_outside_the_plane_draw_nothing_and_do_not_panic() {
        let mut cov = Plane::new(64, 32);
        // Past the right edge (x0 > width after clamping x1), above, and left of the plane.
        let pts = [
            [70.0, 10.0],
            [90.0, 12.0],
            [95.0, -30.0],
            [-20.0, -30.0],
            [-40.0, 10.0],
        ];
        let region = stroke(&mut cov, &pts, 2.0, false, EMPTY);
        assert_eq!(region, EMPTY);
        assert!(cov.px.iter().all(|&p| p == 0.0));
    }

    #[test]
    fn stroke_region_holds_every_covered_pixel_and_paint_clears_it() {
        let mut cov = Plane::new(64, 48);
        let pts: Vec<[f64; 2]> = (0..=80)
            .map(|i| {
                let t = i as f64 / 80.0 * 6.0;
                [32.0 + 20.0 * t.cos(), 24.0 + 15.0 * (1.3 * t).sin()]
            })
            .collect();
        let region = stroke(&mut cov, &pts, 1.6, false, EMPTY);
        let mut covered = 0;
        for y in 0..48 {
            for x in 0..64 {
                if cov.px[y * 64 + x] > 0.0 {
                    covered += 1;
                    assert!(x >= region[0] && x < region[2] && y >= region[1] && y < region[3]);
                }
            }
        }
        assert!(covered > 100, "{covered}");
        let mut cv = Canvas {
            hi: Rgb::filled(64, 48, [1.0; 3]),
        };
        cv.paint(&mut cov, region, [0.0; 3], 1.0);
        assert!(cov.px.iter().all(|&a| a == 0.0));
        let inked = cv.hi.px.chunks(3).filter(|p| p[0] < 1.0).count();
        assert_eq!(inked, covered);
    }
}
