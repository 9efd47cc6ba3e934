//! The preview contact sheet: a few samples of the plan, each as the image and the same with
//! its region outlines, captioned with label, flag family and hair.

use super::plan::{plan, spec_of};
use super::sample::{sample_from, Sample};
use super::write::encode_png;
use super::{SHORTCUT_FLAG, SHORTCUT_HAIR};
use crate::config::GenConfig;
use crate::pipeline::render;
use crate::SynthError;
use font8x8::UnicodeFonts;
use rayon::prelude::*;
use std::path::Path;

/// Outline colours of the preview (sRGB).
const OUTLINES: [(&str, [u8; 3]); 7] = [
    ("card", [255, 255, 255]),
    ("flag", [255, 220, 0]),
    ("face", [255, 0, 200]),
    ("mrz", [0, 220, 255]),
    ("moire", [255, 40, 40]),
    ("bands", [255, 140, 0]),
    ("glare", [160, 255, 160]),
];
/// Magnification of the samples on the sheet.
const ZOOM: u32 = 2;

/// Contact sheet of `n` samples (alternating screen and direct, from the data set's plan):
/// each sample as the image at ×2 and the same with region outlines, captioned with
/// label, flag family and hair.
pub fn write_preview(cfg: &GenConfig, out_png: &Path, n: usize) -> Result<(), SynthError> {
    let entries = plan(cfg)?;
    let screens = entries.iter().enumerate().filter(|(_, e)| e.screen);
    let directs = entries.iter().enumerate().filter(|(_, e)| !e.screen);
    let mut picked: Vec<usize> = Vec::new();
    for (s, d) in screens.zip(directs) {
        picked.push(s.0);
        picked.push(d.0);
        if picked.len() >= n.max(1) {
            break;
        }
    }
    picked.truncate(n.max(1));
    let samples: Vec<Sample> = picked
        .par_iter()
        .map(|&i| {
            let r = render(cfg, &spec_of(i, &entries[i]), false, true)?;
            sample_from(cfg, i, &entries[i], r)
        })
        .collect::<Result<_, _>>()?;
    // Tiles fit the largest side; a smaller photo sits in the top-left of its tile.
    let s = cfg.size;
    let tile_w = 2 * s * ZOOM + 8;
    let tile_h = s * ZOOM + 14;
    let cols = 3u32;
    let rows = (samples.len() as u32).div_ceil(cols);
    let mut sheet =
        image::RgbImage::from_pixel(tile_w * cols, tile_h * rows, image::Rgb([40, 40, 40]));
    for (t, smp) in samples.iter().enumerate() {
        let (ox, oy) = ((t as u32 % cols) * tile_w, (t as u32 / cols) * tile_h);
        draw_tile(&mut sheet, smp, (ox, oy));
    }
    let bytes = encode_png(out_png, &sheet)?;
    moirelab_core::fsio::write_atomic(out_png, &bytes)?;
    Ok(())
}

/// One tile at `(ox, oy)`: the caption, the sample twice at [`ZOOM`], the right copy with the
/// outlines of its regions.
fn draw_tile(sheet: &mut image::RgbImage, smp: &Sample, (ox, oy): (u32, u32)) {
    let (z, s) = (ZOOM, smp.image.width());
    let caption = format!(
        "#{} {} flag {} {}",
        smp.record
            .path
            .trim_start_matches("images/")
            .trim_end_matches(".png"),
        smp.record.label,
        smp.record.groups[SHORTCUT_FLAG],
        smp.record.groups[SHORTCUT_HAIR]
    );
    draw_text(sheet, ox + 2, oy + 3, &caption, [230, 230, 230]);
    for y in 0..s * z {
        for x in 0..s * z {
            let p = *smp.image.get_pixel(x / z, y / z);
            sheet.put_pixel(ox + x, oy + 12 + y, p);
            sheet.put_pixel(ox + s * z + 4 + x, oy + 12 + y, p);
        }
    }
    for (name, colour) in OUTLINES {
        let Some(m) = smp.masks.mask(name) else {
            continue;
        };
        let at = |x: i64, y: i64| {
            x >= 0
                && y >= 0
                && x < s as i64
                && y < s as i64
                && m[(y as u32 * s + x as u32) as usize]
        };
        for y in 0..s as i64 {
            for x in 0..s as i64 {
                if at(x, y) && !(at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) {
                    for dy in 0..z {
                        for dx in 0..z {
                            sheet.put_pixel(
                                ox + s * z + 4 + x as u32 * z + dx,
                                oy + 12 + y as u32 * z + dy,
                                image::Rgb(colour),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn draw_text(img: &mut image::RgbImage, x: u32, y: u32, s: &str, c: [u8; 3]) {
    for (i, ch) in s.chars().enumerate() {
        let Some(g) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (row, bits) in g.iter().enumerate() {
            for col in 0..8u32 {
                let (px, py) = (x + i as u32 * 8 + col, y + row as u32);
                if bits & (1 << col) != 0 && px < img.width() && py < img.height() {
                    img.put_pixel(px, py, image::Rgb(c));
                }
            }
        }
    }
}
