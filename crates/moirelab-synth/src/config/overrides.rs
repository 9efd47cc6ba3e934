//! Overrides of a preset: the one way knobs are set from outside. The `[data.knobs]` table of
//! a config file deserializes into [`Overrides`] as it is, `--set knob=value` pairs through
//! the same TOML value ([`Overrides::from_sets`]), and [`GenConfig::apply`] range-checks and
//! applies them.
//!
//! What a value *is* (a number, an unsigned integer, a switch, a bezel, a holdout, a list of
//! artifacts) is decided while deserializing; whether it is *allowed* (a probability in
//! [0, 1], a size in 64..=512) by [`GenConfig::apply`]. Both give one-line [`SynthError`]s that
//! name the knob; cross-knob rules (min ≤ max, train + val ≤ 1) are
//! [`GenConfig::validate`]'s.

use super::{
    Artifact, Bezel, GenConfig, Holdout, GAIN, JPEG_Q, KNOB_NAMES, LENS, MAX_COUNT, MAX_SIZE,
    MIN_SIZE, NOISE, PITCH, SCALE, UNIT,
};
use crate::display::Layout;
use crate::SynthError;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Optional overrides of every knob (kebab-case names, [`KNOB_NAMES`]); `None` keeps the
/// preset's value.
///
/// Each field takes its natural TOML type — `rho-flag = 0.75`, `count = 800`,
/// `twins = true`, `artifacts = ["moire", "bands"]`, `holdout = "layout:pentile"` — or the same
/// written as a string, which is what a bare `--set` word that is not TOML becomes
/// (`holdout=layout:pentile`, `artifacts=moire,bands`, `rho-flag=.5`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Overrides {
    #[serde(default, deserialize_with = "number")]
    pub rho_flag: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub test_rho_flag: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub rho_face: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub test_rho_face: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub artifact_gain: Option<f64>,
    /// `none`, `all`, `default`, a comma-separated list (`moire,bands`) or an array of names.
    #[serde(default, deserialize_with = "artifacts")]
    pub artifacts: Option<Vec<Artifact>>,
    #[serde(default, deserialize_with = "bezel")]
    pub bezel: Option<Bezel>,
    #[serde(default, deserialize_with = "number")]
    pub glare_prob: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub aliased_guilloche: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub hologram_prob: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub design_variety: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub cue_dropout: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub defocus_prob: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub jpeg_420_prob: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub pitch_min: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub pitch_max: Option<f64>,
    /// `default` (the classic four), `all`, a comma-separated list (`rgb-stripe,delta`) or an
    /// array of names.
    #[serde(default, deserialize_with = "layouts")]
    pub layouts: Option<Vec<Layout>>,
    #[serde(default, deserialize_with = "number")]
    pub subpixel_jitter: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub sensor_scale_min: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub sensor_scale_max: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub pwm_prob: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub noise_min: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub noise_max: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub lens_sigma_min: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub lens_sigma_max: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub upload_prob: Option<f64>,
    #[serde(default, deserialize_with = "unsigned")]
    pub upload_q_min: Option<u8>,
    #[serde(default, deserialize_with = "unsigned")]
    pub upload_q_max: Option<u8>,
    /// `none` or `factor:value` ([`Holdout`]).
    #[serde(default)]
    pub holdout: Option<Holdout>,
    #[serde(default, deserialize_with = "number")]
    pub train_frac: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    pub val_frac: Option<f64>,
    #[serde(default, deserialize_with = "unsigned")]
    pub count: Option<usize>,
    #[serde(default, deserialize_with = "unsigned")]
    pub size: Option<u32>,
    /// Several photo sides: an array (`[128, 256]`) or a comma-separated string (`128,256`).
    #[serde(default, deserialize_with = "sizes")]
    pub sizes: Option<Vec<u32>>,
    #[serde(default, deserialize_with = "unsigned")]
    pub seed: Option<u64>,
    /// `true`/`false` (also `1`/`0`, `on`/`off`, `yes`/`no`).
    #[serde(default, deserialize_with = "switch")]
    pub twins: Option<bool>,
}

