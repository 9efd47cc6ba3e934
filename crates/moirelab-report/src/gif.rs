//! Animated GIF strips: one per probe and CAM method, the predicted-class map over the input
//! at every epoch with a dump (from the map strip, else the overlay tile), each frame
//! captioned with its epoch. They show at a glance whether attention
//! drifts from the flag to the screen artifacts, and they paste into issues and chats.
//!
//! Frames use one fixed global palette (a 6x7x6 colour cube with ordered dithering) instead
//! of a per-frame NeuQuant palette: the same heat value keeps the same colour in every frame,
//! so a strip does not flicker, and no palette search runs per pixel — NeuQuant's search
//! was most of the report's run time (see `examples/report_timing.rs`).

use crate::load::RunData;
use crate::{ReportError, Result};
use font8x8::UnicodeFonts;
use image::RgbaImage;
use moirelab_core::fsio::write_atomic;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Hundredths of a second each epoch stays on screen.
const FRAME_CS: u16 = 70;

/// Levels per channel of the colour cube: 6 x 7 x 6 = 252 colours (green gets the extra
/// level: the eye is most sensitive to it).
const LEVELS: [u32; 3] = [6, 7, 6];
const CUBE: usize = 6 * 7 * 6;
/// Palette index of the caption bar's dark grey (after the cube).
const BAR: u8 = CUBE as u8;
/// Palette index of white (the cube's last colour).
const WHITE: u8 = (CUBE - 1) as u8;
const BAR_RGB: [u8; 3] = [24, 24, 24];

/// 4x4 Bayer matrix for ordered dithering.
const BAYER4: [[u32; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

/// The global palette, `[r, g, b, ...]`: the cube, then the bar colour.
fn palette() -> Vec<u8> {
    let mut p = Vec::with_capacity((CUBE + 1) * 3);
    for r in 0..LEVELS[0] {
        for g in 0..LEVELS[1] {
            for b in 0..LEVELS[2] {
                for (v, l) in [(r, LEVELS[0]), (g, LEVELS[1]), (b, LEVELS[2])] {
                    p.push(((v * 255 + (l - 1) / 2) / (l - 1)) as u8);
                }
            }
        }
    }
    p.extend_from_slice(&BAR_RGB);
    p
}

/// Level of channel value `v` with Bayer threshold `b` (0..16): round(v/step + (b+0.5)/16
/// - 0.5) with step = 255/(levels-1), in integers.
fn level(v: u8, levels: u32, b: u32) -> u32 {
    ((32 * u32::from(v) * (levels - 1) + 255 * (2 * b + 1)) / (255 * 32)).min(levels - 1)
}

/// Palette index of pixel (x, y) with colour `rgb`, ordered-dithered.
fn index_of(rgb: [u8; 3], x: u32, y: u32) -> u8 {
    let b = BAYER4[(y % 4) as usize][(x % 4) as usize];
    let r = level(rgb[0], LEVELS[0], b);
    let g = level(rgb[1], LEVELS[1], b);
    let bl = level(rgb[2], LEVELS[2], b);
    (r * LEVELS[1] * LEVELS[2] + g * LEVELS[2] + bl) as u8
}

/// Caption bar height for a tile width: the 8x8 font at scale 1 or 2, plus 4 px.
fn bar_height(width: u32) -> u32 {
    8 * font_scale(width) + 4
}

fn font_scale(width: u32) -> u32 {
    if width >= 160 {
        2
    } else {
        1
    }
}

/// Indexed frame: caption bar reading `epoch N` above the dithered tile.
///
/// # Shapes
/// Returns `width * (height + bar_height(width))` palette indices, row-major.
fn frame_indices(tile: &RgbaImage, epoch: u32) -> Vec<u8> {
    let (w, h) = tile.dimensions();
    let scale = font_scale(w);
    let bar = bar_height(w);
    let mut out = vec![BAR; (w * (h + bar)) as usize];
    let mut cx = 2;
    for ch in format!("epoch {epoch}").chars() {
        if let Some(glyph) = font8x8::BASIC_FONTS.get(ch) {
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8u32 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = cx + col * scale + dx;
                            let py = 2 + row as u32 * scale + dy;
                            if px < w && py < bar {
                                out[(py * w + px) as usize] = WHITE;
                            }
                        }
                    }
                }
            }
        }
        cx += 8 * scale;
    }
    for (x, y, p) in tile.enumerate_pixels() {
        out[((y + bar) * w + x) as usize] = index_of([p.0[0], p.0[1], p.0[2]], x, y);
    }
    out
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

