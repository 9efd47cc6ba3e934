//! Opening one image file: format sniffing, decoding, EXIF orientation, conversion to 8-bit
//! RGB, and the findings along the way (grayscale, alpha, 16-bit, CMYK, too small …).

use crate::check::{Problem, ProblemKind};
use crate::config::{DataConfig, Mode};
use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use moirelab_core::fsio::{open_regular, read_at_most, OpenError};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::Path;

mod bmp_header;
mod jpeg_markers;
use bmp_header::{bmp_side_over_limit, BMP_MAX_SIDE};
use jpeg_markers::jpeg_walk;

/// What decoding one file learned (kept in the cache sidecar so a cached open skips it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Native size after EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// Decoded colour type before conversion, e.g. `Rgb8`, `L16`.
    pub color: String,
    /// Sniffed file format, e.g. `png`.
    pub format: String,
    /// Content hash of the decoded 8-bit RGB pixels and size (duplicate detection).
    pub hash: u64,
    /// Perceptual hash (near-duplicate detection, `similar.rs`), set by the data-set scan;
    /// `None` for a flat image or a file decoded on its own.
    pub phash: Option<crate::similar::PerceptualHash>,
    pub exif_rotated: bool,
}

/// A decoded image plus warnings about it.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub rgb: RgbImage,
    pub info: ImageInfo,
    pub warnings: Vec<Problem>,
}

fn format_name(f: ImageFormat) -> String {
    f.extensions_str()
        .first()
        .copied()
        .unwrap_or("unknown")
        .to_string()
}

fn format_for_extension(path: &str) -> Option<ImageFormat> {
    let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
    ImageFormat::from_extension(ext)
}

/// Printable preview of the first bytes (for "not an image" messages).
fn preview(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(12)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// Fast 64-bit content hash (not cryptographic): 8-byte lanes mixed with the SplitMix64
/// finaliser. Collisions between distinct images are negligible at data-set sizes. It finds
/// exact duplicates; public for `examples/bench_cache_open.rs`, which times it against the
/// cache's CRC-32C.
pub fn content_hash(width: u32, height: u32, pixels: &[u8]) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut h = mix(((width as u64) << 32) | height as u64);
    let mut chunks = pixels.chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        h = mix(h ^ u64::from_le_bytes(b)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix(h ^ u64::from_le_bytes(tail) ^ pixels.len() as u64)
}

/// What a decode may cost and must deliver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeLimits {
    /// Smallest accepted side.
    pub min_side: u32,
    /// Largest accepted width × height, checked from the header before decoding.
    pub max_pixels: u64,
}

impl DecodeLimits {
    pub fn for_data(cfg: &DataConfig) -> Self {
        DecodeLimits {
            min_side: cfg.min_image_size,
            max_pixels: cfg.max_pixels,
        }
    }

    /// Bytes any decoder may allocate: 16 bytes per pixel covers RGBA 32-bit float, the
    /// widest sample layout; 64 MiB of slack for palettes, metadata and row buffers.
    fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(16).saturating_add(64 << 20)
    }

    /// [`DecodeLimits::max_alloc`] for one file. A PNG's IHDR (always its first chunk) says
    /// how many pixels it holds, so its decoder gets what those pixels need plus
    /// [`PNG_METADATA_SLACK`]: PNG is the one format whose metadata (an ICC profile, text) is
    /// compressed, and a few megabytes of deflate stream can inflate to gigabytes. Without
    /// this cap a 2 MB file of 32×32 pixels made the decoder allocate 0.7 GB; the profile is
    /// now dropped at the cap and the pixels decode as usual.
    fn max_alloc_for(&self, format: ImageFormat, bytes: &[u8]) -> u64 {
        let all = self.max_alloc();
        match png_dims(bytes) {
            Some((w, h)) if format == ImageFormat::Png => (w as u64 * h as u64)
                .min(self.max_pixels)
                .saturating_mul(16)
                .saturating_add(PNG_METADATA_SLACK)
                .min(all),
            _ => all,
        }
    }

    /// Largest file worth reading: no encoding of an accepted image is bigger than its raw
    /// RGBA 16-bit samples plus slack.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(64 << 20)
    }
}

/// Room for a PNG's decompressed metadata beyond its pixels: ICC profiles are well under a
/// megabyte (a few kB for sRGB), camera XMP a few kB.
const PNG_METADATA_SLACK: u64 = 16 << 20;

