//! Animated GIF strips: one per probe and CAM method, the overlay tile at every epoch that
//! has one, each frame captioned with its epoch. They show at a glance whether attention
//! drifts from the flag to the screen artifacts, and they paste into issues and chats.

use crate::load::RunData;
use crate::{ReportError, Result};
use font8x8::UnicodeFonts;
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, Rgba, RgbaImage};
use moirelab_core::fsio::write_atomic;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Milliseconds each epoch stays on screen.
const FRAME_MS: u32 = 700;

/// `report/gifs/NN-<method>.gif` of a run.
pub fn gif_path(run_dir: &Path, probe: usize, method: &str) -> PathBuf {
    run_dir
        .join("report")
        .join("gifs")
        .join(format!("{probe:02}-{method}.gif"))
}

/// Draw `text` with the 8x8 bitmap font at integer `scale`, top-left at (x, y).
fn draw_text(img: &mut RgbaImage, x: u32, y: u32, text: &str, scale: u32, color: Rgba<u8>) {
    let mut cx = x;
    for ch in text.chars() {
        if let Some(glyph) = font8x8::BASIC_FONTS.get(ch) {
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8u32 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = cx + col * scale + dx;
                            let py = y + row as u32 * scale + dy;
                            if px < img.width() && py < img.height() {
                                img.put_pixel(px, py, color);
                            }
                        }
                    }
                }
            }
        }
        cx += 8 * scale;
    }
}

/// A frame: the tile below a dark caption bar reading `epoch N`.
fn frame_image(tile: &RgbaImage, epoch: u32) -> RgbaImage {
    let scale = if tile.width() >= 160 { 2 } else { 1 };
    let bar = 8 * scale + 4;
    let mut img = RgbaImage::from_pixel(tile.width(), tile.height() + bar, Rgba([24, 24, 24, 255]));
    image::imageops::replace(&mut img, tile, 0, i64::from(bar));
    draw_text(
        &mut img,
        2,
        2,
        &format!("epoch {epoch}"),
        scale,
        Rgba([255, 255, 255, 255]),
    );
    img
}

fn decode(path: &Path) -> Result<RgbaImage> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    image::load_from_memory(&bytes)
        .map(|i| i.to_rgba8())
        .map_err(|e| ReportError::Corrupt {
            path: path.to_path_buf(),
            msg: format!("cannot decode tile: {e}"),
        })
}

/// Write one GIF per (probe, method) that has at least one overlay tile; returns the paths.
pub fn write_probe_gifs(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let run = crate::load::load_run(run_dir)?;
    write_probe_gifs_for(&run)
}

pub(crate) fn write_probe_gifs_for(run: &RunData) -> Result<Vec<PathBuf>> {
    // (probe, method) -> [(epoch, tile path)] in epoch order.
    let mut strips: BTreeMap<(usize, String), Vec<(u32, &PathBuf)>> = BTreeMap::new();
    for e in &run.epochs {
        for ((probe, method, kind), path) in &e.tiles {
            if kind == "overlay" {
                strips
                    .entry((*probe, method.clone()))
                    .or_default()
                    .push((e.epoch, path));
            }
        }
    }
    let mut out = Vec::new();
    for ((probe, method), frames) in strips {
        let mut size = None;
        let mut encoded = Vec::new();
        {
            let mut enc = GifEncoder::new_with_speed(&mut encoded, 10);
            let path = gif_path(&run.dir, probe, &method);
            let enc_err = |e: image::ImageError| ReportError::Encode {
                path: path.clone(),
                what: "animated GIF",
                msg: e.to_string(),
            };
            enc.set_repeat(Repeat::Infinite).map_err(enc_err)?;
            for (epoch, tile_path) in frames {
                let mut tile = decode(tile_path)?;
                // Frames must share one size; a tile of another size (changed image-size on
                // resume) is scaled to the first one rather than breaking the strip.
                let (w, h) = *size.get_or_insert(tile.dimensions());
                if tile.dimensions() != (w, h) {
                    tile =
                        image::imageops::resize(&tile, w, h, image::imageops::FilterType::Triangle);
                }
                let frame = Frame::from_parts(
                    frame_image(&tile, epoch),
                    0,
                    0,
                    Delay::from_numer_denom_ms(FRAME_MS, 1),
                );
                enc.encode_frame(frame).map_err(enc_err)?;
            }
        }
        let path = gif_path(&run.dir, probe, &method);
        write_atomic(&path, &encoded)?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_bar_is_drawn_above_the_tile() {
        let tile = RgbaImage::from_pixel(40, 20, Rgba([0, 200, 0, 255]));
        let f = frame_image(&tile, 12);
        assert_eq!(f.dimensions(), (40, 32));
        // Some white caption pixels in the bar, the tile intact below it.
        let white = (0..40)
            .flat_map(|x| (0..12).map(move |y| (x, y)))
            .filter(|&(x, y)| f.get_pixel(x, y).0 == [255, 255, 255, 255])
            .count();
        assert!(white > 10, "caption has {white} white pixels");
        assert_eq!(f.get_pixel(5, 20).0, [0, 200, 0, 255]);
    }
}
