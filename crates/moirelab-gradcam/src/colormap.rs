//! Colormaps, RGB everywhere (pytorch-grad-cam's OpenCV path returns BGR unless told
//! otherwise, a classic source of blue-for-hot heatmaps). Tables are matplotlib's, sampled at
//! 256 points: `jet` (familiar), `turbo` (Mikhailov 2019) and `viridis` (perceptually
//! uniform, van der Walt & Smith 2015).

use crate::{GradcamError, Result};
use std::fmt;
use std::str::FromStr;

mod tables;

/// A colormap; `FromStr` accepts [`Colormap::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colormap {
    Jet,
    Turbo,
    Viridis,
}

impl Colormap {
    pub const NAMES: [&'static str; 3] = ["jet", "turbo", "viridis"];

    pub fn as_str(self) -> &'static str {
        match self {
            Colormap::Jet => "jet",
            Colormap::Turbo => "turbo",
            Colormap::Viridis => "viridis",
        }
    }

    fn table(self) -> &'static [[u8; 3]; 256] {
        match self {
            Colormap::Jet => &tables::JET,
            Colormap::Turbo => &tables::TURBO,
            Colormap::Viridis => &tables::VIRIDIS,
        }
    }

    /// Colour of a value in `[0, 1]` (clamped; NaN maps to 0). Nearest of 256 entries.
    pub fn rgb(self, v: f32) -> [u8; 3] {
        let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        self.table()[(v * 255.0).round() as usize]
    }
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Colormap {
    type Err = GradcamError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jet" => Ok(Colormap::Jet),
            "turbo" => Ok(Colormap::Turbo),
            "viridis" => Ok(Colormap::Viridis),
            _ => Err(GradcamError::UnknownColormap { name: s.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormap_ends_are_rgb_not_bgr() {
        // jet: dark blue at 0, dark red at 1 (in RGB order).
        assert_eq!(Colormap::Jet.rgb(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.rgb(1.0), [128, 0, 0]);
        // viridis: purple to yellow.
        let [r0, _, b0] = Colormap::Viridis.rgb(0.0);
        let [r1, g1, b1] = Colormap::Viridis.rgb(1.0);
        assert!(b0 > r0 && r1 > b1 && g1 > b1);
        assert_eq!(Colormap::Turbo.rgb(f32::NAN), Colormap::Turbo.rgb(0.0));
        assert_eq!(Colormap::Turbo.rgb(7.0), Colormap::Turbo.rgb(1.0));
        let err = "rainbow".parse::<Colormap>().unwrap_err().to_string();
        assert!(err.contains("jet, turbo, viridis"), "{err}");
    }
}
