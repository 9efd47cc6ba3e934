//! The drawing surface of the card and its geometric primitives: rectangles with exact area
//! coverage, 8×8-font text, anti-aliased polyline strokes, the rounded outline, ellipses and
//! boxes.

use super::{BoxF, SS};
use crate::raster::{fceil, ffloor, Plane, Rgb};
use font8x8::UnicodeFonts;

/// The card's drawing surface, `SS`× the display resolution (linear RGB).
pub(super) struct Canvas {
    pub(super) hi: Rgb,
}

impl Canvas {
    /// Fill an axis-aligned rectangle given in display pixels with exact area coverage.
    pub(super) fn fill_rect(&mut self, b: BoxF, c: [f32; 3], opacity: f32) {
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
    pub(super) fn paint(&mut self, cov: &mut Plane, region: [usize; 4], c: [f32; 3], opacity: f32) {
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
    /// `weight` (0–1] is the share of its cell's width a font pixel fills: 1 is the font's
    /// bold look; below, vertical strokes thin (horizontal runs stay joined), a lighter face.
    /// Returns the text's bounding box in display pixels.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn text(
        &mut self,
        s: &str,
        x: f64,
        y: f64,
        cell_w: f64,
        cell_h: f64,
        c: [f32; 3],
        weight: f64,
    ) -> BoxF {
        let gap = (1.0 - weight.clamp(0.05, 1.0)) * cell_w;
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
                        // The last pixel of a horizontal run gives up the gap.
                        let last = col == 7 || bits & (1 << (col + 1)) == 0;
                        let x1 = px + cell_w - if last { gap } else { 0.0 };
                        self.fill_rect([px, py, x1, py + cell_h], c, 1.0);
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

/// The empty pixel region: merging any region into it gives that region.
pub(super) const EMPTY: [usize; 4] = [usize::MAX, usize::MAX, 0, 0];

/// Accumulate an anti-aliased stroke of a polyline into a coverage plane (max-combined, so
/// joints are not painted twice). With `aliased`, coverage is binary (hard-negative mode).
/// Returns the pixel region `[x0, y0, x1, y1)` the stroke may have touched, merged into
/// `region`.
pub(super) fn stroke(
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

/// Coverage of the point `(px, py)` by the card's rounded-rectangle outline (analytic,
/// one-pixel ramp).
pub(super) fn outline_cov(px: f64, py: f64, wf: f64, hf: f64, rad: f64) -> f32 {
    let qx = (px - wf * 0.5).abs() - (wf * 0.5 - rad);
    let qy = (py - hf * 0.5).abs() - (hf * 0.5 - rad);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0);
    (0.5 - (outside - rad)).clamp(0.0, 1.0) as f32
}

/// `((x − c)/r)²` summed over both axes: < 1 inside the ellipse.
pub(super) fn ellipse(c: [f64; 2], r: [f64; 2], x: f64, y: f64) -> f64 {
    let (dx, dy) = ((x - c[0]) / r[0], (y - c[1]) / r[1]);
    dx * dx + dy * dy
}

/// True when `(x, y)` lies in the half-open box `[x0, x1) × [y0, y1)`.
pub(super) fn in_box(b: &BoxF, x: f64, y: f64) -> bool {
    x >= b[0] && x < b[2] && y >= b[1] && y < b[3]
}

#[cfg(test)]
mod tests {
    use super::*;

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