/// `report/gifs/NN-<method>.gif` of a run.
pub fn gif_path(run_dir: &Path, probe: usize, method: &str) -> PathBuf {
    run_dir
        .join("report")
        .join("gifs")
        .join(format!("{probe:02}-{method}.gif"))
}

/// Where one frame comes from: an overlay tile, or a map strip over the probe's input.
enum Source<'a> {
    Tile(&'a PathBuf),
    Strip {
        strip: &'a PathBuf,
        index: usize,
        /// Height of one map (`maps.json`).
        map_h: u32,
        input: &'a PathBuf,
    },
}

/// Decoded strips and inputs, shared by every probe's strip of one run.
#[derive(Default)]
struct Cache {
    strips: BTreeMap<PathBuf, image::GrayImage>,
    inputs: BTreeMap<PathBuf, image::RgbImage>,
}

impl Source<'_> {
    fn path(&self) -> &PathBuf {
        match self {
            Source::Tile(p) => p,
            Source::Strip { strip, .. } => strip,
        }
    }

    fn load(&self, cache: &mut Cache, stops: &[[u8; 3]]) -> Result<RgbaImage> {
        match self {
            Source::Tile(p) => decode(p),
            Source::Strip {
                strip,
                index,
                map_h,
                input,
            } => {
                if !cache.strips.contains_key(*strip) {
                    let img = crate::maps::read_strip(strip)?;
                    cache.strips.insert((*strip).clone(), img);
                }
                if !cache.inputs.contains_key(*input) {
                    let img = crate::maps::read_rgb(input)?;
                    cache.inputs.insert((*input).clone(), img);
                }
                match (cache.strips.get(*strip), cache.inputs.get(*input)) {
                    (Some(s), Some(i)) => {
                        crate::maps::overlay(s, *index, *map_h, i, stops, (strip, input))
                    }
                    _ => Err(ReportError::Corrupt {
                        path: (*strip).clone(),
                        msg: "strip not cached".into(),
                    }),
                }
            }
        }
    }
}

/// Encode one strip; `frames` are (epoch, source) in epoch order.
fn encode_strip(
    path: &Path,
    frames: &[(u32, Source<'_>)],
    cache: &mut Cache,
    stops: &[[u8; 3]],
) -> Result<Vec<u8>> {
    let enc_err = |e: gif::EncodingError| ReportError::Encode {
        path: path.to_path_buf(),
        what: "animated GIF",
        msg: e.to_string(),
    };
    let Some((_, first_src)) = frames.first() else {
        return Ok(Vec::new());
    };
    let first_path = first_src.path();
    let mut first = Some(first_src.load(cache, stops)?);
    let size = first.as_ref().map(|t| t.dimensions()).unwrap_or((0, 0));
    let too_big = |_| ReportError::Corrupt {
        path: first_path.clone(),
        msg: format!("tile {}x{} is too large for a GIF", size.0, size.1),
    };
    let w = u16::try_from(size.0).map_err(too_big)?;
    let h = u16::try_from(size.1 + bar_height(size.0)).map_err(too_big)?;
    let mut encoded = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut encoded, w, h, &palette()).map_err(enc_err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(enc_err)?;
        for (epoch, src) in frames {
            let epoch = *epoch;
            let mut tile = match first.take() {
                Some(t) => t,
                None => src.load(cache, stops)?,
            };
            // Frames share one size; a tile of another size (image size changed on resume)
            // is scaled to the first one rather than breaking the strip.
            if tile.dimensions() != size {
                tile = image::imageops::resize(
                    &tile,
                    size.0,
                    size.1,
                    image::imageops::FilterType::Triangle,
                );
            }
            let frame = gif::Frame {
                width: w,
                height: h,
                delay: FRAME_CS,
                buffer: Cow::Owned(frame_indices(&tile, epoch)),
                ..gif::Frame::default()
            };
            enc.write_frame(&frame).map_err(enc_err)?;
        }
    }
    Ok(encoded)
}

/// The GIFs of a run: those written, and one line for each left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gifs {
    pub written: Vec<PathBuf>,
    /// Why a GIF was not written, naming the frame's file that does not decode (or the GIF
    /// that could not be written) and the GIF.
    pub skipped: Vec<String>,
}

/// Write one GIF per (probe, method) that has at least one map strip or overlay tile. A GIF
/// one of whose frames does not decode is left out, with a line in [`Gifs::skipped`]; the
/// others are still written.
pub fn write_probe_gifs(run_dir: &Path) -> Result<Gifs> {
    let run = crate::load::load_run(run_dir)?;
    Ok(write_probe_gifs_for(&run))
}

