//! Region-mask files: the file checks of a data set (regular file, size) around the one
//! codec, `moirelab_core::mask`.

use std::path::Path;

/// `(width, height, bits)` of a mask file; `Err` is a one-line reason. Like images, a mask
/// whose header declares more than `max_pixels` pixels is refused before decoding.
pub(crate) fn read_mask_bits(path: &Path, max_pixels: u64) -> Result<(u32, u32, Vec<u16>), String> {
    use moirelab_core::fsio::{open_regular, read_at_most, OpenError};
    let (file, len) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => format!("cannot read: {e}"),
        OpenError::NotRegular(kind) => format!("not a regular file ({kind})"),
    })?;
    // 16-bit samples: 2 bytes a pixel, plus slack for a badly compressed file.
    let max = max_pixels.saturating_mul(4).saturating_add(64 << 20);
    let too_large = |len: u64| format!("file is {len} bytes, too large for a mask");
    if len > max {
        return Err(too_large(len));
    }
    let bytes = read_at_most(file, len, max)
        .map_err(|e| format!("cannot read: {e}"))?
        .ok_or_else(|| too_large(max + 1))?;
    moirelab_core::mask::decode_png(&bytes, max_pixels)
}
