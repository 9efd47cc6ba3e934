//! Reading a run folder into memory, tolerating absence and rejecting corrupt records
//! (images that do not read are left out with a warning: [`crate::check`]).

use crate::util::canonical;
use crate::{ReportError, Result};
use moirelab_core::fsio::{read_json, read_jsonl};
use moirelab_core::run::{
    self, CamMetrics, EpochMetrics, MapsFile, MetricsLine, ProbesFile, RunMeta, RunSummary,
    CONFIG_TOML, GRID_PNG, MAPS_JSON, META_JSON, METRICS_JSONL, PROBES_JSON, SUMMARY_JSON,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What one `epochs/NNNN/` folder holds.
#[derive(Debug, Clone, Default)]
pub struct EpochData {
    pub epoch: u32,
    pub probes: Option<ProbesFile>,
    pub grid: Option<PathBuf>,
    /// (probe index, method, kind) -> existing tile PNG; kind is `pred`, `true` or `overlay`.
    pub tiles: BTreeMap<(usize, String, String), PathBuf>,
    /// `maps.json`, with only the strips whose PNG exists.
    pub maps: Option<MapsFile>,
    /// `"<method>/<target>"` -> existing strip PNG.
    pub strips: BTreeMap<String, PathBuf>,
}

/// Everything the pages show about one run. Absent files are `None`/empty and described
/// in `missing`.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    /// Canonical absolute run folder.
    pub dir: PathBuf,
    /// `meta.json` name, else the folder name.
    pub name: String,
    pub config: Option<toml::Value>,
    pub config_text: Option<String>,
    pub meta: Option<RunMeta>,
    pub metrics: Vec<MetricsLine>,
    pub summary: Option<RunSummary>,
    /// `summary.json`'s `extra` map (per-epoch evaluation of extra data sets at the best
    /// epoch), name -> metrics; empty when absent.
    pub summary_extra: BTreeMap<String, EpochMetrics>,
    /// probe index -> `probes/NN.png` that exists.
    pub probe_inputs: BTreeMap<usize, PathBuf>,
    /// Epoch folders, ascending.
    pub epochs: Vec<EpochData>,
    /// Human-readable notes on what is absent, shown on the page.
    pub missing: Vec<String>,
    /// What the reader tolerated or left out of a damaged run folder (an image that does not
    /// read or does not fit `maps.json`, …): one line each, naming the file by its full path.
    /// Pages list them with the missing files; callers pass them on (the CLI prints them).
    pub warnings: Vec<String>,
}

pub const TILE_KINDS: [&str; 3] = ["pred", "true", "overlay"];

/// The status shown for a run whose `meta.json` says `running` while no process trains it
/// (it was killed: SIGKILL, a power cut, a job past its time limit).
pub const STOPPED: &str =
    "stopped: no process is training it (killed?); train --resume continues it";

impl RunData {
    /// What the page's "what is missing" list shows: the absent files, then the warnings
    /// with paths relative to the run folder.
    pub fn notes(&self) -> Vec<String> {
        let prefix = format!("{}{}", self.dir.display(), std::path::MAIN_SEPARATOR);
        let warnings = self.warnings.iter().map(|w| w.replace(&prefix, ""));
        self.missing.iter().cloned().chain(warnings).collect()
    }

    /// `train.monitor` of the run's config (the trainer's default when it names none).
    pub fn monitor(&self) -> String {
        self.config
            .as_ref()
            .and_then(|c| c.get("train")?.get("monitor")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "val.balanced-accuracy".into())
    }

    /// Epoch-kind metric lines.
    pub fn epoch_metrics(&self) -> impl Iterator<Item = &EpochMetrics> {
        self.metrics.iter().filter_map(|m| match m {
            MetricsLine::Epoch(e) => Some(e),
            MetricsLine::Cam(_) => None,
        })
    }

