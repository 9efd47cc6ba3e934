//! Region-mask PNGs: 16-bit grayscale bit fields (bit i ⇔ `regions[i]`, see
//! `moirelab_core::format`); 8-bit grayscale is accepted for data sets with ≤ 8 regions.

use image::{DynamicImage, ImageDecoder, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// `(width, height, bits)` of a mask file; `Err` is a one-line reason. Like images, a mask
/// whose header declares more than `max_pixels` pixels is refused before decoding.
pub(crate) fn read_mask_bits(path: &Path, max_pixels: u64) -> Result<(u32, u32, Vec<u16>), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    // 16-bit samples: 2 bytes a pixel, plus slack for a badly compressed file.
    if meta.len() > max_pixels.saturating_mul(4).saturating_add(64 << 20) {
        return Err(format!(
            "file is {} bytes, too large for a mask",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), image::ImageFormat::Png);
    let mut lim = image::Limits::default();
    lim.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(lim);
    let decoder = reader
        .into_decoder()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > max_pixels {
        return Err(format!(
            "header declares {w}x{h}, above [data] max-pixels {max_pixels}; not decoded"
        ));
    }
    let img =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("not a readable PNG: {e}"))?;
    let bits = match img {
        DynamicImage::ImageLuma16(m) => m.into_raw(),
        DynamicImage::ImageLuma8(m) => m.into_raw().into_iter().map(u16::from).collect(),
        other => {
            return Err(format!(
                "{:?} is not a grayscale bit-field mask (expected 16-bit grayscale)",
                other.color()
            ))
        }
    };
    Ok((w, h, bits))
}
