//! Heatmaps and overlays as RGB images, plus tensor ↔ pixel helpers.

use crate::{Colormap, GradcamError, Result};
use image::RgbImage;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// A single-channel map on the CPU, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Map2 {
    pub width: u32,
    pub height: u32,
    pub data: Vec<f32>,
}

impl Map2 {
    /// Copy one `[H, W]` tensor to the CPU.
    pub fn from_tensor(t: &Tensor) -> Result<Map2> {
        let (h, w) = t.size2()?;
        let flat = t
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1);
        Ok(Map2 {
            width: w as u32,
            height: h as u32,
            data: Vec::<f32>::try_from(&flat)?,
        })
    }

    /// Every image of an `[N, H, W]` tensor.
    pub fn batch_from_tensor(t: &Tensor) -> Result<Vec<Map2>> {
        let (n, _, _) = t.size3()?;
        (0..n).map(|i| Map2::from_tensor(&t.get(i))).collect()
    }

    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(0.0, f32::max)
    }
}

/// Colour a map: value `v` is drawn as `cmap(v / scale)`; `scale <= 0` draws zeros.
pub fn heatmap(map: &Map2, scale: f32, cmap: Colormap) -> RgbImage {
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let mut img = RgbImage::new(map.width, map.height);
    for (px, &v) in img.pixels_mut().zip(&map.data) {
        px.0 = cmap.rgb(v * inv);
    }
    img
}

/// `out = (1 − w)·heat + w·image` per channel, rounded; no gamma. Sizes must match.
pub fn overlay(image: &RgbImage, heat: &RgbImage, image_weight: f64) -> Result<RgbImage> {
    if image.dimensions() != heat.dimensions() {
        return Err(GradcamError::Shape {
            got: vec![image.width() as i64, image.height() as i64],
            expected: format!(
                "an image of the heatmap's size {}x{}",
                heat.width(),
                heat.height()
            ),
        });
    }
    let w = image_weight.clamp(0.0, 1.0);
    let mut out = RgbImage::new(image.width(), image.height());
    for ((o, i), h) in out.pixels_mut().zip(image.pixels()).zip(heat.pixels()) {
        for c in 0..3 {
            let v = (1.0 - w) * h.0[c] as f64 + w * i.0[c] as f64;
            o.0[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

/// Resize an image to `width × height` (bilinear) unless it already has that size.
pub fn fit(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        image.clone()
    } else {
        image::imageops::resize(image, width, height, image::imageops::FilterType::Triangle)
    }
}

/// Encode a PNG in memory (deterministic bytes).
pub fn png_bytes(img: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| GradcamError::Write {
            path: path.to_path_buf(),
            msg: format!("PNG encoding: {e}"),
        })?;
    Ok(buf)
}

/// Encode and write a PNG atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let bytes = png_bytes(img, path)?;
    moirelab_core::fsio::write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_is_a_plain_weighted_mean() {
        let image = RgbImage::from_pixel(2, 1, image::Rgb([200, 100, 0]));
        let heat = RgbImage::from_pixel(2, 1, image::Rgb([0, 100, 255]));
        let out = overlay(&image, &heat, 0.25).unwrap();
        // 0.75*heat + 0.25*image
        assert_eq!(out.get_pixel(0, 0).0, [50, 100, 191]);
        assert!(overlay(&image, &RgbImage::new(3, 1), 0.5).is_err());
    }

    #[test]
    fn heatmap_scales_and_saturates() {
        let m = Map2 {
            width: 3,
            height: 1,
            data: vec![0.0, 2.0, 8.0],
        };
        let img = heatmap(&m, 4.0, Colormap::Jet);
        assert_eq!(img.get_pixel(0, 0).0, Colormap::Jet.rgb(0.0));
        assert_eq!(img.get_pixel(1, 0).0, Colormap::Jet.rgb(0.5));
        assert_eq!(img.get_pixel(2, 0).0, Colormap::Jet.rgb(1.0));
        assert_eq!(
            heatmap(&m, 0.0, Colormap::Jet).get_pixel(2, 0).0,
            Colormap::Jet.rgb(0.0)
        );
    }
}