pub(crate) fn write_probe_gifs_for(run: &RunData) -> Gifs {
    // (probe, method) -> [(epoch, source)] in epoch order: the pred map strip over the
    // probe's input where the epoch has one, else the dump's overlay tile.
    let mut strips: BTreeMap<(usize, String), Vec<(u32, Source<'_>)>> = BTreeMap::new();
    let methods = run.methods();
    for e in &run.epochs {
        let mut covered: Vec<(usize, &String)> = Vec::new();
        for m in &methods {
            let key = format!("{m}/pred");
            let (Some(strip), Some(mf)) = (e.strips.get(&key), e.maps.as_ref()) else {
                continue;
            };
            let n = mf.maps.get(&key).map(|s| s.max.len()).unwrap_or(0);
            for (&probe, input) in run.probe_inputs.range(..n) {
                strips.entry((probe, m.clone())).or_default().push((
                    e.epoch,
                    Source::Strip {
                        strip,
                        index: probe,
                        map_h: mf.height,
                        input,
                    },
                ));
                covered.push((probe, m));
            }
        }
        for ((probe, method, kind), path) in &e.tiles {
            if kind == "overlay" && !covered.contains(&(*probe, method)) {
                strips
                    .entry((*probe, method.clone()))
                    .or_default()
                    .push((e.epoch, Source::Tile(path)));
            }
        }
    }
    let stops = crate::maps::colormap_stops(&run.colormap());
    let mut cache = Cache::default();
    let mut out = Gifs::default();
    for ((probe, method), frames) in strips {
        let path = gif_path(&run.dir, probe, &method);
        let written = encode_strip(&path, &frames, &mut cache, stops)
            .and_then(|bytes| Ok(write_atomic(&path, &bytes)?));
        match written {
            Ok(()) => out.written.push(path),
            Err(e) => out.skipped.push(format!(
                "{}; GIF {} left out",
                e.to_string().replace('\n', " "),
                path.display()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn rgb_of(pal: &[u8], i: u8) -> [u8; 3] {
        let i = usize::from(i) * 3;
        [pal[i], pal[i + 1], pal[i + 2]]
    }

    #[test]
    fn palette_has_the_cube_then_the_bar_and_white_at_the_cube_end() {
        let p = palette();
        assert_eq!(p.len(), (CUBE + 1) * 3);
        assert_eq!(rgb_of(&p, 0), [0, 0, 0]);
        assert_eq!(rgb_of(&p, WHITE), [255, 255, 255]);
        assert_eq!(rgb_of(&p, BAR), BAR_RGB);
        // Exact cube colours map to themselves under every dither threshold.
        for i in [0u8, 7, 100, 200, WHITE] {
            let c = rgb_of(&p, i);
            for (x, y) in [(0, 0), (1, 2), (3, 3)] {
                assert_eq!(index_of(c, x, y), i, "colour {c:?} at ({x},{y})");
            }
        }
    }

    #[test]
    fn dithering_keeps_4x4_block_means_close_to_the_input() {
        let p = palette();
        let tile = RgbaImage::from_fn(64, 64, |x, y| {
            Rgba([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8, 255])
        });
        let idx = frame_indices(&tile, 3);
        let bar = bar_height(64);
        for by in 0..16u32 {
            for bx in 0..16u32 {
                for c in 0..3 {
                    let (mut a, mut q) = (0.0f32, 0.0f32);
                    for i in 0..16u32 {
                        let (x, y) = (bx * 4 + i % 4, by * 4 + i / 4);
                        a += f32::from(tile.get_pixel(x, y).0[c]);
                        q += f32::from(rgb_of(&p, idx[((y + bar) * 64 + x) as usize])[c]);
                    }
                    let d = (a - q).abs() / 16.0;
                    assert!(d < 12.0, "block ({bx},{by}) channel {c} off by {d}");
                }
            }
        }
    }

    #[test]
    fn caption_bar_reads_white_on_dark_above_the_tile() {
        let tile = RgbaImage::from_pixel(40, 20, Rgba([0, 255, 0, 255]));
        let idx = frame_indices(&tile, 12);
        assert_eq!(idx.len(), 40 * 32);
        let white = idx[..40 * 12].iter().filter(|&&i| i == WHITE).count();
        assert!(white > 10, "caption has {white} white pixels");
        let green = index_of([0, 255, 0], 5, 0);
        assert_eq!(idx[20 * 40 + 5], green);
    }
}
