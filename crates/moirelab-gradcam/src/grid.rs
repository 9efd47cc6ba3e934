//! Grid images: one row of equally sized tiles per probe, a label strip under each row, column
//! titles on top and a colour bar at the bottom. Text is drawn with the public-domain 8×8
//! bitmap font of the `font8x8` crate, so no font files or system libraries are involved and
//! the bytes are identical on every machine.

use crate::Colormap;
use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

const PAD: u32 = 4;
const LINE: u32 = 10; // 8 px glyph + 2 px leading
const BG: Rgb<u8> = Rgb([24, 24, 24]);
const FG: Rgb<u8> = Rgb([235, 235, 235]);

/// One probe row.
#[derive(Debug, Clone)]
pub struct GridRow {
    /// Tiles left to right; all tiles of a grid must have the same size.
    pub tiles: Vec<RgbImage>,
    /// Drawn under the tiles, wrapped at spaces onto as many lines as it needs.
    pub label: String,
}

/// Colour bar with labels for its two ends.
#[derive(Debug, Clone)]
pub struct ColorBar {
    pub colormap: Colormap,
    pub low: String,
    pub high: String,
    /// Middle text, e.g. the scale mode.
    pub caption: String,
}

/// Draw `text` with its top-left corner at `(x, y)`, clipped to the image. Characters outside
/// the font are drawn as `?`.
pub fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        let gx = x + 8 * i as u32;
        if gx >= img.width() {
            break;
        }
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                // font8x8: bit i of a row byte = column i (LSB on the left).
                if (bits >> col) & 1 == 1 {
                    let (px, py) = (gx + col, y + row as u32);
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, color);
                    }
                }
            }
        }
    }
}

/// Characters that fit in `width` pixels.
fn fit_chars(text: &str, width: u32) -> String {
    text.chars().take((width / 8) as usize).collect()
}

/// Split `text` at spaces into lines of at most `width` pixels; a word longer than a line is
/// cut into line-sized pieces, so nothing is dropped.
pub fn wrap(text: &str, width: u32) -> Vec<String> {
    let max = ((width / 8) as usize).max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let chars: Vec<char> = word.chars().collect();
        for piece in chars.chunks(max) {
            let piece: String = piece.iter().collect();
            let need = cur.chars().count() + usize::from(!cur.is_empty()) + piece.chars().count();
            if !cur.is_empty() && need > max {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(&piece);
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Compose a grid. `headers` are column titles (one per tile column, truncated to the tile
/// width). Returns a tiny blank image when there are no rows.
pub fn compose(headers: &[String], rows: &[GridRow], bar: Option<&ColorBar>) -> RgbImage {
    let cols = rows.iter().map(|r| r.tiles.len()).max().unwrap_or(0) as u32;
    let (tw, th) = rows
        .iter()
        .flat_map(|r| r.tiles.first())
        .map(|t| t.dimensions())
        .next()
        .unwrap_or((0, 0));
    let width = (PAD + cols * (tw + PAD)).max(2 * PAD + 8 * 24);
    let label_w = width - 2 * PAD;
    let labels: Vec<Vec<String>> = rows.iter().map(|r| wrap(&r.label, label_w)).collect();
    let lines = labels.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let row_h = th + lines * LINE + PAD;
    let bar_h = if bar.is_some() { 12 + LINE + PAD } else { 0 };
    let height = PAD + LINE + rows.len() as u32 * row_h + bar_h + PAD;
    let mut img = RgbImage::from_pixel(width, height, BG);

    for (c, h) in headers.iter().enumerate().take(cols as usize) {
        let x = PAD + c as u32 * (tw + PAD);
        draw_text(&mut img, x, PAD, &fit_chars(h, tw), FG);
    }
    let mut y = PAD + LINE;
    for (row, label) in rows.iter().zip(&labels) {
        for (c, tile) in row.tiles.iter().enumerate() {
            let x = PAD + c as u32 * (tw + PAD);
            image::imageops::replace(&mut img, tile, x as i64, y as i64);
        }
        for (l, line) in label.iter().enumerate() {
            draw_text(&mut img, PAD, y + th + 1 + l as u32 * LINE, line, FG);
        }
        y += row_h;
    }
    if let Some(bar) = bar {
        let bw = width - 2 * PAD;
        for x in 0..bw {
            let v = if bw > 1 {
                x as f32 / (bw - 1) as f32
            } else {
                0.0
            };
            let c = Rgb(bar.colormap.rgb(v));
            for dy in 0..12 {
                img.put_pixel(PAD + x, y + dy, c);
            }
        }
        let ty = y + 12 + 1;
        draw_text(&mut img, PAD, ty, &bar.low, FG);
        let hw = 8 * bar.high.chars().count() as u32;
        draw_text(&mut img, (PAD + bw).saturating_sub(hw), ty, &bar.high, FG);
        let caption = format!("{} {}", bar.colormap, bar.caption);
        let cw = 8 * caption.chars().count() as u32;
        draw_text(&mut img, (width.saturating_sub(cw)) / 2, ty, &caption, FG);
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_left_to_right_and_clipped() {
        let mut img = RgbImage::from_pixel(12, 8, BG);
        draw_text(&mut img, 0, 0, "II", FG);
        let lit: usize = img.pixels().filter(|p| **p == FG).count();
        assert!(lit > 0);
        // The second glyph is clipped at x = 12, so fewer pixels than two full glyphs.
        let mut full = RgbImage::from_pixel(16, 8, BG);
        draw_text(&mut full, 0, 0, "II", FG);
        assert!(full.pixels().filter(|p| **p == FG).count() > lit);
    }

    #[test]
    fn labels_wrap_at_spaces_and_keep_every_character() {
        let w = wrap(
            "00 true=screen pred=direct p=0.91 flag=A conflicting ep12",
            8 * 20,
        );
        assert!(w.iter().all(|l| l.chars().count() <= 20), "{w:?}");
        assert_eq!(
            w.join(" "),
            "00 true=screen pred=direct p=0.91 flag=A conflicting ep12"
        );
        assert_eq!(
            w,
            [
                "00 true=screen",
                "pred=direct p=0.91",
                "flag=A conflicting",
                "ep12"
            ]
        );
        assert_eq!(wrap("abcdefghij", 8 * 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 64), [""]);
    }

    #[test]
    fn grid_places_tiles_in_rows_and_columns() {
        let red = RgbImage::from_pixel(16, 16, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(16, 16, Rgb([0, 0, 255]));
        let rows = vec![
            GridRow {
                tiles: vec![red.clone(), blue.clone()],
                label: "a".into(),
            },
            GridRow {
                tiles: vec![blue, red],
                label: "b".into(),
            },
        ];
        let bar = ColorBar {
            colormap: Colormap::Viridis,
            low: "0".into(),
            high: "1".into(),
            caption: "per-image".into(),
        };
        let img = compose(&["x".into(), "y".into()], &rows, Some(&bar));
        let y0 = PAD + LINE;
        assert_eq!(img.get_pixel(PAD, y0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(PAD + 16 + PAD, y0).0, [0, 0, 255]);
        let y1 = y0 + 16 + LINE + PAD;
        assert_eq!(img.get_pixel(PAD, y1).0, [0, 0, 255]);
        let yb = y1 + 16 + LINE + PAD;
        assert_eq!(img.get_pixel(PAD, yb).0, Colormap::Viridis.rgb(0.0));
    }
}
