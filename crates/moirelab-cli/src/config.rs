//! The config file: `[data]`, `[model]`, `[train]`, `[gradcam]`, `[report]`, `[eval]`, each
//! owned by the crate it configures and nested here. Loading applies `--set section.key=value` overrides
//! (values parsed as TOML, bare words taken as strings) and rejects unknown keys, naming the
//! file, the line and the key.
//!
//! Two `[data]` keys are ours rather than the data crate's: `preset` names a generator preset
//! to create the data set from, and the `[data.knobs]` table overrides that preset's generator
//! knobs (`rho-flag = 0.75`, `count = 800`; the names of `moirelab gen-data --set`).

use anyhow::{anyhow, bail, Context, Result};
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

/// The `[section]` header in force at a byte offset.
fn section_at(text: &str, offset: usize) -> Option<String> {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
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
fn parse_value(raw: &str) -> toml::Value {
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
    let text =
        std::fs::read_to_string(path).with_context(|| format!("config file {}", path.display()))?;
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
mod tests {
    use super::*;

    const MIN: &str = "[data]\nroot = \"d\"\n[train]\nepochs = 2\n";

    /// Every config the repository ships loads, builds its model and names CAM layers that
    /// model has: a typo in one fails here, not for the user who copies it.
    #[test]
    fn shipped_configs_load_and_build() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let loaded = load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let net = moirelab_models::build(&vs.root(), &loaded.config.model)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let layers: Vec<&str> = loaded
                .config
                .gradcam
                .layers
                .iter()
                .map(|s| s.as_str())
                .collect();
            moirelab_models::check_layers(net.as_ref(), &layers)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
        names.sort();
        for want in ["deep", "face", "fixed", "shallow", "tiny", "transfer"] {
            assert!(
                names.iter().any(|n| n == want),
                "configs/{want}.toml missing: {names:?}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_section_and_key() {
        let text = "[data]\nroot = \"d\"\n[train]\nepochs = 2\nlearning-rate = 0.1\n";
        let e = load_str(Path::new("c.toml"), text, &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:5: in [train]:"), "{e}");
        assert!(e.contains("learning-rate"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn errors_in_every_section_name_the_users_line_even_with_a_preset() {
        // (text, expected line, needle)
        let cases = [
            (
                "[data]\npreset = \"tiny\"\n[train]\nepoch = 2\n",
                4,
                "epoch",
            ),
            (
                "[data]\npreset = \"tiny\"\n\n[model]\nwidht = 8\n",
                5,
                "widht",
            ),
            (
                "[data]\npreset = \"tiny\"  # c\n[gradcam]\nevery = 1\nlayerz = []\n",
                5,
                "layerz",
            ),
            (
                "[data]\npreset = \"tiny\"\n[report]\n\nevery-epoch = 3\n",
                5,
                "every-epoch",
            ),
            (
                "[data]\nimage-size = 64\npreset = \"tiny\"\nbogus = 1\n",
                4,
                "bogus",
            ),
            (
                "[data]\nroot = \"d\"\n[train]\nepochs = 2\nlr = -1.0\n",
                5,
                "train.lr",
            ),
            (
                "[data]\npreset = \"tiny\"\n[train]\nlr = 50.0\n",
                4,
                "train.lr",
            ),
            (
                "[data]\nroot = \"d\"\n\n[data.augment]\nhflip = 3.0\n",
                5,
                "augment.hflip",
            ),
            ("[data]\nroot = \"d\"\nimage-size = 4\n", 3, "image-size"),
        ];
        for (text, line, needle) in cases {
            let e = load_str(Path::new("c.toml"), text, &[])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("c.toml:{line}: ")), "{text:?}: {e}");
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// A seeded corpus of damaged config files: every one loads or fails with one line
    /// naming the file, never panics.
    #[test]
    fn damaged_configs_load_or_fail_with_one_line() {
        const CASES: usize = 400;
        let base = "name = \"x\"\n[data]\npreset = \"tiny\"\nimage-size = 64\ncache = \"memory\"\n\
                    on-bad-image = \"skip\"\n[data.augment]\nhflip = 0.5\n[model]\narch = \"shallow\"\n\
                    width = 4\n[train]\nepochs = 2\nbatch-size = 8\nlr = 0.001\nseed = 3\n\
                    [gradcam]\nmethods = [\"gradcam\"]\nprobes = 4\n[report]\ntensorboard = false\n";
        let tokens = [
            "=",
            "[",
            "]",
            "\"",
            "\n",
            "#",
            "-1",
            "1e309",
            "nan",
            "inf",
            "\"\"",
            "[[x]]",
            "{",
            "}",
            ".",
            "\0",
            "é",
            "99999999999999999999",
            "true",
            "[data]",
            "[train]",
            "root = 1",
            "preset = 5",
            "data.preset = \"nope\"",
            "\\u0000",
        ];
        let mut z = 0x00c0_ffeeu64;
        let mut next = move || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (x ^ (x >> 31)) as usize
        };
        let (mut ok, mut err) = (0, 0);
        for k in 0..CASES {
            let mut text = base.to_string();
            for _ in 0..1 + next() % 3 {
                let mut at = next() % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                match next() % 5 {
                    0 => text.insert_str(at, tokens[next() % tokens.len()]),
                    1 => {
                        let mut end = (at + 1 + next() % 12).min(text.len());
                        while !text.is_char_boundary(end) {
                            end += 1;
                        }
                        text.replace_range(at..end, "");
                    }
                    2 => text.truncate(at),
                    3 => {
                        // a value replaced by a token
                        let lines: Vec<&str> = text.lines().collect();
                        let i = next() % lines.len().max(1);
                        let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                        if let Some(l) = v.get_mut(i) {
                            if let Some((key, _)) = l.clone().split_once('=') {
                                *l = format!("{key}= {}", tokens[next() % tokens.len()]);
                            }
                        }
                        text = v.join("\n");
                    }
                    _ => {
                        let lines: Vec<&str> = text.lines().collect();
                        let i = next() % lines.len().max(1);
                        let dup = lines.get(i).copied().unwrap_or("").to_string();
                        text = format!("{text}\n{dup}\n");
                    }
                }
            }
            let sets: Vec<String> = if k % 5 == 0 {
                vec![format!("train.{}=1", ["lr", "epochs", "nope"][next() % 3])]
            } else {
                Vec::new()
            };
            let out = std::panic::catch_unwind(|| load_str(Path::new("c.toml"), &text, &sets));
            match out {
                Err(_) => panic!("case {k} panicked on:\n{text}"),
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    let e = e.to_string();
                    assert!(
                        e.starts_with("c.toml") || e.starts_with("--set"),
                        "case {k}: {e}"
                    );
                    assert!(!e.contains('\n'), "case {k}: {e}");
                    err += 1;
                }
            }
        }
        eprintln!("config corpus: {CASES} cases, {ok} loaded, {err} one-line errors");
        assert_eq!(ok + err, CASES);
        assert!(
            err > CASES / 2,
            "the damage must mostly be caught: {ok} ok, {err} errors"
        );
    }

    #[test]
    fn syntax_error_is_one_line_with_position() {
        let e = load_str(Path::new("c.toml"), "[data\nroot=1", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:1:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn set_overrides_parse_as_toml_or_string() {
        let l = load_str(
            Path::new("c.toml"),
            MIN,
            &[
                "train.lr=3e-4".into(),
                "model.arch=shallow".into(),
                "train.epochs=5".into(),
            ],
        )
        .unwrap();
        assert_eq!(l.config.train.lr, 3e-4);
        assert_eq!(l.config.train.epochs, 5);
        let e = load_str(Path::new("c.toml"), MIN, &["train.nope=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        let e = load_str(Path::new("c.toml"), MIN, &["train.epochs=\"x\"".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochs") || e.contains("integer"), "{e}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let e = load_str(Path::new("c.toml"), MIN, &["train.lr=-1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.lr"), "{e}");
    }

    #[test]
    fn preset_gives_a_default_root_and_unknown_presets_are_listed() {
        let l = load_str(Path::new("c.toml"), "[data]\npreset = \"tiny\"\n", &[]).unwrap();
        assert_eq!(l.preset.as_deref(), Some("tiny"));
        assert_eq!(l.config.data.root, PathBuf::from("data/tiny"));
        let e = load_str(Path::new("c.toml"), "[data]\npreset = \"nope\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("flag-shortcut"), "{e}");
    }

    #[test]
    fn knobs_override_the_preset_and_get_their_own_default_root() {
        let text =
            "[data]\npreset = \"flag-shortcut\"\n[data.knobs]\nrho-flag = 0.75\ncount = 800\n";
        let l = load_str(Path::new("c.toml"), text, &[]).unwrap();
        assert_eq!(
            l.config.data.root,
            PathBuf::from("data/flag-shortcut_count-800_rho-flag-0.75")
        );
        let g = l.gen_config().unwrap().unwrap();
        assert_eq!((g.knobs.rho_flag, g.count), (0.75, 800));
        assert!(
            l.resolved.contains("count=800 rho-flag=0.75"),
            "{}",
            l.resolved
        );
        // Through --set; the preset's own value keeps the preset's folder.
        let base = "[data]\npreset = \"flag-shortcut\"\n";
        let l = load_str(
            Path::new("c.toml"),
            base,
            &["data.knobs.rho-flag=0.95".into()],
        )
        .unwrap();
        assert_eq!(l.config.data.root, PathBuf::from("data/flag-shortcut"));
        assert_eq!(l.knob_list(), "rho-flag=0.95");
        let err = load_err;
        let e = err(base, &["data.knobs.nope=1"]);
        assert!(
            e.contains("data.knobs.nope") && e.contains("rho-flag"),
            "{e}"
        );
        let e = err(base, &["data.knobs.rho-flag=1.5"]);
        assert!(
            e.contains("data.knobs.rho-flag") && e.contains("range"),
            "{e}"
        );
        let e = err(base, &["data.knobs.size=64"]);
        assert!(e.contains("image-size") && e.contains("patch"), "{e}");
        let e = err("[data]\nroot = \"d\"\n[data.knobs]\nrho-flag = 0.5\n", &[]);
        assert!(e.contains("data.preset"), "{e}");
    }

    /// The one-line error of loading `text` with `--set` overrides `sets`.
    fn load_err(text: &str, sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        load_str(Path::new("c.toml"), text, &sets)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn patch_mode_generates_photos_larger_than_its_crops() {
        let text = "[data]\npreset = \"tiny\"\nimage-size = 64\nmode = \"patch\"\n\
                    [data.knobs]\nsize = 128\n";
        let l = load_str(Path::new("c.toml"), text, &[]).unwrap();
        assert_eq!(l.gen_config().unwrap().unwrap().size, 128);
        assert_eq!(l.config.data.image_size, 64);
        assert_eq!(l.config.data.root, PathBuf::from("data/tiny_size-128"));
        let err = |sets: &[&str]| load_err(text, sets);
        // Within the generator's range, below the crops.
        let e = err(&["data.knobs.size=96", "data.image-size=128"]);
        assert!(
            e.contains("data.knobs.size") && e.contains("96-px photo") && e.contains("128-px"),
            "{e}"
        );
        let e = err(&["data.knobs.size=\"big\""]);
        assert!(e.contains("data.knobs.size") && e.contains("big"), "{e}");
        let e = err(&["data.mode=\"pach\""]);
        assert!(e.contains("pach") && !e.contains("resize mode"), "{e}");
        let e = err(&["data.mode=\"resize\""]);
        assert!(
            e.contains("data.knobs.size") && e.contains("resize mode"),
            "{e}"
        );
    }

    #[test]
    fn patch_mode_generates_photos_of_several_sizes() {
        let text = "[data]\npreset = \"tiny\"\nimage-size = 64\nmode = \"patch\"\n\
                    [data.knobs]\nsizes = [128, 64]\n";
        let l = load_str(Path::new("c.toml"), text, &[]).unwrap();
        let g = l.gen_config().unwrap().unwrap();
        assert_eq!((g.size, g.sizes.as_deref()), (128, Some(&[64, 128][..])));
        assert_eq!(g.min_photo_size(), 64);
        assert_eq!(l.config.data.root, PathBuf::from("data/tiny_sizes-128_64"));
        let err = |sets: &[&str]| load_err(text, sets);
        let e = err(&["data.image-size=96"]);
        assert!(
            e.contains("data.knobs.sizes") && e.contains("64-px photo") && e.contains("96-px"),
            "{e}"
        );
        let e = err(&["data.mode=\"resize\""]);
        assert!(
            e.contains("data.knobs.sizes") && e.contains("resize mode"),
            "{e}"
        );
        let e = err(&["data.knobs.size=128"]);
        assert!(e.contains("not both"), "{e}");
        let e = err(&["data.knobs.sizes=[64, 9999]"]);
        assert!(e.contains("sizes") && e.contains("9999"), "{e}");
        let e = err(&["data.knobs.sizes=\"64,big\""]);
        assert!(e.contains("sizes") && e.contains("64,big"), "{e}");
    }
}