impl Overrides {
    /// Deserialize a table of knobs (`[data.knobs]`). An unknown knob is
    /// [`SynthError::UnknownKnob`] (listing the valid ones), a value of the wrong kind
    /// [`SynthError::BadValue`]; both name the knob.
    pub fn from_toml(table: toml::Table) -> Result<Overrides, SynthError> {
        if let Some(key) = table.keys().find(|k| !KNOB_NAMES.contains(&k.as_str())) {
            return Err(SynthError::UnknownKnob {
                key: key.clone(),
                valid: KNOB_NAMES.join(", "),
            });
        }
        // One knob at a time first, so that an error can name its knob (serde's error
        // does not say which field failed).
        for (key, value) in &table {
            let one = toml::Table::from_iter([(key.clone(), value.clone())]);
            toml::Value::Table(one)
                .try_into::<Overrides>()
                .map_err(|e| SynthError::BadValue {
                    key: key.clone(),
                    value: value_text(value),
                    reason: e.message().to_string(),
                })?;
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e| SynthError::Invalid {
                what: "knobs".into(),
                msg: e.message().to_string(),
            })
    }

    /// Overrides from `knob=value` pairs as `gen-data --set` takes them; each value is read
    /// by [`knob_value`], and a later pair overrides an earlier one of the same knob.
    pub fn from_sets<S: AsRef<str>>(sets: &[S]) -> Result<Overrides, SynthError> {
        let mut table = toml::Table::new();
        for spec in sets {
            let spec = spec.as_ref();
            let (key, raw) = spec
                .split_once('=')
                .ok_or_else(|| SynthError::NotKnobValue {
                    spec: spec.to_string(),
                })?;
            table.insert(key.trim().to_string(), knob_value(raw));
        }
        Overrides::from_toml(table)
    }
}

/// A `--set` value: the TOML value `raw` spells (`0.75`, `800`, `true`, `"a b"`,
/// `["moire", "bands"]`), or, when `raw` is not TOML, the bare word as a string
/// (`layout:pentile`, `moire,bands`). Surrounding whitespace is ignored.
pub fn knob_value(raw: &str) -> toml::Value {
    let raw = raw.trim();
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// A value as an error message shows it: strings without quotes.
fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

impl GenConfig {
    /// Apply `o`: each value must lie in its knob's range ([`SynthError::OutOfRange`], naming
    /// the knob and the range). On an error nothing is applied. Cross-knob constraints are
    /// left to [`GenConfig::validate`], so knobs that only make sense together (`pitch-min`
    /// above the preset's `pitch-max`, with a larger `pitch-max`) can be applied one by one.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), SynthError> {
        let mut c = self.clone();
        let k = &mut c.knobs;
        put(&mut k.rho_flag, "rho-flag", o.rho_flag, UNIT)?;
        put(&mut k.test_rho_flag, "test-rho-flag", o.test_rho_flag, UNIT)?;
        put(&mut k.rho_face, "rho-face", o.rho_face, UNIT)?;
        put(&mut k.test_rho_face, "test-rho-face", o.test_rho_face, UNIT)?;
        put(&mut k.artifact_gain, "artifact-gain", o.artifact_gain, GAIN)?;
        put(&mut k.glare_prob, "glare-prob", o.glare_prob, UNIT)?;
        put(
            &mut k.aliased_guilloche,
            "aliased-guilloche",
            o.aliased_guilloche,
            UNIT,
        )?;
        put(&mut k.hologram_prob, "hologram-prob", o.hologram_prob, UNIT)?;
        put(
            &mut k.design_variety,
            "design-variety",
            o.design_variety,
            UNIT,
        )?;
        put(&mut k.cue_dropout, "cue-dropout", o.cue_dropout, UNIT)?;
        put(&mut k.defocus_prob, "defocus-prob", o.defocus_prob, UNIT)?;
        put(&mut k.jpeg_420_prob, "jpeg-420-prob", o.jpeg_420_prob, UNIT)?;
        put(&mut k.pitch_min, "pitch-min", o.pitch_min, PITCH)?;
        put(&mut k.pitch_max, "pitch-max", o.pitch_max, PITCH)?;
        put(
            &mut k.sensor_scale_min,
            "sensor-scale-min",
            o.sensor_scale_min,
            SCALE,
        )?;
        put(
            &mut k.sensor_scale_max,
            "sensor-scale-max",
            o.sensor_scale_max,
            SCALE,
        )?;
        put(&mut k.pwm_prob, "pwm-prob", o.pwm_prob, UNIT)?;
        put(&mut k.noise_min, "noise-min", o.noise_min, NOISE)?;
        put(&mut k.noise_max, "noise-max", o.noise_max, NOISE)?;
        put(
            &mut k.lens_sigma_min,
            "lens-sigma-min",
            o.lens_sigma_min,
            LENS,
        )?;
        put(
            &mut k.lens_sigma_max,
            "lens-sigma-max",
            o.lens_sigma_max,
            LENS,
        )?;
        put(&mut k.upload_prob, "upload-prob", o.upload_prob, UNIT)?;
        put_int(&mut k.upload_q_min, "upload-q-min", o.upload_q_min, JPEG_Q)?;
        put_int(&mut k.upload_q_max, "upload-q-max", o.upload_q_max, JPEG_Q)?;
        put(&mut k.train_frac, "train-frac", o.train_frac, UNIT)?;
        put(&mut k.val_frac, "val-frac", o.val_frac, UNIT)?;
        put(
            &mut k.subpixel_jitter,
            "subpixel-jitter",
            o.subpixel_jitter,
            UNIT,
        )?;
        if let Some(a) = &o.artifacts {
            k.artifacts = a.clone();
        }
        if let Some(l) = &o.layouts {
            if l.is_empty() {
                return Err(SynthError::Invalid {
                    what: "layouts".into(),
                    msg: format!(
                        "no layout to draw; give at least one of {}",
                        Layout::list(&Layout::ALL)
                    ),
                });
            }
            k.layouts = l.clone();
        }
        if let Some(b) = o.bezel {
            k.bezel = b;
        }
        if let Some(h) = o.holdout {
            k.holdout = h;
        }
        put_int(&mut c.count, "count", o.count, (1, MAX_COUNT))?;
        if o.size.is_some() && o.sizes.is_some() {
            return Err(SynthError::Invalid {
                what: "sizes".into(),
                msg: "give size (one side for every photo) or sizes (several), not both".into(),
            });
        }
        put_int(&mut c.size, "size", o.size, (MIN_SIZE, MAX_SIZE))?;
        if o.size.is_some() {
            c.sizes = None;
        }
        if let Some(list) = &o.sizes {
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            if let Some(&bad) = list.iter().find(|s| !(MIN_SIZE..=MAX_SIZE).contains(*s)) {
                return Err(SynthError::OutOfRange {
                    key: "sizes".into(),
                    value: bad.to_string(),
                    range: format!("[{MIN_SIZE}, {MAX_SIZE}]"),
                });
            }
            // The largest side is `size`; one side is no mixture. How many sides is
            // `validate`'s to check.
            c.size = *list.last().ok_or_else(|| SynthError::Invalid {
                what: "sizes".into(),
                msg: "an empty list; give at least one side".into(),
            })?;
            c.sizes = (list.len() > 1).then_some(list);
        }
        if let Some(s) = o.seed {
            c.seed = s;
        }
        if let Some(t) = o.twins {
            c.twins = t;
        }
        *self = c;
        Ok(())
    }
}

