//! Region-mask files: the file checks of a data set (regular file, size) around the one
//! codec, `moirelab_core::mask`.

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
    moirelab_core::mask::decode_png(&bytes, max_pixels)
}