    /// CAM-kind metric lines.
    pub fn cam_metrics(&self) -> impl Iterator<Item = &CamMetrics> {
        self.metrics.iter().filter_map(|m| match m {
            MetricsLine::Cam(c) => Some(c),
            MetricsLine::Epoch(_) => None,
        })
    }

    /// Final metrics of a split: `summary.json` when present (its val is the best epoch's),
    /// else the last epoch line of that split.
    pub fn final_split(&self, split: &str) -> Option<&EpochMetrics> {
        let from_summary = self.summary.as_ref().and_then(|s| match split {
            "val" => s.val.as_ref(),
            "test" => s.test.as_ref(),
            _ => None,
        });
        from_summary.or_else(|| {
            self.epoch_metrics()
                .filter(|e| e.split == split)
                .max_by_key(|e| e.epoch)
        })
    }

    /// Methods seen in any probes.json or tile name, in first-seen order.
    pub fn methods(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.epochs {
            let from_file = e.probes.iter().flat_map(|p| p.methods.iter().cloned());
            let from_tiles = e.tiles.keys().map(|(_, m, _)| m.clone());
            for m in from_file.chain(from_tiles) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Class names from the newest probes.json, if any.
    pub fn classes(&self) -> Vec<String> {
        self.epochs
            .iter()
            .rev()
            .find_map(|e| e.probes.as_ref().map(|p| p.classes.clone()))
            .unwrap_or_default()
    }

    /// Colormap named by the newest probes.json (`jet` when unknown).
    pub fn colormap(&self) -> String {
        self.epochs
            .iter()
            .rev()
            .find_map(|e| e.probes.as_ref().map(|p| p.colormap.clone()))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "jet".into())
    }

    /// Probe indices seen anywhere (inputs, probes.json rows, tiles), ascending.
    pub fn probe_indices(&self) -> Vec<usize> {
        let mut set: BTreeSet<usize> = self.probe_inputs.keys().copied().collect();
        for e in &self.epochs {
            set.extend(
                e.probes
                    .iter()
                    .flat_map(|p| p.probes.iter().map(|r| r.index)),
            );
            set.extend(e.tiles.keys().map(|(i, _, _)| *i));
        }
        set.into_iter().collect()
    }

    /// Stable probe id (data-set relative path) of a probe row, from the newest probes.json
    /// that lists it; `probe NN` when no probes.json names it.
    pub fn probe_id(&self, index: usize) -> String {
        self.epochs
            .iter()
            .rev()
            .find_map(|e| {
                e.probes
                    .as_ref()
                    .and_then(|p| p.probes.iter().find(|r| r.index == index))
                    .map(|r| r.id.clone())
            })
            .unwrap_or_else(|| format!("probe {index:02}"))
    }

    /// Content hash of the source image of probe row `index` (`image_hash` of the newest
    /// probes.json that lists it), when the dump recorded one.
    pub fn probe_image_hash(&self, index: usize) -> Option<&str> {
        self.epochs.iter().rev().find_map(|e| {
            e.probes
                .as_ref()?
                .probes
                .iter()
                .find(|r| r.index == index)?
                .image_hash
                .as_deref()
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Sorted directory entries; a missing directory is an empty list.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = rd
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(io(dir))?;
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// `NN-<method>-<kind>.png` -> (NN, method, kind). Methods may contain `-`.
fn parse_tile_name(name: &str) -> Option<(usize, String, String)> {
    let stem = name.strip_suffix(".png")?;
    let (idx, rest) = stem.split_once('-')?;
    let (method, kind) = rest.rsplit_once('-')?;
    if method.is_empty() || !TILE_KINDS.contains(&kind) || idx.is_empty() {
        return None;
    }
    if !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((idx.parse().ok()?, method.to_string(), kind.to_string()))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Load a run folder. Absent files become notes in [`RunData::missing`]; a file that exists
/// but does not parse is [`ReportError::Corrupt`] (or a core parse error naming the line).
pub fn load_run(run_dir: &Path) -> Result<RunData> {
    if !run_dir.is_dir() {
        return Err(ReportError::NotARun {
            path: run_dir.to_path_buf(),
        });
    }
    let dir = canonical(run_dir)?;
    let mut run = RunData {
        dir: dir.clone(),
        ..Default::default()
    };
    let mut found_any = false;

    let cfg_path = dir.join(CONFIG_TOML);
    if cfg_path.is_file() {
        found_any = true;
        let text = moirelab_core::fsio::read_text_capped(
            &cfg_path,
            "a config",
            moirelab_core::fsio::TEXT_MAX_BYTES,
        )?;
        let value: toml::Value = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ReportError::Corrupt {
                path: cfg_path.clone(),
                msg: match line {
                    Some(l) => format!("line {l}: {}", e.message().trim()),
                    None => e.message().trim().to_string(),
                },
            }
        })?;
        run.config = Some(value);
        run.config_text = Some(text);
    } else {
        run.missing.push(format!("{CONFIG_TOML} missing"));
    }

    let meta_path = dir.join(META_JSON);
    if meta_path.is_file() {
        found_any = true;
        let mut meta: RunMeta = run::read_meta(run_dir)?;
        // A killed training keeps "running" in its meta.json. A live one holds an exclusive
        // lock on its folder; where nobody does, say that it stopped.
        let unlocked = matches!(moirelab_core::dirlock::read_guard(&dir), Ok(Some(_)));
        if meta.status == "running" && unlocked {
            meta.status = STOPPED.into();
        }
        run.meta = Some(meta);
    } else {
        run.missing.push(format!("{META_JSON} missing"));
    }

    let metrics_path = dir.join(METRICS_JSONL);
    if metrics_path.is_file() {
        found_any = true;
        let (lines, warnings) =
            crate::check::tidy_metrics(&metrics_path, read_jsonl(&metrics_path)?);
        run.metrics = lines;
        run.warnings.extend(warnings);
        if run.metrics.is_empty() {
            run.missing
                .push(format!("{METRICS_JSONL} is empty (no epoch finished yet)"));
        }
    } else {
        run.missing.push(format!(
            "{METRICS_JSONL} missing (no epoch finished yet?): no curves or metric tables"
        ));
    }

    let summary_path = dir.join(SUMMARY_JSON);
    if summary_path.is_file() {
        run.summary = Some(read_json(&summary_path)?);
        let raw: serde_json::Value = read_json(&summary_path)?;
        if let Some(extra) = raw.get("extra").filter(|v| !v.is_null()) {
            run.summary_extra =
                serde_json::from_value(extra.clone()).map_err(|e| ReportError::Corrupt {
                    path: summary_path.clone(),
                    msg: format!("extra: {e}"),
                })?;
        }
    } else if run.meta.as_ref().is_some_and(|m| m.status == "finished") {
        run.warnings.push(format!(
            "{}: missing, although meta.json says the run finished: final metrics come from \
             the last epoch lines",
            summary_path.display()
        ));
    } else {
        let why = match run.meta.as_ref().map(|m| m.status.as_str()) {
            Some("running") => "run still training",
            Some(STOPPED) => "run stopped before it finished",
            Some(s) if s.starts_with("failed") || s == "interrupted" => "run did not finish",
            _ => "run still training or stopped early",
        };
        run.missing.push(format!(
            "{SUMMARY_JSON} missing ({why}): final metrics come from the last epoch lines"
        ));
    }

    for p in list_dir(&dir.join("probes"))? {
        let name = file_name(&p);
        if let Some(stem) = name.strip_suffix(".png") {
            if let Ok(i) = stem.parse::<usize>() {
                run.probe_inputs.insert(i, p);
            }
        }
    }

    let epochs_dir = dir.join("epochs");
    if epochs_dir.is_dir() {
        found_any = true;
    }
    for p in list_dir(&epochs_dir)? {
        let name = file_name(&p);
        let Ok(epoch) = name.parse::<u32>() else {
            continue;
        };
        if !p.is_dir() || run::epoch_dir(&dir, epoch) != p {
            continue;
        }
        run.epochs.push(load_epoch(&p, epoch)?);
    }
    run.epochs.sort_by_key(|e| e.epoch);
    if run.epochs.is_empty() {
        run.missing
            .push("no epochs/NNNN/ folders: no Grad-CAM dumps yet".to_string());
    }

    if !found_any {
        return Err(ReportError::NotARun { path: dir });
    }
    key_tiles_by_method_name(&mut run.epochs);

    run.name = run
        .meta
        .as_ref()
        .map(|m| m.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| file_name(&dir));
    describe_missing_images(&mut run);
    crate::check::check_images(&mut run);
    crate::check::check_summary(&mut run);
    Ok(run)
}

pub(crate) fn load_epoch(dir: &Path, epoch: u32) -> Result<EpochData> {
    let mut e = EpochData {
        epoch,
        ..Default::default()
    };
    let probes = dir.join(PROBES_JSON);
    if probes.is_file() {
        let pf: ProbesFile = read_json(&probes)?;
        if pf.epoch != epoch {
            return Err(ReportError::Corrupt {
                path: probes,
                msg: format!(
                    "says epoch {} but lives in the folder of epoch {epoch}",
                    pf.epoch
                ),
            });
        }
        e.probes = Some(pf);
    }
    let grid = dir.join(GRID_PNG);
    if grid.is_file() {
        e.grid = Some(grid);
    }
    e.tiles = scan_tiles(dir)?;
    let maps = dir.join(MAPS_JSON);
    if maps.is_file() {
        let mf: MapsFile = read_json(&maps)?;
        for (key, strip) in &mf.maps {
            let bad = |msg: String| ReportError::Corrupt {
                path: maps.clone(),
                msg: format!("{key}: {msg}"),
            };
            if strip.min.len() != strip.max.len() {
                return Err(bad("min and max differ in length".into()));
            }
            let rel = Path::new(&strip.file);
            let inside = rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside || strip.file.is_empty() {
                return Err(bad(format!(
                    "file {:?} is not inside the epoch folder",
                    strip.file
                )));
            }
            let p = dir.join(rel);
            if p.is_file() {
                e.strips.insert(key.clone(), p);
            }
        }
        e.maps = Some(mf);
    }
    Ok(e)
}

/// Tiles under `<epoch dir>/tiles/` whose names follow the layout.
pub(crate) fn scan_tiles(epoch_dir: &Path) -> Result<BTreeMap<(usize, String, String), PathBuf>> {
    let mut out = BTreeMap::new();
    for p in list_dir(&epoch_dir.join("tiles"))? {
        if let Some(key) = parse_tile_name(&file_name(&p)) {
            out.insert(key, p);
        }
    }
    Ok(out)
}

/// File-name-safe form of a method name as the Grad-CAM dump writes it into tile names
/// (`gradcam++` -> `gradcampp`).
pub(crate) fn method_file_stem(method: &str) -> String {
    method.replace('+', "p")
}

/// Tile names carry the method's file stem (`gradcampp`) while probes.json, CAM metrics and
/// region keys use its name (`gradcam++`): re-key tiles by the name wherever a probes.json
/// names a method with that stem, so each method is one column, not two.
fn key_tiles_by_method_name(epochs: &mut [EpochData]) {
    let mut by_stem: BTreeMap<String, String> = BTreeMap::new();
    for e in epochs.iter() {
        for m in e.probes.iter().flat_map(|p| p.methods.iter()) {
            by_stem.insert(method_file_stem(m), m.clone());
        }
    }
    for e in epochs.iter_mut() {
        let tiles = std::mem::take(&mut e.tiles);
        e.tiles = tiles
            .into_iter()
            .map(|((i, m, k), p)| {
                let m = by_stem.get(&m).cloned().unwrap_or(m);
                ((i, m, k), p)
            })
            .collect();
    }
}

/// Notes for absent probe inputs, probes.json files and tiles, summarised per epoch.
fn describe_missing_images(run: &mut RunData) {
    let indices = run.probe_indices();
    let absent_inputs: Vec<String> = indices
        .iter()
        .filter(|i| !run.probe_inputs.contains_key(i))
        .map(|i| format!("{i:02}"))
        .collect();
    if !absent_inputs.is_empty() {
        run.missing.push(format!(
            "probe inputs missing: probes/{{{}}}.png",
            absent_inputs.join(",")
        ));
    }
    let methods = run.methods();
    let mut notes = Vec::new();
    for e in &run.epochs {
        let d = format!("epochs/{:04}", e.epoch);
        if e.probes.is_none() {
            notes.push(format!("{d}/{PROBES_JSON} missing: no classes or scores"));
        }
        if e.grid.is_none() {
            notes.push(format!("{d}/{GRID_PNG} missing"));
        }
        // Runs dumped with map strips need no tiles (overlay tiles are optional there);
        // older runs have all three kinds.
        let expected = if e.maps.is_some() {
            0
        } else {
            indices.len() * methods.len() * TILE_KINDS.len()
        };
        let present = e.tiles.len();
        if present < expected {
            notes.push(format!(
                "{d}/tiles: {} of {expected} tiles missing",
                expected - present
            ));
        }
        match &e.maps {
            None if e.tiles.keys().all(|k| k.2 == "overlay") => {
                notes.push(format!("{d}/{MAPS_JSON} missing: no maps to show"));
            }
            Some(mf) => {
                let absent: Vec<&String> = mf
                    .maps
                    .keys()
                    .filter(|k| !e.strips.contains_key(*k))
                    .collect();
                if !absent.is_empty() {
                    let names: Vec<&str> = absent.iter().map(|s| s.as_str()).collect();
                    notes.push(format!("{d}: map strips missing: {}", names.join(", ")));
                }
            }
            None => {}
        }
    }
    run.missing.extend(notes);
    let has_regions = run.cam_metrics().any(|c| !c.regions.is_empty());
    if !has_regions {
        run.missing.push(
            "no attention-in-region metrics (data set without region masks, or no CAM dump yet)"
                .to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_named_by_file_stem_are_keyed_by_the_method_name() {
        let pf = ProbesFile {
            methods: vec!["gradcam++".into(), "gradcam".into()],
            ..Default::default()
        };
        let mut e = EpochData {
            epoch: 1,
            probes: Some(pf),
            ..Default::default()
        };
        for m in ["gradcampp", "gradcam", "gradcam++", "other"] {
            e.tiles
                .insert((0, m.into(), "pred".into()), PathBuf::from(m));
        }
        let mut epochs = vec![e];
        key_tiles_by_method_name(&mut epochs);
        let methods: BTreeSet<&str> = epochs[0].tiles.keys().map(|k| k.1.as_str()).collect();
        assert_eq!(methods, BTreeSet::from(["gradcam", "gradcam++", "other"]));
    }

    #[test]
    fn tile_names_parse_with_dashes_in_the_method() {
        assert_eq!(
            parse_tile_name("03-grad-cam++-overlay.png"),
            Some((3, "grad-cam++".into(), "overlay".into()))
        );
        assert_eq!(
            parse_tile_name("00-gradcam-pred.png"),
            Some((0, "gradcam".into(), "pred".into()))
        );
        assert_eq!(parse_tile_name("00-gradcam-other.png"), None);
        assert_eq!(parse_tile_name("x0-gradcam-pred.png"), None);
        assert_eq!(parse_tile_name("00-gradcam-pred.jpg"), None);
    }
}
