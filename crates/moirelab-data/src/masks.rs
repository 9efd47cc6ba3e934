//! Region-mask PNGs: 16-bit grayscale bit fields (bit i ⇔ `regions[i]`, see
//! `moirelab_core::format`); 8-bit grayscale is accepted for data sets with ≤ 8 regions.

use image::DynamicImage;
use std::path::Path;

/// `(width, height, bits)` of a mask file; `Err` is a one-line reason.
pub(crate) fn read_mask_bits(path: &Path) -> Result<(u32, u32, Vec<u16>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (w, h) = (img.width(), img.height());
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
