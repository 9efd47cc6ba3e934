//! The region-mask PNG codec, one for every writer and reader: a mask is a grayscale PNG whose
//! pixel values are bit fields (bit *i* ⇔ `regions[i]` of `dataset.json`, see
//! [`crate::dataset_format::RegionMasks`]). Written as 16-bit grayscale; read from 16-bit, or from
//! 8-bit for data sets with at most 8 regions.

use crate::dataset_format::RegionMasks;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader};
use std::io::Cursor;

/// Encode `m` as a 16-bit grayscale PNG. `Err` is a one-line reason.
pub fn encode_png(m: &RegionMasks) -> Result<Vec<u8>, String> {
    if m.bits.len() != m.width as usize * m.height as usize {
        return Err(format!(
            "mask buffer holds {} values for {}x{} pixels",
            m.bits.len(),
            m.width,
            m.height
        ));
    }
    // `write_image` takes 16-bit samples as native-endian bytes and stores them big-endian.
    let bytes: Vec<u8> = m.bits.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let mut out = Vec::new();
    // Masks are runs of equal 16-bit values: the `Up` filter turns every row inside a region
    // into zeros, as small as the adaptive choice and without trying five filters per row.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Up)
        .write_image(&bytes, m.width, m.height, image::ExtendedColorType::L16)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decode a mask PNG to `(width, height, bits)`. A header declaring more than `max_pixels`
/// pixels is refused before anything is decoded. `Err` is a one-line reason.
pub fn decode_png(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32, Vec<u16>), String> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Png);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip_and_8_bit_reads_and_colour_is_refused() {
        let m = RegionMasks {
            width: 3,
            height: 2,
            names: vec!["card".into(), "flag".into()],
            bits: vec![0, 1, 3, 0x8000, 0xffff, 2],
        };
        let png = encode_png(&m).unwrap();
        assert_eq!(decode_png(&png, 6).unwrap(), (3, 2, m.bits.clone()));
        let err = decode_png(&png, 5).unwrap_err();
        assert!(err.contains("3x2") && err.contains("max-pixels 5"), "{err}");
        let short = RegionMasks {
            bits: vec![0; 5],
            ..m.clone()
        };
        assert!(encode_png(&short).unwrap_err().contains("5 values for 3x2"));

        let mut l8 = Vec::new();
        PngEncoder::new(&mut l8)
            .write_image(&[0, 1, 2, 255], 2, 2, image::ExtendedColorType::L8)
            .unwrap();
        assert_eq!(decode_png(&l8, 100).unwrap(), (2, 2, vec![0, 1, 2, 255]));
        let mut rgb = Vec::new();
        PngEncoder::new(&mut rgb)
            .write_image(&[0; 12], 2, 2, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(decode_png(&rgb, 100)
            .unwrap_err()
            .contains("not a grayscale"));
        assert!(decode_png(b"junk", 100)
            .unwrap_err()
            .starts_with("not a readable PNG"));
    }
}
