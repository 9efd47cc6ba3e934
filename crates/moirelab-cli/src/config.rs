//! The config file: `[data]`, `[model]`, `[train]`, `[gradcam]`, `[report]`, `[eval]`, each
//! owned by the crate it configures and nested here. Loading applies `--set section.key=value` overrides
//! (values parsed as TOML, bare words taken as strings) and rejects unknown keys, naming the
//! file, the line and the key.
//!
//! Two `[data]` keys are ours rather than the data crate's: `preset` names a generator preset
//! to create the data set from, and the `[data.knobs]` table overrides that preset's generator
//! knobs (`rho-flag = 0.75`, `count = 800`; the names of `moirelab gen-data --set`).

use anyhow::{anyhow, bail, Result};
use moirelab_data::{DataConfig, Mode};
use moirelab_gradcam::GradcamConfig;
use moirelab_models::ModelConfig;
use moirelab_train::{EvalConfig, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[report]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReportConfig {
    /// Rewrite `report/index.html` and the plots after every epoch.
    pub every_epoch: bool,
    /// Write TensorBoard event files under `tb/`.
    pub tensorboard: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            every_epoch: true,
            tensorboard: true,
        }
    }
}

/// The whole config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Run name (default: the config file's stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Folder that holds the run folders (default `runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_dir: Option<PathBuf>,
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub gradcam: GradcamConfig,
    #[serde(default)]
    pub report: ReportConfig,
    /// Extra data sets evaluated after every epoch.
    #[serde(default, skip_serializing_if = "EvalConfig::is_empty")]
    pub eval: EvalConfig,
}

/// A parsed config plus where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `data.preset`: a generator preset to create `data.root` from when it does not exist.
    pub preset: Option<String>,
    /// `[data.knobs]` as written: generator knob overrides of the preset (the fields of
    /// [`moirelab_synth::Overrides`]), sorted by knob name.
    pub knobs: toml::Table,
    /// The resolved config as TOML (what goes into the run folder).
    pub resolved: String,
    pub path: PathBuf,
}

/// Line number (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The `[section]` header in force at a byte offset. At a header itself (an unknown table)
/// that is the table holding it: none for `[bogus]`, `data` for `[data.bogus]`.
fn section_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let name = |l: &str| l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let here = text[start..].lines().next().unwrap_or("").trim();
    if here.starts_with('[') {
        let table = name(here);
        return table
            .rsplit_once('.')
            .map(|(outer, _)| outer.trim().to_string());
    }
    text[..offset]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(name)
}

/// The key written on the line holding a byte offset (`key = value` lines only).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

/// One-line description of a TOML error: `file:line: in [section]: key: message`. With
/// `--set` overrides the text is the merged document, so no line number is given.
fn describe(path: &Path, text: &str, e: &toml::de::Error, overridden: bool) -> anyhow::Error {
    let msg = e.message().replace('\n', " ");
    let Some(span) = e.span().filter(|_| !text.is_empty()) else {
        return anyhow!("{}: {msg}", path.display());
    };
    let section = section_at(text, span.start);
    let key = key_at(text, span.start).filter(|k| !msg.contains(k.as_str()));
    let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
    if overridden {
        let section = section.map(|s| format!("[{s}] ")).unwrap_or_default();
        anyhow!(
            "{} (with --set overrides): {section}{key}{msg}",
            path.display()
        )
    } else {
        let section = section.map(|s| format!("in [{s}]: ")).unwrap_or_default();
        anyhow!(
            "{}:{}: {section}{key}{msg}",
            path.display(),
            line_of(text, span.start)
        )
    }
}

/// The text with `[data]`'s `preset` line commented out (line numbers unchanged): the same
/// document the data crate sees once the preset is taken out, so serde's spans are the
/// user's own lines. `None` when the key shares its line with something else.
fn without_preset_line(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Doc {
        data: Option<DataPreset>,
    }
    #[derive(Deserialize)]
    struct DataPreset {
        preset: Option<toml::Spanned<toml::Value>>,
    }
    let doc: Doc = toml::from_str(text).ok()?;
    let span = doc.data?.preset?.span();
    let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[span.end..]
        .find('\n')
        .map_or(text.len(), |i| span.end + i);
    let key = text[start..span.start].trim_start();
    let key_ok = ["preset", "\"preset\"", "data.preset"].iter().any(|k| {
        key.strip_prefix(k)
            .is_some_and(|r| r.trim_start().starts_with('='))
    });
    let rest = text[span.end..end].trim();
    (key_ok && (rest.is_empty() || rest.starts_with('#')))
        .then(|| format!("{}#{}", &text[..start], &text[start..]))
}