/// Set `slot` to `v` when given and finite within `[lo, hi]`.
fn put(slot: &mut f64, key: &str, v: Option<f64>, (lo, hi): (f64, f64)) -> Result<(), SynthError> {
    let Some(x) = v else {
        return Ok(());
    };
    if !x.is_finite() || x < lo || x > hi {
        return Err(SynthError::OutOfRange {
            key: key.to_string(),
            value: x.to_string(),
            range: format!("[{lo}, {hi}]"),
        });
    }
    *slot = x;
    Ok(())
}

/// Set `slot` to `v` when given and within `[lo, hi]`.
fn put_int<T: PartialOrd + Copy + fmt::Display>(
    slot: &mut T,
    key: &str,
    v: Option<T>,
    (lo, hi): (T, T),
) -> Result<(), SynthError> {
    let Some(x) = v else {
        return Ok(());
    };
    if x < lo || x > hi {
        return Err(SynthError::OutOfRange {
            key: key.to_string(),
            value: x.to_string(),
            range: format!("[{lo}, {hi}]"),
        });
    }
    *slot = x;
    Ok(())
}

/// A number: an integer or float, or a string that parses as one (`.5`, `NaN`).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim().parse().map_err(|_| E::custom("expected a number"))
        }
    }
    d.deserialize_any(V).map(Some)
}