/// Width and height from a PNG's IHDR chunk, `None` when the bytes do not start with one.
fn png_dims(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |r: std::ops::Range<usize>| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(r)?.try_into().ok()?))
    };
    Some((be(16..20)?, be(20..24)?))
}

fn megapixels(n: u64) -> String {
    let mp = n as f64 / 1e6;
    if mp >= 10.0 {
        format!("{mp:.0} MP")
    } else if mp >= 0.1 {
        format!("{mp:.1} MP")
    } else {
        // a small max-pixels would read "0.0 MP" on both sides
        format!("{n} px")
    }
}

/// The format a file's content is in (not its extension's), with the warnings that need no
/// decoding: an extension that says another format, a CMYK JPEG. `Err` for an empty file,
/// content of no supported format, or a JPEG that ends before its end-of-image marker.
fn sniff(bytes: &[u8], rel: &str) -> Result<(ImageFormat, Vec<Problem>), Problem> {
    let fail = |kind, msg: String| Problem::new(kind, Some(rel), msg);
    if bytes.is_empty() {
        return Err(fail(ProblemKind::EmptyFile, "empty file (0 bytes)".into()));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        fail(
            ProblemKind::NotAnImage,
            format!(
                "not an image: content matches no supported format (starts with \"{}\")",
                preview(bytes)
            ),
        )
    })?;
    if !format.reading_enabled() {
        return Err(fail(
            ProblemKind::NotAnImage,
            format!(
                "a {} image, which this build does not read (it reads PNG, JPEG, GIF, WebP and BMP)",
                format_name(format).to_uppercase()
            ),
        ));
    }
    let mut warnings = Vec::new();
    if let Some(by_ext) = format_for_extension(rel) {
        if by_ext != format {
            warnings.push(fail(
                ProblemKind::ExtensionMismatch,
                format!(
                    "content is {} but the extension says {}",
                    format_name(format).to_uppercase(),
                    format_name(by_ext).to_uppercase()
                ),
            ));
        }
    }
    if format == ImageFormat::Jpeg {
        let jpeg = jpeg_walk(bytes);
        if jpeg.complete == Some(false) {
            return Err(fail(
                ProblemKind::Corrupt,
                "cannot decode JPEG (truncated): the data ends before the end-of-image marker"
                    .into(),
            ));
        }
        if jpeg.components == Some(4) {
            warnings.push(fail(
                ProblemKind::Cmyk,
                "CMYK/YCCK JPEG (4 components), converted to RGB; colours may shift".into(),
            ));
        }
    }
    Ok((format, warnings))
}

/// What converting pixels of `color` (named `cname`) to 8-bit RGB loses: grey replicated,
/// alpha dropped, more than 8 bits per channel scaled.
fn color_warnings(color: ColorType, cname: &str) -> Vec<(ProblemKind, String)> {
    let mut out = Vec::new();
    match color {
        ColorType::L8 | ColorType::L16 => out.push((
            ProblemKind::Grayscale,
            format!("grayscale ({cname}), replicated to RGB"),
        )),
        ColorType::La8 | ColorType::La16 => out.push((
            ProblemKind::Grayscale,
            format!("grayscale with alpha ({cname}), replicated to RGB, alpha dropped"),
        )),
        ColorType::Rgba8 | ColorType::Rgba16 | ColorType::Rgba32F => out.push((
            ProblemKind::Alpha,
            format!("alpha channel ({cname}) dropped, not composited"),
        )),
        _ => {}
    }
    if matches!(
        color,
        ColorType::L16
            | ColorType::La16
            | ColorType::Rgb16
            | ColorType::Rgba16
            | ColorType::Rgb32F
            | ColorType::Rgba32F
    ) {
        out.push((
            ProblemKind::HighBitDepth,
            format!("{cname}: more than 8 bits per channel, scaled to 8-bit"),
        ));
    }
    out
}