/// Line (1-based) of the `key = value` line a validation message names, e.g. `train.lr`
/// or `[data] augment.hflip`; `None` when no line of the text matches.
fn line_of_key(text: &str, msg: &str) -> Option<usize> {
    let mut section = String::new();
    let mut best: Option<(usize, usize)> = None; // (match length, line)
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            section = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        let full = if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        };
        let mut names = vec![full.clone()];
        if let Some((top, rest)) = full.split_once('.') {
            names.push(format!("[{top}] {rest}"));
        }
        for n in names {
            let hit = msg.match_indices(n.as_str()).any(|(at, _)| {
                // whole key: not followed by another key character
                !msg[at + n.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
            });
            if hit && best.is_none_or(|b| n.len() > b.0) {
                best = Some((n.len(), i + 1));
            }
        }
    }
    best.map(|b| b.1)
}

/// Parse a `--set` value: TOML if it parses, else a bare string.
pub(crate) fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Apply one `section.key=value` override to a TOML table.
pub fn apply_set(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {spec}: expected section.key=value"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {spec}: empty key component");
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set {spec}: '{p}' is not a table"))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), parse_value(raw.trim()));
    Ok(())
}

/// Load and validate a config file with overrides.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded> {
    use moirelab_core::fsio;
    let text = fsio::read_text_capped(path, "a config", fsio::TEXT_MAX_BYTES)
        .map_err(|e| anyhow!("config file {e}"))?;
    load_str(path, &text, sets)
}

pub fn load_str(path: &Path, text: &str, sets: &[String]) -> Result<Loaded> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| describe(path, text, &e, false))?;
    for s in sets {
        apply_set(&mut table, s)?;
    }
    // `data.preset` and `[data.knobs]` are ours, not the data crate's: they name the data set
    // to generate and give a default root, so configs can stay short.
    let Some(data) = table.get_mut("data").and_then(|d| d.as_table_mut()) else {
        bail!(
            "{}: missing [data] section (data.root or data.preset)",
            path.display()
        );
    };
    let (preset, knobs) = take_generator(path, data)?;
    // Without overrides (and without a stripped `preset` line) the original text parses to
    // the same config and its spans are the user's own lines.
    let merged = toml::to_string(&table)?;
    let config: Config = if sets.is_empty() && preset.is_none() {
        toml::from_str(text).map_err(|e| describe(path, text, &e, false))?
    } else {
        toml::from_str(&merged).map_err(|e| {
            // Point at the user's line when the user's own text (preset line commented out)
            // shows the same problem.
            let own = without_preset_line(text).unwrap_or_else(|| text.to_string());
            match toml::from_str::<Config>(&own) {
                Err(orig) if orig.message() == e.message() => describe(path, &own, &orig, false),
                _ => describe(path, &merged, &e, !sets.is_empty()),
            }
        })?
    };
    // Range errors name their key; the line is added when the user's text has that key
    // (not when --set overrides may have supplied the value).
    let at = |msg: String| match line_of_key(text, &msg).filter(|_| sets.is_empty()) {
        Some(line) => anyhow!("{}:{line}: {msg}", path.display()),
        None => anyhow!("{}: {msg}", path.display()),
    };
    config.train.validate().map_err(|e| at(e.to_string()))?;
    config.model.validate().map_err(|e| at(e.to_string()))?;
    config.gradcam.validate().map_err(|e| at(e.to_string()))?;
    config.data.validate().map_err(|e| at(e.to_string()))?;
    config.eval.validate().map_err(|e| at(e.to_string()))?;
    let mut loaded = Loaded {
        config,
        preset,
        knobs,
        resolved: String::new(),
        path: path.to_path_buf(),
    };
    loaded.check_photo_size()?;
    loaded.resolve()?;
    Ok(loaded)
}

impl Loaded {
    /// Rewrite [`Loaded::resolved`] from the config (after changing it, e.g. the data root).
    pub fn resolve(&mut self) -> Result<()> {
        let mut resolved = String::new();
        if let Some(p) = &self.preset {
            resolved.push_str(&format!("# data generated from preset \"{p}\""));
            if !self.knobs.is_empty() {
                resolved.push_str(&format!(" with {}", self.knob_list()));
            }
            resolved.push('\n');
        }
        resolved.push_str(&toml::to_string_pretty(&self.config)?);
        self.resolved = resolved;
        Ok(())
    }

