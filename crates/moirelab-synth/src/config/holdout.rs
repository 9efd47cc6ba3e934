//! The transfer protocol's held-out factor (`holdout = "factor:value"`): its parsing, its
//! checks against the other knobs, and its written form.

use super::Knobs;
use crate::camera::{Demosaic, Resize};
use crate::display::Layout;
use serde::{Deserialize, Serialize};

/// A factor of the recapture physics held out for the transfer protocol: train and val never
/// draw it, test always does (display factors on recaptures only, camera factors on every
/// image). Written `factor:value`, e.g. `layout:pentile`, `demosaic:malvar`, `resize:area`,
/// `pitch:0.25-0.4`, `sensor-scale:2.5-3`, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Holdout {
    None,
    Layout(Layout),
    Demosaic(Demosaic),
    Resize(Resize),
    /// A band of display pitch, output pixels per display pixel.
    Pitch(f64, f64),
    /// A band of sensor scale.
    SensorScale(f64, f64),
}

impl Holdout {
    pub fn parse(v: &str) -> Result<Holdout, String> {
        if v == "none" || v.is_empty() {
            return Ok(Holdout::None);
        }
        let expected = "expected none or factor:value with factor one of layout, demosaic, \
                        resize, pitch, sensor-scale";
        let (f, val) = v.split_once(':').ok_or_else(|| expected.to_string())?;
        let band = |val: &str| -> Result<(f64, f64), String> {
            let (a, b) = val
                .split_once('-')
                .ok_or_else(|| format!("`{val}`: expected a band lo-hi, e.g. 0.25-0.4"))?;
            let (a, b): (f64, f64) = (
                a.trim()
                    .parse()
                    .map_err(|_| format!("`{a}` is not a number"))?,
                b.trim()
                    .parse()
                    .map_err(|_| format!("`{b}` is not a number"))?,
            );
            if !(a.is_finite() && b.is_finite() && 0.0 < a && a < b) {
                return Err(format!("band {a}-{b} must satisfy 0 < lo < hi"));
            }
            Ok((a, b))
        };
        let list = |names: Vec<&str>| names.join(", ");
        match f.trim() {
            "layout" => Layout::parse(val).map(Holdout::Layout).ok_or_else(|| {
                format!(
                    "unknown layout `{val}`; expected one of {}",
                    Layout::list(&Layout::ALL)
                )
            }),
            "demosaic" => Demosaic::parse(val).map(Holdout::Demosaic).ok_or_else(|| {
                format!(
                    "unknown demosaic `{val}`; expected one of {}",
                    list(Demosaic::ALL.map(Demosaic::name).to_vec())
                )
            }),
            "resize" => Resize::parse(val).map(Holdout::Resize).ok_or_else(|| {
                format!(
                    "unknown resize `{val}`; expected one of {}",
                    list(Resize::ALL.map(Resize::name).to_vec())
                )
            }),
            "pitch" => band(val).map(|(a, b)| Holdout::Pitch(a, b)),
            "sensor-scale" => band(val).map(|(a, b)| Holdout::SensorScale(a, b)),
            other => Err(format!("unknown factor `{other}`; {expected}")),
        }
    }

    /// A held-out band must leave part of the knob's range to train on and take part of it; a
    /// held-out layout must be one the generator draws, and not the only one.
    pub(super) fn check(&self, k: &Knobs) -> Result<(), String> {
        if let Holdout::Layout(l) = *self {
            if !k.layouts.contains(&l) {
                return Err(format!(
                    "layout `{}` is not among the drawn layouts ({}); add it to `layouts`",
                    l.name(),
                    Layout::list(&k.layouts)
                ));
            }
            if k.layouts.len() < 2 {
                return Err(format!(
                    "holding out `{}` leaves no layout to train on (layouts = {})",
                    l.name(),
                    Layout::list(&k.layouts)
                ));
            }
        }
        let (lo, hi, what, min, max) = match *self {
            Holdout::Pitch(a, b) => (a, b, "pitch", k.pitch_min, k.pitch_max),
            Holdout::SensorScale(a, b) => {
                (a, b, "sensor-scale", k.sensor_scale_min, k.sensor_scale_max)
            }
            _ => return Ok(()),
        };
        if hi <= min || lo >= max || (lo <= min && hi >= max) {
            return Err(format!(
                "band {lo}-{hi} must overlap {what} range [{min}, {max}] and leave part of it"
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Holdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holdout::None => write!(f, "none"),
            Holdout::Layout(l) => write!(f, "layout:{}", l.name()),
            Holdout::Demosaic(d) => write!(f, "demosaic:{}", d.name()),
            Holdout::Resize(r) => write!(f, "resize:{}", r.name()),
            Holdout::Pitch(a, b) => write!(f, "pitch:{a}-{b}"),
            Holdout::SensorScale(a, b) => write!(f, "sensor-scale:{a}-{b}"),
        }
    }
}

impl TryFrom<String> for Holdout {
    type Error = String;
    fn try_from(s: String) -> Result<Holdout, String> {
        Holdout::parse(&s)
    }
}

impl From<Holdout> for String {
    fn from(h: Holdout) -> String {
        h.to_string()
    }
}