/// Decode bytes of a file named `rel` (for messages and the extension check).
/// `Err` is the file-disqualifying problem. The pixel count the header declares is checked
/// against `limits.max_pixels` before a single pixel is decoded, and every decoder
/// allocation is capped, so a lying header cannot exhaust memory.
pub(crate) fn decode_bytes(
    bytes: &[u8],
    rel: &str,
    limits: DecodeLimits,
) -> Result<Decoded, Problem> {
    let min_side = limits.min_side;
    let fail = |kind, msg: String| Problem::new(kind, Some(rel), msg);
    let (format, mut warnings) = sniff(bytes, rel)?;
    let fname = format_name(format);
    // Decoder messages may span lines; a problem is one line.
    let one_line = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let corrupt = |e: image::ImageError| {
        fail(
            ProblemKind::Corrupt,
            format!(
                "cannot decode {} (truncated or corrupt): {}",
                fname.to_uppercase(),
                one_line(e.to_string())
            ),
        )
    };
    let mut lim = image::Limits::default();
    lim.max_alloc = Some(limits.max_alloc_for(format, bytes));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(lim.clone());
    let too_large = |w: u32, h: u32| {
        fail(
            ProblemKind::TooLarge,
            format!(
                "header declares {w}x{h} ({}), above [data] max-pixels {}; not decoded",
                megapixels(w as u64 * h as u64),
                megapixels(limits.max_pixels)
            ),
        )
    };
    // The BMP decoder refuses a side above its limit with a decoding error: not corrupt.
    if let Some((w, h)) = bmp_side_over_limit(bytes).filter(|_| format == ImageFormat::Bmp) {
        if w as u64 * h as u64 > limits.max_pixels {
            return Err(too_large(w, h));
        }
        return Err(fail(
            ProblemKind::TooLarge,
            format!("header declares {w}x{h}, a side above {BMP_MAX_SIDE} px, the most the BMP decoder reads; not decoded"),
        ));
    }
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(l) => fail(
            ProblemKind::TooLarge,
            format!(
                "refused before decoding: {} ([data] max-pixels {})",
                one_line(l.to_string()),
                megapixels(limits.max_pixels)
            ),
        ),
        e => corrupt(e),
    })?;
    let (dw, dh) = decoder.dimensions();
    if dw as u64 * dh as u64 > limits.max_pixels {
        return Err(too_large(dw, dh));
    }
    if lim.reserve(decoder.total_bytes()).is_err() {
        return Err(too_large(dw, dh));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let color = decoder.color_type();
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let exif_rotated = orientation != image::metadata::Orientation::NoTransforms;
    if exif_rotated {
        img.apply_orientation(orientation);
    }
    let (w, h) = (img.width(), img.height());
    if w < min_side || h < min_side {
        return Err(fail(
            ProblemKind::TooSmall,
            format!(
                "image is {w}x{h}, smaller than the minimum {min_side}x{min_side} ([data] min-image-size)"
            ),
        ));
    }
    let cname = format!("{color:?}");
    warnings.extend(
        color_warnings(color, &cname)
            .into_iter()
            .map(|(kind, msg)| fail(kind, msg)),
    );
    let rgb = img.into_rgb8();
    let hash = content_hash(w, h, rgb.as_raw());
    Ok(Decoded {
        rgb,
        info: ImageInfo {
            width: w,
            height: h,
            color: cname,
            format: fname,
            hash,
            phash: None,
            exif_rotated,
        },
        warnings,
    })
}

/// Read and decode one file. Only regular files are read, without blocking
/// (`fsio::open_regular`), and only up to [`DecodeLimits::max_file_bytes`].
pub(crate) fn decode_file(
    path: &Path,
    rel: &str,
    limits: DecodeLimits,
) -> Result<Decoded, Problem> {
    let io = |e: std::io::Error| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ProblemKind::MissingFile
        } else {
            ProblemKind::Unreadable
        };
        Problem::new(kind, Some(rel), format!("cannot read: {e}"))
    };
    let (file, len) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => io(e),
        OpenError::NotRegular(kind) => Problem::new(
            ProblemKind::NotAnImage,
            Some(rel),
            format!("not a regular file ({kind}); not read"),
        ),
    })?;
    let too_large = |len: u64| {
        Problem::new(
            ProblemKind::TooLarge,
            Some(rel),
            format!(
                "file is {len} bytes, more than any image within [data] max-pixels {} needs; not read",
                megapixels(limits.max_pixels)
            ),
        )
    };
    if len > limits.max_file_bytes() {
        return Err(too_large(len));
    }
    let bytes = read_at_most(file, len, limits.max_file_bytes())
        .map_err(io)?
        .ok_or_else(|| too_large(limits.max_file_bytes() + 1))?;
    decode_bytes(&bytes, rel, limits)
}