/// An unsigned integer: an integer, an integral float (`1e3`), or a string that parses as
/// either.
fn unsigned<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    struct V;
    const EXPECTED: &str = "expected an unsigned integer";
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an unsigned integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(EXPECTED))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            // Below 2^64 an integral f64 converts exactly.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::custom(EXPECTED))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            let v = v.trim();
            match v.parse::<u64>() {
                Ok(n) => Ok(n),
                Err(_) => match v.parse::<f64>() {
                    Ok(x) => self.visit_f64(x),
                    Err(_) => Err(E::custom(EXPECTED)),
                },
            }
        }
    }
    let n = d.deserialize_any(V)?;
    T::try_from(n)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{n} is too large")))
}

/// Photo sides: an array of unsigned integers, one integer, or the same as a string separated
/// by commas or spaces (`128,256`).
fn sizes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
    struct V;
    const EXPECTED: &str = "expected sides in pixels such as [128, 256] or 128,256";
    fn side<E: de::Error>(v: i64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom(EXPECTED))
    }
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of sides in pixels")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<u32>, E> {
            Ok(vec![side(v)?])
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u32>, E> {
            v.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<i64>()
                        .map_err(|_| E::custom(EXPECTED))
                        .and_then(side)
                })
                .collect()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<i64>()? {
                out.push(side(v)?);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V).map(Some)
}

/// A switch: a boolean, `1`/`0`, or `true`/`false`, `on`/`off`, `yes`/`no` as a string.
fn switch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    const EXPECTED: &str = "expected true or false";
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            match v {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(E::custom(EXPECTED)),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim() {
                "true" | "1" | "on" | "yes" => Ok(true),
                "false" | "0" | "off" | "no" => Ok(false),
                _ => Err(E::custom(EXPECTED)),
            }
        }
    }
    d.deserialize_any(V).map(Some)
}

/// A bezel by name ([`Bezel::name`]).
fn bezel<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bezel>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Bezel;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "one of {}", Bezel::ALL.map(Bezel::name).join(", "))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Bezel, E> {
            let v = v.trim();
            Bezel::ALL
                .into_iter()
                .find(|b| b.name() == v)
                .ok_or_else(|| {
                    E::custom(format_args!(
                        "expected one of {}",
                        Bezel::ALL.map(Bezel::name).join(", ")
                    ))
                })
        }
    }
    d.deserialize_any(V).map(Some)
}

/// A set of named values, as the `artifacts` and `layouts` knobs take it: `none` (or
/// empty), `all`, `default`, or a list of names, comma-separated in a string or as an array
/// (`default` in a list stands for the default set: `default,angle`). Listed values come
/// back in `all`'s order and without duplicates.
struct NamedSet<T: 'static> {
    all: &'static [T],
    default: &'static [T],
    name: fn(&T) -> &'static str,
    what: &'static str,
}

impl<T: Copy + Ord> NamedSet<T> {
    fn list<'a, E: de::Error>(&self, names: impl Iterator<Item = &'a str>) -> Result<Vec<T>, E> {
        let mut out = Vec::new();
        for n in names {
            let named: &[T] = if n == "default" {
                self.default
            } else {
                let i = self.all.iter().position(|v| (self.name)(v) == n);
                let i = i.ok_or_else(|| {
                    E::custom(format_args!(
                        "unknown {} `{n}`; expected none, all, default or a list of {}",
                        self.what,
                        self.all
                            .iter()
                            .map(self.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                &self.all[i..=i]
            };
            for v in named {
                if !out.contains(v) {
                    out.push(*v);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

impl<'de, T: Copy + Ord> Visitor<'de> for NamedSet<T> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "none, all, default or a list of {}s", self.what)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
        match v.trim() {
            "none" | "" => Ok(Vec::new()),
            "all" => Ok(self.all.to_vec()),
            "default" => Ok(self.default.to_vec()),
            v => self.list(v.split(',').map(str::trim).filter(|p| !p.is_empty())),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = seq.next_element::<String>()? {
            names.push(name);
        }
        self.list(names.iter().map(|n| n.trim()))
    }
}

/// The artifacts on ([`NamedSet`]).
fn artifacts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Artifact>>, D::Error> {
    d.deserialize_any(NamedSet {
        all: &Artifact::ALL,
        default: &Artifact::DEFAULT,
        name: |a| a.name(),
        what: "artifact",
    })
    .map(Some)
}

/// The sub-pixel layouts drawn ([`NamedSet`]; `default` is the classic four).
fn layouts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Layout>>, D::Error> {
    d.deserialize_any(NamedSet {
        all: &Layout::ALL,
        default: &Layout::CLASSIC,
        name: |l| l.name(),
        what: "layout",
    })
    .map(Some)
}

#[cfg(test)]
mod tests;
