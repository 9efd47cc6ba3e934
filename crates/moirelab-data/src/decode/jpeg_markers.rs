//! The JPEG checks that need no decoding: one walk over the markers says whether the file
//! ends with its end-of-image marker (a truncated upload) and how many colour components its
//! frame has (4: CMYK or YCCK).

/// What one walk over a JPEG's markers finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JpegWalk {
    /// Colour components declared by the frame header (SOFn); `None` when the walk fails
    /// before one. 4 means CMYK/YCCK, which decoders convert to RGB with guessed inks.
    pub components: Option<u8>,
    /// `Some(true)` when the walk reaches the end-of-image marker (EOI), `Some(false)` when
    /// the bytes run out first (inside a segment or the entropy-coded data of a scan: a
    /// truncated file, which decoders fill with grey without a word), `None` when the walk
    /// meets something it cannot read (left to the decoder). Bytes after EOI (camera
    /// trailers, motion-photo video) are not looked at.
    pub complete: Option<bool>,
}

/// Walk a JPEG's markers once, from SOI to EOI, through every scan's entropy-coded data.
pub(super) fn jpeg_walk(bytes: &[u8]) -> JpegWalk {
    let mut components = None;
    let complete = walk_markers(bytes, &mut components);
    JpegWalk {
        components,
        complete,
    }
}

fn walk_markers(bytes: &[u8], components: &mut Option<u8>) -> Option<bool> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    loop {
        // A marker: 0xFF (fill bytes allowed), then its code.
        match bytes.get(i) {
            None => return Some(false),
            Some(0xFF) => {}
            Some(_) => return None,
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return Some(false);
        };
        i += 1;
        match marker {
            0xD9 => return Some(true),
            // Markers without a length: TEM, RST0..7, SOI.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = bytes.get(i..i + 2) else {
            return Some(false);
        };
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        if len < 2 {
            return None;
        }
        // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC): length(2) precision(1)
        // height(2) width(2) components(1).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            *components = components.or(bytes.get(i + 7).copied());
        }
        i += len;
        if i > bytes.len() {
            return Some(false);
        }
        if marker == 0xDA {
            // Entropy-coded data up to the next marker: 0xFF 0x00 is a stuffed byte,
            // 0xFF 0xD0..=0xD7 a restart, 0xFF 0xFF fill.
            loop {
                match bytes.get(i) {
                    None => return Some(false),
                    Some(0xFF) => match bytes.get(i + 1) {
                        None => return Some(false),
                        Some(0x00 | 0xD0..=0xD7) => i += 2,
                        Some(0xFF) => i += 1,
                        Some(_) => break,
                    },
                    Some(_) => i += 1,
                }
            }
        }
    }
}
