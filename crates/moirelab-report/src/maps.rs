//! Map strips (`epochs/NNNN/maps/*.png`, see `moirelab_core::run::MapsFile`) turned back into
//! pictures for the GIF strips and TensorBoard, coloured with the same piecewise-linear
//! colormaps the pages apply in the browser, so every view of a map shows the same colours.

use crate::{ReportError, Result};
use image::{GrayImage, RgbImage, RgbaImage};
use std::path::Path;

/// Colour stops of a colormap, equally spaced from 0 to 1 (`jet` for unknown names).
pub(crate) fn colormap_stops(name: &str) -> &'static [[u8; 3]] {
    const JET: [[u8; 3]; 9] = [
        [0, 0, 127],
        [0, 0, 255],
        [0, 127, 255],
        [0, 255, 255],
        [127, 255, 127],
        [255, 255, 0],
        [255, 127, 0],
        [255, 0, 0],
        [127, 0, 0],
    ];
    const TURBO: [[u8; 3]; 10] = [
        [48, 18, 59],
        [70, 98, 215],
        [54, 170, 249],
        [26, 228, 182],
        [114, 254, 94],
        [200, 239, 52],
        [250, 186, 57],
        [246, 107, 25],
        [202, 42, 4],
        [122, 4, 3],
    ];
    const VIRIDIS: [[u8; 3]; 9] = [
        [68, 1, 84],
        [71, 45, 123],
        [59, 82, 139],
        [44, 114, 142],
        [33, 145, 140],
        [40, 174, 128],
        [94, 201, 98],
        [173, 220, 48],
        [253, 231, 37],
    ];
    match name {
        "turbo" => &TURBO,
        "viridis" => &VIRIDIS,
        _ => &JET,
    }
}

/// Colour of grey level `q` (0..=255), linear between the stops (an SVG `table` transfer).
pub(crate) fn colorize(q: u8, stops: &[[u8; 3]]) -> [u8; 3] {
    let n = stops.len() - 1;
    let t = f64::from(q) / 255.0 * n as f64;
    let i = (t.floor() as usize).min(n - 1);
    let f = t - i as f64;
    let mut out = [0u8; 3];
    for c in 0..3 {
        let a = f64::from(stops[i][c]);
        let b = f64::from(stops[i + 1][c]);
        out[c] = (a + (b - a) * f).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Decode a strip PNG as 8-bit grey.
pub(crate) fn read_strip(path: &Path) -> Result<GrayImage> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    image::load_from_memory(&bytes)
        .map(|i| i.to_luma8())
        .map_err(|e| ReportError::Corrupt {
            path: path.to_path_buf(),
            msg: format!("cannot decode map strip: {e}"),
        })
}

/// Decode a PNG (a probe input) as RGB.
pub(crate) fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    image::load_from_memory(&bytes)
        .map(|i| i.to_rgb8())
        .map_err(|e| ReportError::Corrupt {
            path: path.to_path_buf(),
            msg: format!("cannot decode image: {e}"),
        })
}

/// Map `index` of a strip of maps `map_h` rows high (`maps.json`'s height) over `input`
/// (resized to the map's size when they differ): `out = (1 − w)·colour + w·input`, w = 0.5
/// as the dump's overlays. An input of another shape than the maps is an error naming it
/// (`input_path`); a strip without that map, one naming the strip (`strip_path`).
pub(crate) fn overlay(
    strip: &GrayImage,
    index: usize,
    map_h: u32,
    input: &RgbImage,
    stops: &[[u8; 3]],
    (strip_path, input_path): (&Path, &Path),
) -> Result<RgbaImage> {
    let w = strip.width();
    let rows = strip.height();
    let h = map_h;
    let (iw, ih) = input.dimensions();
    if iw == 0
        || ih == 0
        || (u64::from(iw) * u64::from(h)).abs_diff(u64::from(ih) * u64::from(w))
            > u64::from(iw.max(ih).max(w).max(h))
    {
        return Err(ReportError::Corrupt {
            path: input_path.to_path_buf(),
            msg: format!("probe input is {iw}x{ih}, the maps over it are {w}x{h} (another shape)"),
        });
    }
    let top = u64::try_from(index)
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::from(h));
    if w == 0 || h == 0 || top + u64::from(h) > u64::from(rows) {
        return Err(ReportError::Corrupt {
            path: strip_path.to_path_buf(),
            msg: format!(
                "strip of {w}x{rows} has no map {index} of {w}x{h} ({} maps)",
                rows.checked_div(h).unwrap_or(0)
            ),
        });
    }
    let top = top as u32;
    let base = if input.dimensions() == (w, h) {
        input.clone()
    } else {
        image::imageops::resize(input, w, h, image::imageops::FilterType::Triangle)
    };
    let mut out = RgbaImage::new(w, h);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let c = colorize(strip.get_pixel(x, top + y).0[0], stops);
        let i = base.get_pixel(x, y).0;
        let mut v = [0u8; 4];
        for k in 0..3 {
            v[k] = ((f64::from(c[k]) + f64::from(i[k])) / 2.0).round() as u8;
        }
        v[3] = 255;
        px.0 = v;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colorize_hits_the_stops_and_interpolates_between() {
        let jet = colormap_stops("jet");
        assert_eq!(colorize(0, jet), [0, 0, 127]);
        assert_eq!(colorize(255, jet), [127, 0, 0]);
        // 127.5/255 is the middle stop; 128 is just past it.
        assert_eq!(colorize(128, jet)[1], 255);
        let v = colormap_stops("viridis");
        assert_eq!(colorize(255, v), [253, 231, 37]);
        assert_eq!(colormap_stops("nope"), jet);
    }

    #[test]
    fn overlay_picks_the_map_of_its_probe_and_blends_half_half() {
        let mut strip = GrayImage::new(2, 4);
        for x in 0..2 {
            strip.put_pixel(x, 2, image::Luma([255]));
            strip.put_pixel(x, 3, image::Luma([255]));
        }
        let input = RgbImage::from_pixel(2, 2, image::Rgb([1, 255, 255]));
        let p = (Path::new("s.png"), Path::new("in.png"));
        let jet = colormap_stops("jet");
        let first = overlay(&strip, 0, 2, &input, jet, p).unwrap();
        assert_eq!(first.get_pixel(0, 0).0, [1, 128, 191, 255]);
        let second = overlay(&strip, 1, 2, &input, jet, p).unwrap();
        assert_eq!(second.get_pixel(1, 1).0, [64, 128, 128, 255]);
        let e = overlay(&strip, 2, 2, &input, jet, p)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.png: ") && e.contains("no map 2"), "{e}");
        // An input of another shape is blamed on the input, not on the strip.
        let tall = RgbImage::new(1, 64);
        let e = overlay(&strip, 0, 2, &tall, jet, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("in.png: ") && e.contains("probe input is 1x64"),
            "{e}"
        );
    }
}
