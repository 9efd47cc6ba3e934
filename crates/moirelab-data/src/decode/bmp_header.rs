//! The one size limit of a decoder that is not `[data] max-pixels`: the BMP decoder reads no
//! side above [`BMP_MAX_SIDE`] and says so with a decoding error, which would read as a
//! corrupt file. Reading the header here lets such a file be reported as too large instead.

/// The longest side the `image` crate's BMP decoder reads (its "soft limit" against huge
/// allocations).
pub(super) const BMP_MAX_SIDE: u32 = 0xFFFF;

/// Width and height a BMP's info header declares when the decoder refuses them for a side
/// above [`BMP_MAX_SIDE`] (height as a magnitude: negative means top-down); `None` for any
/// other file. Mirrors the decoder's test: the 12-byte core header has 16-bit sides, a
/// negative width is an error of its own, and a top-down (negative) height is not limited.
pub(super) fn bmp_side_over_limit(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..2)? != b"BM" {
        return None;
    }
    let le = |at: usize| -> Option<i32> {
        Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    // BITMAPINFOHEADER and its V2 to V5 successors
    if !matches!(le(14)?, 40 | 52 | 56 | 108 | 124) {
        return None;
    }
    let (w, h) = (le(18)?, le(22)?);
    let limit = BMP_MAX_SIDE as i32;
    (w >= 0 && (w > limit || h > limit)).then(|| (w.unsigned_abs(), h.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u32, w: i32, h: i32) -> Vec<u8> {
        let mut b = b"BM".to_vec();
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&w.to_le_bytes());
        b.extend_from_slice(&h.to_le_bytes());
        b
    }

    #[test]
    fn only_the_sides_the_decoder_refuses_are_reported() {
        assert_eq!(
            bmp_side_over_limit(&header(40, 70_000, 20)),
            Some((70_000, 20))
        );
        assert_eq!(
            bmp_side_over_limit(&header(124, 20, 65_536)),
            Some((20, 65_536))
        );
        assert_eq!(
            bmp_side_over_limit(&header(40, 65_536, -9)),
            Some((65_536, 9))
        );
        assert_eq!(bmp_side_over_limit(&header(40, 65_535, 65_535)), None);
        // top-down heights, negative widths, unknown headers and cut files are the decoder's
        assert_eq!(bmp_side_over_limit(&header(40, 20, -70_000)), None);
        assert_eq!(bmp_side_over_limit(&header(40, -70_000, 20)), None);
        assert_eq!(bmp_side_over_limit(&header(12, 70_000, 20)), None);
        assert_eq!(bmp_side_over_limit(&header(40, 70_000, 20)[..24]), None);
        assert_eq!(bmp_side_over_limit(b"\x89PNG"), None);
    }
}