/// Warning about how the stored view changes the native size (upscale / downscale).
pub(crate) fn view_warning(w: u32, h: u32, cfg: &DataConfig, rel: &str) -> Option<Problem> {
    let s = cfg.image_size;
    match cfg.mode {
        Mode::Resize => (w < s || h < s).then(|| {
            Problem::new(
                ProblemKind::Upscaled,
                Some(rel),
                format!("{w}x{h} is smaller than image-size {s}; upscaled"),
            )
        }),
        Mode::Patch => {
            let (nw, nh) = patch_dims(w, h, cfg);
            if (nw, nh) == (w, h) {
                None
            } else if nw < w {
                Some(Problem::new(
                    ProblemKind::Downscaled,
                    Some(rel),
                    format!(
                        "{w}x{h} exceeds patch-max-side {}; downscaled to {nw}x{nh}",
                        cfg.patch_max_side
                    ),
                ))
            } else {
                Some(Problem::new(
                    ProblemKind::Upscaled,
                    Some(rel),
                    format!("{w}x{h} is smaller than the {s}px patch; upscaled to {nw}x{nh}"),
                ))
            }
        }
    }
}

/// Size of the stored (cached) view of a `w×h` image.
///
/// * resize mode: `S×S`, aspect ignored so no corner of the card is cut off.
/// * patch mode: native resolution; upscaled so the short side is `S` when smaller,
///   downscaled so the long side is at most `patch-max-side` when larger.
pub(crate) fn stored_dims(w: u32, h: u32, cfg: &DataConfig) -> (u32, u32) {
    match cfg.mode {
        Mode::Resize => (cfg.image_size, cfg.image_size),
        Mode::Patch => patch_dims(w, h, cfg),
    }
}

/// The stored view (see [`stored_dims`]); resampling uses the triangle filter, whose
/// support widens with the scale factor, so shrinking averages like an area filter instead
/// of aliasing.
pub(crate) fn stored_view(rgb: RgbImage, cfg: &DataConfig) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let (nw, nh) = stored_dims(w, h, cfg);
    if (nw, nh) == (w, h) {
        rgb
    } else {
        image::imageops::resize(&rgb, nw, nh, FilterType::Triangle)
    }
}