    /// `[data.knobs] size` (the generated photos' side) and `sizes` (several) are for patch
    /// mode, where the network reads `image-size` crops of larger photos at native resolution.
    /// In resize mode the loader would shrink the photos back to `image-size` (and the
    /// display's pitch is drawn in output pixels, so the screen would be finer than the knobs
    /// say): there the generated size is `image-size`.
    fn check_photo_size(&self) -> Result<()> {
        let Some(key) = ["size", "sizes"]
            .into_iter()
            .find(|k| self.knobs.contains_key(*k))
        else {
            return Ok(());
        };
        let data = &self.config.data;
        if data.mode != Mode::Patch {
            bail!(
                "{}: data.knobs.{key}: in resize mode the generated size is data.image-size \
                 (set data.mode = \"patch\" to train on image-size crops of larger photos)",
                self.path.display()
            );
        }
        let smallest = self
            .gen_config()?
            .map_or(data.image_size, |g| g.min_photo_size());
        if smallest < data.image_size {
            bail!(
                "{}: data.knobs.{key}: a {smallest}-px photo is smaller than the {}-px patches \
                 (data.image-size); patch mode needs photos at least that large",
                self.path.display(),
                data.image_size
            );
        }
        Ok(())
    }

    /// The knob overrides as `count=800 rho-flag=0.75`.
    pub fn knob_list(&self) -> String {
        let knobs: Vec<String> = self
            .knobs
            .iter()
            .map(|(k, v)| format!("{k}={}", knob_text(v)))
            .collect();
        knobs.join(" ")
    }

    /// The generator config of `data.preset` with the `[data.knobs]` overrides at
    /// `data.image-size`; `None` without a preset.
    pub fn gen_config(&self) -> Result<Option<moirelab_synth::GenConfig>> {
        let Some(p) = &self.preset else {
            return Ok(None);
        };
        let mut cfg = moirelab_synth::GenConfig::preset(p)?;
        cfg.apply(&moirelab_synth::Overrides {
            size: Some(self.config.data.image_size),
            ..Default::default()
        })?;
        cfg.apply(&moirelab_synth::Overrides::from_toml(self.knobs.clone())?)?;
        Ok(Some(cfg))
    }
}

/// Remove `preset` and `knobs` from the `[data]` table, check them against the generator and
/// insert the default root: `data/<preset>`, plus `_<knob>-<value>` for each knob that
/// changes the preset (so data sets of a swept knob live side by side and the unchanged
/// preset keeps its folder).
fn take_generator(path: &Path, data: &mut toml::Table) -> Result<(Option<String>, toml::Table)> {
    let preset = match data.remove("preset") {
        None => None,
        Some(p) => {
            let p = p
                .as_str()
                .ok_or_else(|| anyhow!("{}: data.preset must be a string", path.display()))?
                .to_string();
            if moirelab_synth::GenConfig::preset(&p).is_err() {
                bail!(
                    "{}: data.preset = \"{p}\" is unknown; valid: {}",
                    path.display(),
                    moirelab_synth::preset_names().join(", ")
                );
            }
            Some(p)
        }
    };
    let mut knobs = toml::Table::new();
    if let Some(k) = data.remove("knobs") {
        let toml::Value::Table(table) = k else {
            bail!(
                "{}: data.knobs must be a table of generator knobs ([data.knobs] rho-flag = 0.75)",
                path.display()
            );
        };
        let Some(p) = &preset else {
            bail!(
                "{}: data.knobs overrides a generator preset; set data.preset too",
                path.display()
            );
        };
        let base = moirelab_synth::GenConfig::preset(p)?;
        // Each knob on its own: its errors name data.knobs.<knob>, and a knob that changes
        // the preset names the default root.
        let mut suffix = String::new();
        for (key, value) in &table {
            let mut one = base.clone();
            let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
            moirelab_synth::Overrides::from_toml(alone)
                .and_then(|o| one.apply(&o))
                .map_err(|e| anyhow!("{}: data.knobs.{key}: {e}", path.display()))?;
            if one != base {
                suffix.push_str(&format!("_{key}-{}", file_safe(&knob_text(value), ".-")));
            }
        }
        let mut all = base;
        moirelab_synth::Overrides::from_toml(table.clone())
            .and_then(|o| all.apply(&o))
            .and_then(|()| all.validate())
            .map_err(|e| anyhow!("{}: data.knobs: {e}", path.display()))?;
        if !data.contains_key("root") {
            data.insert(
                "root".into(),
                toml::Value::String(format!("data/{p}{suffix}")),
            );
        }
        knobs = table;
    }
    if let Some(p) = &preset {
        if !data.contains_key("root") {
            data.insert("root".into(), toml::Value::String(format!("data/{p}")));
        }
    }
    Ok((preset, knobs))
}

/// `s` as a file-name part: ASCII letters, digits and the characters of `keep`; anything else
/// becomes `_`.
pub fn file_safe(s: &str, keep: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || keep.contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A knob value as folder names and messages show it: `0.75`, `800`, `layout:pentile`;
/// arrays comma-separated (`moire,bands`).
/// A knob's value as `gen-data --set` takes it (lists comma-joined).
pub(crate) fn knob_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items.iter().map(knob_text).collect::<Vec<_>>().join(","),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests;
