//! The portrait of shortcut S2: hair colour, the geometry of head, hair, shoulders, eyes and
//! mouth in the photo box, and its painting onto the card.

use super::canvas::{ellipse, in_box, Canvas};
use super::{BoxF, CardSpec, AA, SS};
use crate::raster::lin;

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

/// An ellipse: centre and radii, display pixels.
pub(super) type Ellipse = ([f64; 2], [f64; 2]);

/// Where the portrait's shapes lie inside the photo box (display pixels), and the colours
/// of eyes and lips (the rest come from the [`CardSpec`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Portrait {
    pub(super) photo: BoxF,
    pub(super) head: Ellipse,
    pub(super) hair: Ellipse,
    shoulders: Ellipse,
    eyes: [[f64; 2]; 2],
    eye_colour: [f32; 3],
    lip_colour: [f32; 3],
}

impl Portrait {
    pub(super) fn new(photo: BoxF) -> Portrait {
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
        Portrait {
            photo,
            head: (head_c, head_r),
            hair: (hair_c, hair_r),
            shoulders: (shoulder_c, shoulder_r),
            eyes,
            eye_colour: lin([30, 30, 35]),
            lip_colour: lin([150, 70, 70]),
        }
    }

    /// The hair shows above this line only (below it the head and shoulders cover it).
    pub(super) fn hair_cut(&self) -> f64 {
        let (head_c, head_r) = self.head;
        head_c[1] + head_r[1] * 0.4
    }

    /// Bounding box of head and hair.
    pub(super) fn face_box(&self) -> BoxF {
        let ((head_c, head_r), (hair_c, hair_r)) = (self.head, self.hair);
        [
            head_c[0] - hair_r[0],
            hair_c[1] - hair_r[1],
            head_c[0] + hair_r[0],
            head_c[1] + head_r[1],
        ]
    }

    /// Colour of the topmost shape at `(px, py)`; `None` outside every shape or the photo box.
    fn colour_at(&self, spec: &CardSpec, px: f64, py: f64) -> Option<[f32; 3]> {
        let ((head_c, head_r), (hair_c, hair_r)) = (self.head, self.hair);
        let mut c = None;
        if in_box(&self.photo, px, py) {
            if ellipse(self.shoulders.0, self.shoulders.1, px, py) < 1.0 {
                c = Some(spec.cloth);
            }
            if ellipse(hair_c, hair_r, px, py) < 1.0 && py < self.hair_cut() {
                c = Some(spec.hair_colour);
            }
            if ellipse(head_c, head_r, px, py) < 1.0 && py >= head_c[1] - head_r[1] * 0.45 {
                c = Some(spec.skin);
                for e in &self.eyes {
                    if ellipse(*e, [head_r[0] * 0.12, head_r[1] * 0.08], px, py) < 1.0 {
                        c = Some(self.eye_colour);
                    }
                }
                let m = [head_c[0], head_c[1] + head_r[1] * 0.5];
                if ellipse(m, [head_r[0] * 0.3, head_r[1] * 0.06], px, py) < 1.0 {
                    c = Some(self.lip_colour);
                }
            }
        }
        c
    }
}

/// Paint the photo box's background and the portrait in it, point-sampled with the [`AA`]
/// sub-samples; returns the portrait's geometry (for the labels).
pub(super) fn paint_portrait(cv: &mut Canvas, spec: &CardSpec, photo: BoxF) -> Portrait {
    cv.fill_rect(photo, spec.photo_bg, 1.0);
    let portrait = Portrait::new(photo);
    let s = SS as f64;
    let [x0, y0, x1, y1] = photo.map(|v| v * s);
    for y in (y0.floor() as usize)..(y1.ceil() as usize).min(cv.hi.h) {
        for x in (x0.floor() as usize)..(x1.ceil() as usize).min(cv.hi.w) {
            // Each sub-sample takes the topmost shape's colour; sub-samples outside every
            // shape (or outside the photo box) keep the pixel's background.
            let under = cv.hi.get(x, y);
            let mut acc = [0.0f32; 3];
            let mut hit = false;
            for (sx, sy) in AA {
                let (px, py) = ((x as f64 + sx) / s, (y as f64 + sy) / s);
                let c = portrait.colour_at(spec, px, py);
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
    portrait
}
