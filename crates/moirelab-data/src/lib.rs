//! Data sets on disk for moirelab: readers for the moirelab format (`dataset.json` +
//! `manifest.jsonl` + bit-field region masks), ImageFolder trees and user CSV/JSONL
//! manifests; one validation pass that opens every file and reports what is wrong
//! ([`check`], [`CheckReport`]); a decode cache (memory or memory-mapped file) so later epochs
//! never decode; seeded, worker-count-independent augmentation (random resized crop, patch
//! crops at native resolution, flips, colour jitter, JPEG re-compression — geometry applies to
//! masks too); and a [`Loader`] that prepares batches as tch tensors on worker threads.
//!
//! It does not own models, training, metrics or CAM maths, and it never prints: the CLI
//! renders [`CheckReport`] with `Display`. Layouts are documented in `data/README.md`.

mod augment;
mod cache;
mod cache_tidy;
mod check;
mod config;
mod dataset;
mod decode;
mod error;
mod loader;
mod masks;
mod perturb;
mod similar;
mod source;
mod validate;

pub use check::{CheckReport, Problem, ProblemKind, RegionPresence, Severity, SplitStats};
pub use config::{
    AugmentConfig, CacheMode, DataConfig, FollowLinks, Format, Mode, OnBad, DEFAULT_MAX_PIXELS,
};
pub use dataset::{peek_classes, Dataset};
pub use decode::{content_hash, ImageInfo};
pub use error::DataError;
pub use loader::{Batch, Epoch, Loader, LoaderOptions};
pub use perturb::Perturbation;
pub use similar::{near_copies, HashList, HashedImage, PerceptualHash};
pub use source::{has_image_extension, EvalSpec, IMAGE_EXTENSIONS, SPLITS};
pub use validate::{check, check_eval, check_root};

use image::RgbImage;
use std::path::Path;
use tch::{Kind, Tensor};

/// Per-channel mean of the input normalisation, in `[0, 1]` units.
pub const MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// Per-channel standard deviation of the input normalisation, in `[0, 1]` units.
pub const STD: [f32; 3] = [0.25, 0.25, 0.25];

/// The one input normalisation: `x = (v / 255 − MEAN) / STD` per channel, mapping 8-bit
/// values to `[−2, 2]`. Models are trained from scratch, so fixed constants beat data-set
/// statistics that would change with every subset.
///
/// # Shapes
/// `[N, 3, H, W]` uint8 (or any numeric kind holding 0..=255) → `[N, 3, H, W]` f32.
pub fn normalize(x: &Tensor) -> Result<Tensor, DataError> {
    let dev = x.device();
    let mean = Tensor::f_from_slice(&MEAN)?
        .f_view([1, 3, 1, 1])?
        .f_to_device(dev)?;
    let std = Tensor::f_from_slice(&STD)?
        .f_view([1, 3, 1, 1])?
        .f_to_device(dev)?;
    Ok(x.f_to_kind(Kind::Float)?
        .f_div_scalar(255.0)?
        .f_sub(&mean)?
        .f_div(&std)?)
}

/// Inverse of [`normalize`] back to `[0, 255]` floats (for overlays of network inputs).
///
/// # Shapes
/// `[N, 3, H, W]` f32 → `[N, 3, H, W]` f32.
pub fn denormalize(x: &Tensor) -> Result<Tensor, DataError> {
    let dev = x.device();
    let mean = Tensor::f_from_slice(&MEAN)?
        .f_view([1, 3, 1, 1])?
        .f_to_device(dev)?;
    let std = Tensor::f_from_slice(&STD)?
        .f_view([1, 3, 1, 1])?
        .f_to_device(dev)?;
    Ok(x.f_mul(&std)?.f_add(&mean)?.f_mul_scalar(255.0)?)
}

/// Write `img` normalised in CHW order into `out` (`3·H·W` floats).
pub(crate) fn normalize_into(img: &RgbImage, out: &mut [f32]) {
    let hw = (img.width() * img.height()) as usize;
    debug_assert_eq!(out.len(), 3 * hw);
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| MEAN[c] / STD[c]);
    let (r, rest) = out.split_at_mut(hw);
    let (g, b) = rest.split_at_mut(hw);
    for (p, px) in img.as_raw().chunks_exact(3).enumerate() {
        r[p] = px[0] as f32 * scale[0] - shift[0];
        g[p] = px[1] as f32 * scale[1] - shift[1];
        b[p] = px[2] as f32 * scale[2] - shift[2];
    }
}

/// Load an arbitrary image file the way eval images are prepared (for `predict` and
/// `explain`): decoded (EXIF-oriented, converted to 8-bit RGB), then the eval view of
/// `cfg.mode` at `cfg.image_size`.
///
/// # Shapes
/// Returns `[1, 3, S, S]` f32 normalised and the un-normalised `S×S` view.
pub fn load_image_file(path: &Path, cfg: &DataConfig) -> Result<(Tensor, RgbImage), DataError> {
    load_image_file_checked(path, cfg).map(|(t, view, _)| (t, view))
}

/// [`load_image_file`] that also returns what decoding tolerated (a fully transparent PNG
/// whose hidden RGB is used, CMYK, 16-bit, an animation's first frame, content that does
/// not match the extension), worded as `data check` words them.
pub fn load_image_file_checked(
    path: &Path,
    cfg: &DataConfig,
) -> Result<(Tensor, RgbImage, Vec<Problem>), DataError> {
    let rel = path.display().to_string();
    let limits = decode::DecodeLimits {
        min_side: cfg.min_image_size.min(cfg.image_size),
        max_pixels: cfg.max_pixels,
    };
    let d = decode::decode_file(path, &rel, limits).map_err(|p| DataError::Decode {
        path: path.to_path_buf(),
        msg: p.message,
    })?;
    let warnings = d.warnings;
    let stored = decode::stored_view(d.rgb, cfg);
    let (w, h) = stored.dimensions();
    let s = cfg.image_size;
    let view = augment::render(
        w,
        h,
        stored.as_raw(),
        &augment::Geom::eval(w, h, s, cfg.mode),
        s,
    );
    let mut buf = vec![0f32; (3 * s * s) as usize];
    normalize_into(&view, &mut buf);
    let t = Tensor::f_from_slice(&buf)?.f_view([1, 3, s as i64, s as i64])?;
    Ok((t, view, warnings))
}
