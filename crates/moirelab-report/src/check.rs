//! What a loaded run's files say against each other. Map strips and probe inputs are checked
//! against the sizes `maps.json` records (from their PNG headers only, so a page refresh stays
//! cheap): an image that does not read, or whose size does not fit, becomes one warning naming
//! the file ([`RunData::warnings`]) and is dropped from the [`RunData`], so the pages say
//! "not available" instead of showing a broken or stretched picture.

use crate::load::RunData;
use moirelab_core::run::MapsFile;
use std::path::Path;

/// Width and height from a PNG's header.
fn dims(path: &Path) -> Result<(u32, u32), String> {
    image::image_dimensions(path).map_err(|e| e.to_string().replace('\n', " "))
}

/// Whether an image of `w`x`h` has the shape of maps of `mw`x`mh`, to within about a pixel
/// (inputs may be stored at another size than the maps, not in another shape).
fn same_shape((w, h): (u32, u32), (mw, mh): (u32, u32)) -> bool {
    let (w, h, mw, mh) = (u64::from(w), u64::from(h), u64::from(mw), u64::from(mh));
    w > 0 && h > 0 && (w * mh).abs_diff(h * mw) <= w.max(h).max(mw).max(mh)
}

/// Drop map strips and probe inputs that do not read or do not fit `maps.json`, with a
/// warning each.
pub(crate) fn check_images(run: &mut RunData) {
    let mut warnings = Vec::new();
    for e in &mut run.epochs {
        let Some(mf) = &e.maps else {
            continue;
        };
        e.strips
            .retain(|key, path| match strip_problem(mf, key, path) {
                None => true,
                Some(why) => {
                    warnings.push(format!("{}: {why}; its maps are not shown", path.display()));
                    false
                }
            });
    }
    // The newest dump's map size is what the inputs are shown under.
    let map_size = run
        .epochs
        .iter()
        .rev()
        .find_map(|e| e.maps.as_ref().map(|m| (m.width, m.height)));
    run.probe_inputs.retain(|_, path| {
        let why = match dims(path) {
            Err(e) => format!("probe input does not read ({e})"),
            Ok(d) => match map_size {
                Some(m) if !same_shape(d, m) => format!(
                    "probe input is {}x{}, the maps over it are {}x{} (another shape)",
                    d.0, d.1, m.0, m.1
                ),
                _ => return true,
            },
        };
        warnings.push(format!("{}: {why}; not shown", path.display()));
        false
    });
    run.warnings.extend(warnings);
}

/// Why the strip `key` of `mf` at `path` cannot be shown, if it cannot.
fn strip_problem(mf: &MapsFile, key: &str, path: &Path) -> Option<String> {
    let n = mf.maps.get(key).map_or(0, |s| s.max.len());
    let (w, h) = match dims(path) {
        Ok(d) => d,
        Err(e) => return Some(format!("map strip does not read ({e})")),
    };
    let want_h = u64::from(mf.height) * n as u64;
    (u64::from(w) != u64::from(mf.width) || u64::from(h) != want_h).then(|| {
        format!(
            "map strip is {w}x{h}, maps.json says {n} map(s) of {}x{} ({}x{want_h})",
            mf.width, mf.height, mf.width
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_at_any_scale_and_to_within_a_pixel() {
        assert!(same_shape((64, 64), (64, 64)));
        assert!(same_shape((128, 128), (64, 64)));
        assert!(same_shape((65, 64), (64, 64)));
        assert!(same_shape((96, 64), (48, 32)));
        assert!(!same_shape((1, 64), (64, 64)));
        assert!(!same_shape((64, 32), (64, 64)));
        assert!(!same_shape((0, 64), (64, 64)));
    }
}