/// Patch-mode stored size for a native size.
pub(crate) fn patch_dims(w: u32, h: u32, cfg: &DataConfig) -> (u32, u32) {
    let s = cfg.image_size as f64;
    let (wf, hf) = (w as f64, h as f64);
    let short = wf.min(hf);
    let long = wf.max(hf);
    let mut scale = 1.0;
    if short < s {
        scale = s / short;
    } else if cfg.patch_max_side > 0 && long > cfg.patch_max_side as f64 {
        scale = (cfg.patch_max_side as f64 / long).max(s / short);
    }
    if scale == 1.0 {
        return (w, h);
    }
    let nw = ((wf * scale).round() as u32).max(cfg.image_size);
    let nh = ((hf * scale).round() as u32).max(cfg.image_size);
    (nw, nh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    /// A 32×32 PNG whose iCCP profile inflates to `profile` zero bytes.
    fn png_with_profile(profile: usize) -> (RgbImage, Vec<u8>) {
        let rgb = RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 99]));
        let mut out = Vec::new();
        let mut enc = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::set_icc_profile(&mut enc, vec![0u8; profile]).unwrap();
        image::ImageEncoder::write_image(enc, rgb.as_raw(), 32, 32, image::ExtendedColorType::Rgb8)
            .unwrap();
        (rgb, out)
    }

    #[test]
    fn png_metadata_may_not_inflate_beyond_what_its_pixels_need() {
        let limits = DecodeLimits {
            min_side: 16,
            max_pixels: 50_000_000,
        };
        let (rgb, bomb) = png_with_profile(64 << 20);
        assert!(
            bomb.len() < 1 << 20,
            "64 MiB of zeros deflate to {}",
            bomb.len()
        );
        let cap = limits.max_alloc_for(ImageFormat::Png, &bomb);
        assert_eq!(cap, 32 * 32 * 16 + PNG_METADATA_SLACK);
        assert!(cap < limits.max_alloc() / 40);
        // The decoder with that cap drops the profile instead of inflating it ...
        let mut lim = image::Limits::default();
        lim.max_alloc = Some(cap);
        let mut reader = ImageReader::with_format(Cursor::new(&bomb), ImageFormat::Png);
        reader.limits(lim);
        let mut dec = reader.into_decoder().unwrap();
        assert_eq!(dec.icc_profile().unwrap(), None);
        // ... and the pixels decode as usual.
        let d = decode_bytes(&bomb, "bomb.png", limits).unwrap();
        assert_eq!(d.rgb, rgb);
        // A profile of normal size is kept.
        let (_, normal) = png_with_profile(3 << 20);
        let mut lim = image::Limits::default();
        lim.max_alloc = Some(limits.max_alloc_for(ImageFormat::Png, &normal));
        let mut reader = ImageReader::with_format(Cursor::new(&normal), ImageFormat::Png);
        reader.limits(lim);
        let mut dec = reader.into_decoder().unwrap();
        assert_eq!(dec.icc_profile().unwrap().map(|p| p.len()), Some(3 << 20));
        // Other formats, and bytes that are no PNG, keep the global cap.
        assert_eq!(
            limits.max_alloc_for(ImageFormat::Jpeg, &bomb),
            limits.max_alloc()
        );
        assert_eq!(
            limits.max_alloc_for(ImageFormat::Png, b"\x89PNG"),
            limits.max_alloc()
        );
    }

    #[test]
    fn jpeg_frame_header_component_count_is_found() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(16, 16));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(jpeg_walk(&out).components, Some(3));
        assert_eq!(jpeg_walk(b"\xff\xd8garbage").components, None);
    }

    #[test]
    fn a_jpeg_cut_anywhere_reads_as_truncated_and_a_whole_one_as_complete() {
        let mut img = RgbImage::new(40, 24);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 6) as u8, (y * 10) as u8, ((x ^ y) * 7) as u8]);
        }
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        assert_eq!(jpeg_walk(&out).complete, Some(true));
        // Whatever follows the end-of-image marker is not looked at.
        let mut trailer = out.clone();
        trailer.extend_from_slice(b"\x00\x00ftypmp42 motion photo");
        assert_eq!(jpeg_walk(&trailer).complete, Some(true));
        for cut in 2..out.len() - 1 {
            assert_eq!(jpeg_walk(&out[..cut]).complete, Some(false), "cut at {cut}");
        }
        assert_eq!(jpeg_walk(b"\xff\xd8garbage").complete, None);
        assert_eq!(jpeg_walk(b"\x89PNG").complete, None);
        let lim = DecodeLimits {
            min_side: 16,
            max_pixels: 1 << 20,
        };
        assert!(decode_bytes(&out, "a.jpg", lim).is_ok());
        let e = decode_bytes(&out[..out.len() / 2], "a.jpg", lim).unwrap_err();
        assert_eq!(e.kind, ProblemKind::Corrupt);
        assert!(e.message.contains("truncated"), "{}", e.message);
    }

    #[test]
    fn content_hash_separates_pixels_and_sizes() {
        let a = content_hash(2, 2, &[1; 12]);
        assert_eq!(a, content_hash(2, 2, &[1; 12]));
        assert_ne!(a, content_hash(2, 2, &[2; 12]));
        assert_ne!(a, content_hash(1, 4, &[1; 12]));
        let mut v = vec![0u8; 13];
        let b = content_hash(1, 1, &v);
        v[12] = 1;
        assert_ne!(b, content_hash(1, 1, &v));
    }

    #[test]
    fn extension_mismatch_is_a_warning_not_an_error() {
        let bytes = png(&DynamicImage::ImageRgb8(RgbImage::new(20, 20)));
        let lim = DecodeLimits {
            min_side: 16,
            max_pixels: 1000,
        };
        let d = decode_bytes(&bytes, "a.jpg", lim).unwrap();
        assert_eq!(d.warnings[0].kind, ProblemKind::ExtensionMismatch);
        assert!(d.warnings[0].message.contains("content is PNG"));
    }

    #[test]
    fn patch_dims_upscale_small_and_cap_large() {
        let mut cfg = DataConfig::for_root("d");
        cfg.image_size = 64;
        cfg.patch_max_side = 256;
        assert_eq!(patch_dims(100, 80, &cfg), (100, 80));
        assert_eq!(patch_dims(32, 48, &cfg), (64, 96));
        assert_eq!(patch_dims(1024, 512, &cfg), (256, 128));
        // the cap never pushes the short side below S
        assert_eq!(patch_dims(2048, 70, &cfg), (1872, 64));
    }
}
