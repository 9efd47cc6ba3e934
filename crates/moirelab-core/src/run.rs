//! Records of a run folder (`runs/<name>/`), shared by the trainer, the Grad-CAM dump and
//! the report so that writer and reader cannot drift apart.
//!
//! ```text
//! config.toml  meta.json  metrics.jsonl  summary.json  train.log
//! checkpoints/{last,best}.safetensors  checkpoints/state.json
//! probes/NN.png                      probe inputs (never change across epochs)
//! epochs/NNNN/grid.png               Grad-CAM grid
//! epochs/NNNN/maps.json             MapsFile: per-map value ranges of the map strips
//! epochs/NNNN/maps/<method>-<pred|true>.png  8-bit maps, P maps stacked top to bottom
//! epochs/NNNN/probes.json            ProbesFile
//! epochs/NNNN/tiles/NN-<method>-{pred,true,overlay}.png
//! plots/*.png|svg   report/index.html   tb/events.out.tfevents.*
//! ```

use crate::CoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const CONFIG_TOML: &str = "config.toml";
pub const META_JSON: &str = "meta.json";
pub const METRICS_JSONL: &str = "metrics.jsonl";
pub const SUMMARY_JSON: &str = "summary.json";
pub const TRAIN_LOG: &str = "train.log";
/// Perceptual hashes of the train and val images (`moirelab_data::HashList`), for the
/// copy check of data sets evaluated later.
pub const DATA_HASHES_JSON: &str = "data-hashes.json";
pub const PROBES_JSON: &str = "probes.json";
pub const MAPS_JSON: &str = "maps.json";
pub const GRID_PNG: &str = "grid.png";

/// The one rule for run names: a single ordinary folder name. Not empty, at most 200 bytes,
/// not starting with `.` (so not `.`, `..` or a hidden folder), no `/` or `\\`, no control
/// characters, no leading or trailing whitespace. `Err` says why, in a phrase.
pub fn check_run_name(name: &str) -> Result<(), CoreError> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > 200 {
        "is longer than 200 bytes"
    } else if name.starts_with('.') {
        "starts with '.' (., .. and hidden folders are not run names)"
    } else if name.contains(['/', '\\']) {
        "contains a path separator"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else if name.trim() != name {
        "starts or ends with whitespace"
    } else {
        let mut comps = Path::new(name).components();
        match (comps.next(), comps.next()) {
            (Some(std::path::Component::Normal(c)), None) if c == name => return Ok(()),
            _ => "is not a single folder name",
        }
    };
    Err(CoreError::RunName {
        name: name.to_string(),
        why,
    })
}

/// `epochs/0007` for epoch 7.
pub fn epoch_dir(run: &Path, epoch: u32) -> PathBuf {
    run.join("epochs").join(format!("{epoch:04}"))
}

/// `probes/03.png` for probe 3.
pub fn probe_input_png(run: &Path, probe: usize) -> PathBuf {
    run.join("probes").join(format!("{probe:02}.png"))
}

/// Which target class a CAM explains.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CamTarget {
    #[default]
    Pred,
    True,
}

impl CamTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            CamTarget::Pred => "pred",
            CamTarget::True => "true",
        }
    }
}

/// `epochs/NNNN/tiles/NN-<method>-<kind>.png`, kind = `pred`, `true` or `overlay`.
pub fn tile_png(run: &Path, epoch: u32, probe: usize, method: &str, kind: &str) -> PathBuf {
    epoch_dir(run, epoch)
        .join("tiles")
        .join(format!("{probe:02}-{method}-{kind}.png"))
}

/// Version of the run-folder format (the layout above and its records) this build writes
/// and reads, recorded as `meta.json`'s `format_version`. A run folder from before it was
/// recorded has none and is version 1; one of a higher version is refused ([`read_meta`]).
pub const RUN_FORMAT_VERSION: u32 = 1;

fn format_version_1() -> u32 {
    1
}

/// `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// [`RUN_FORMAT_VERSION`] of the moirelab that started the run (1 when absent).
    #[serde(default = "format_version_1")]
    pub format_version: u32,
    pub name: String,
    pub argv: Vec<String>,
    pub moirelab_version: String,
    pub tch_version: String,
    pub libtorch_version: String,
    pub device: String,
    pub threads: usize,
    pub seed: u64,
    pub git_rev: Option<String>,
    pub hostname: Option<String>,
    /// RFC 3339 UTC.
    pub started: String,
    pub finished: Option<String>,
    /// `running`, `finished`, `interrupted`, `failed: <reason>`.
    pub status: String,
    /// Every `started` of a resumed run, oldest first.
    #[serde(default)]
    pub resumed: Vec<String>,
    /// The model's classes (index = logit), so `eval`/`predict` work without the data set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The class whose probability is the attack score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_class: Option<String>,
    /// The data set's files that `on-bad-image = "skip"` left out (paths as the data set
    /// names them; `moirelab data check` says why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<String>,
}

/// Refuses a `meta.json` (parsed as plain JSON) written by a newer moirelab: its run folder
/// may hold records this build would misread. `run_dir` is named in the error.
fn check_format(run_dir: &Path, raw: &serde_json::Value) -> Result<(), CoreError> {
    let Some(v) = raw
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    else {
        return Ok(());
    };
    if v > u64::from(RUN_FORMAT_VERSION) {
        return Err(CoreError::Invalid {
            path: run_dir.to_path_buf(),
            msg: format!(
                "written by a newer moirelab (run format {v}, this build reads up to \
                 {RUN_FORMAT_VERSION})"
            ),
        });
    }
    Ok(())
}

/// `run_dir/meta.json`; a run of a newer format than [`RUN_FORMAT_VERSION`] is an error naming
/// the run folder. The version is read first, so a newer file that no longer parses as
/// [`RunMeta`] is refused for its version, not for a field.
pub fn read_meta(run_dir: &Path) -> Result<RunMeta, CoreError> {
    let path = run_dir.join(META_JSON);
    let text = crate::fsio::read_text_capped(&path, "a JSON file", crate::fsio::TEXT_MAX_BYTES)?;
    check_format(run_dir, &crate::fsio::parse_json(&text, &path)?)?;
    crate::fsio::parse_json(&text, &path)
}

/// Only the version check of [`read_meta`], for commands that open a run through its other
/// files: an absent or unreadable `meta.json` passes (its readers report it).
pub fn check_run_format(run_dir: &Path) -> Result<(), CoreError> {
    match crate::fsio::read_json::<serde_json::Value>(&run_dir.join(META_JSON)) {
        Ok(raw) => check_format(run_dir, &raw),
        Err(_) => Ok(()),
    }
}

/// Presentation-attack-detection metrics (ISO/IEC 30107-3 vocabulary) at one threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PadMetrics {
    /// Threshold on the attack score (attack iff score >= threshold).
    pub threshold: f64,
    pub apcer: f64,
    pub bpcer: f64,
    /// (APCER + BPCER) / 2 — common in papers, not ISO-conformant.
    pub acer_non_iso: f64,
    pub eer: f64,
    pub auc: f64,
    /// Smallest BPCER with APCER <= 5 % (None if no threshold reaches it).
    pub bpcer20: Option<f64>,
    pub bpcer100: Option<f64>,
    /// Share of presentations decided right at `threshold` (attack iff score >= threshold),
    /// the accuracy a deployment at this threshold sees. `accuracy` of [`EpochMetrics`] is
    /// the argmax's. `None` in runs written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_at_threshold: Option<f64>,
}

/// The error rates at a fixed threshold of a split that holds only one of the two PAD
/// classes (a folder of genuine photos, or of attacks): the rate of the class it has, the
/// other `None`. EER and AUC need both classes and have no counterpart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassRates {
    pub threshold: f64,
    pub apcer: Option<f64>,
    pub bpcer: Option<f64>,
}

/// Accuracy of one group, e.g. `screen|flag=A`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStat {
    pub n: u64,
    pub correct: u64,
    pub accuracy: f64,
    /// Aligned with the train-set shortcut (Some(true)), conflicting (Some(false)).
    pub aligned: Option<bool>,
}

/// One (epoch, split) of classification metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub split: String,
    pub step: u64,
    pub n: u64,
    pub loss: f64,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    /// confusion[true][pred]
    pub confusion: Vec<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<PadMetrics>,
    /// Instead of `pad` on a split with one of the two PAD classes, at a given threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_class: Option<OneClassRates>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupStat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_group_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_sec: Option<f64>,
    pub wall_s: f64,
}

/// Attention-in-region numbers of one map and one region (docs/GRADCAM.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionStats {
    /// Share of the map's mass inside the region.
    pub mass: f64,
    /// mass / (region area share); 1 = no preference.
    pub lift: f64,
    /// Pointing game hit (1 or 0; a mean over probes is a hit rate).
    pub pointing: f64,
    /// Relevance rank accuracy.
    pub rank: f64,
}

/// Mean region stats over probes for one (epoch, method, layer, target), overall and split by
/// the shortcut alignment of each probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CamMetrics {
    pub epoch: u32,
    pub method: String,
    /// Layer name, or several joined with `+` when maps were averaged across layers.
    pub layer: String,
    pub target: CamTarget,
    pub probes: u64,
    pub regions: BTreeMap<String, RegionStats>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aligned: BTreeMap<String, RegionStats>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conflicting: BTreeMap<String, RegionStats>,
    /// The same split by the class each map explains (the predicted class for `pred` maps,
    /// the true class for `true` maps), class name -> region -> stats. For a recapture
    /// detector the attack class is the informative one: `per_class["screen"]` of the `pred`
    /// maps says where the evidence lies when the model calls an image a screen recording,
    /// while maps of the bona-fide class explain an *absence* of artifacts and tend to light
    /// up the sharpest, most saturated edges of the card whatever the model learnt.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_class: BTreeMap<String, BTreeMap<String, RegionStats>>,
    /// Seconds spent on the dump (maps, metrics, images) this epoch.
    #[serde(default)]
    pub dump_s: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricsLine {
    Epoch(EpochMetrics),
    Cam(CamMetrics),
}

/// `summary.json`, written at the end of a run (and rewritten on resume).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub epochs: u32,
    /// Metric that selects `best.safetensors` (`train.monitor`), e.g. `val.balanced-accuracy`.
    pub best_metric: String,
    pub best_epoch: u32,
    /// NaN when the monitored value was never defined; JSON has no NaN, so it is written as
    /// `null` and read back as NaN.
    #[serde(deserialize_with = "f64_or_nan")]
    pub best_value: f64,
    /// Decision threshold on the attack score, fixed on val (its EER point, or
    /// `train.threshold-bpcer`) and applied to test.
    pub threshold: f64,
    /// How `threshold` was fixed; `None` in runs written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_source: Option<ThresholdSource>,
    pub val: Option<EpochMetrics>,
    pub test: Option<EpochMetrics>,
    /// Region stats of the best epoch's CAM dump (the last dump when that epoch has none),
    /// mean over probes: `method/target` and `method/target/class` -> region -> stats.
    #[serde(default)]
    pub attention: BTreeMap<String, BTreeMap<String, RegionStats>>,
    /// `[eval] extra` data sets at the best epoch: name -> the `metrics.jsonl` line of split
    /// `extra/<name>` (threshold: that epoch's val threshold, the run's final one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, EpochMetrics>,
    /// The shortcut attribute the training split plants most strongly (the one `aligned` /
    /// `conflicting` accuracies in `metrics.jsonl` are keyed to), e.g. `flag` or `hair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortcut: Option<String>,
    /// Every declared shortcut attribute at the best epoch's test split: its region and the
    /// aligned vs conflicting accuracy pooled from the group table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shortcuts: BTreeMap<String, ShortcutStats>,
    pub wall_s: f64,
}

/// Metrics `train.monitor` may name, with whether higher is better.
pub const MONITORS: &[(&str, bool)] = &[
    ("val.loss", false),
    ("val.accuracy", true),
    ("val.balanced-accuracy", true),
    ("val.eer", false),
    ("val.auc", true),
    ("val.worst-group-accuracy", true),
];

/// The value `monitor` reads from an epoch's line (val's, or train's for a run without a val
/// split); `None` when the line lacks it, it is not finite or the monitor is unknown.
pub fn monitor_value(monitor: &str, m: &EpochMetrics) -> Option<f64> {
    match monitor {
        "val.loss" => Some(m.loss),
        "val.accuracy" => Some(m.accuracy),
        "val.balanced-accuracy" => Some(m.balanced_accuracy),
        "val.eer" => m.pad.as_ref().map(|p| p.eer),
        "val.auc" => m.pad.as_ref().map(|p| p.auc),
        "val.worst-group-accuracy" => m.worst_group_accuracy,
        _ => None,
    }
    .filter(|v| v.is_finite())
}

/// Whether an epoch whose monitor value is `v` becomes the best one, the best so far being
/// `best`: a strictly better value does (ties keep the earlier epoch), the first defined one
/// does, and while none is defined every epoch does.
pub fn monitor_improves(monitor: &str, v: Option<f64>, best: Option<f64>) -> bool {
    let higher = MONITORS
        .iter()
        .find(|(m, _)| *m == monitor)
        .is_none_or(|(_, h)| *h);
    match (v, best) {
        (Some(v), Some(b)) => {
            if higher {
                v > b
            } else {
                v < b
            }
        }
        (Some(_), None) => true,
        (None, _) => best.is_none(),
    }
}

/// How a run's decision threshold ([`RunSummary::threshold`]) was fixed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum ThresholdSource {
    /// Val's EER point (APCER = BPCER).
    ValEer,
    /// On val, the lowest APCER with BPCER at most `max_bpcer` (`train.threshold-bpcer`).
    ValBpcer { max_bpcer: f64 },
    /// 0.5: val could not fix one (no val split, or not both bona fide and attack images in
    /// it).
    Default,
}

impl ThresholdSource {
    /// How the threshold was fixed, as a phrase ("fixed on val at its EER point").
    pub fn describe(&self) -> String {
        match self {
            ThresholdSource::ValEer => "fixed on val at its EER point".into(),
            ThresholdSource::ValBpcer { max_bpcer } => {
                format!("fixed on val at BPCER <= {max_bpcer} (train.threshold-bpcer)")
            }
            ThresholdSource::Default => "not fixed on val (no val split, or not both bona \
                 fide and attack images in it), so the default 0.5"
                .into(),
        }
    }
}

/// An `f64` that may have been written as `null` (serde_json writes NaN and ±inf so).
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Test accuracy split by one shortcut attribute (`RunSummary::shortcuts`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShortcutStats {
    /// Mask region that shows the attribute (`flag`, `face`), when the data set has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting_accuracy: Option<f64>,
}

/// Aligned and conflicting accuracy for one shortcut attribute, pooled from a group table
/// keyed `label|attr=value|…` ([`crate::dataset_format::ManifestRecord::group_key`]): a group is aligned when its `attr` value is the one
/// `pairs[label]` names. Groups without the attribute or with an unknown label are skipped;
/// a side without samples is `None`.
pub fn shortcut_accuracy(
    groups: &BTreeMap<String, GroupStat>,
    attr: &str,
    pairs: &BTreeMap<String, String>,
) -> (Option<f64>, Option<f64>) {
    let mut sums = [(0u64, 0u64); 2]; // [conflicting, aligned]: (n, correct)
    for (key, g) in groups {
        let mut parts = key.split('|');
        let label = parts.next().unwrap_or_default();
        let value = parts.find_map(|p| p.strip_prefix(attr)?.strip_prefix('='));
        if let (Some(want), Some(have)) = (pairs.get(label), value) {
            let side = &mut sums[(want == have) as usize];
            side.0 += g.n;
            side.1 += g.correct;
        }
    }
    let acc = |(n, c): (u64, u64)| (n > 0).then(|| c as f64 / n as f64);
    (acc(sums[1]), acc(sums[0]))
}

/// Split name of an `[eval] extra` data set in `metrics.jsonl` and TensorBoard.
pub fn extra_split(name: &str) -> String {
    format!("{EXTRA_PREFIX}{name}")
}

/// Prefix of the splits of `[eval] extra` data sets (`extra/<name>`).
pub const EXTRA_PREFIX: &str = "extra/";

/// One probe row of `epochs/NNNN/probes.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// Row in the grid (0-based) = index into `probes/NN.png`.
    pub index: usize,
    /// Stable id: the image path relative to the data-set root.
    pub id: String,
    /// Content hash of the data-set image's decoded pixels (16 hex digits), so that runs on
    /// data sets holding other pictures under the same path can be told apart. `None` in
    /// dumps written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_hash: Option<String>,
    pub true_class: usize,
    pub pred_class: usize,
    pub probs: Vec<f64>,
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    #[serde(default)]
    pub aligned: Option<bool>,
    /// "<method>/<target>" -> region -> stats (empty without masks).
    #[serde(default)]
    pub regions: BTreeMap<String, BTreeMap<String, RegionStats>>,
}

/// `epochs/NNNN/probes.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbesFile {
    pub epoch: u32,
    pub classes: Vec<String>,
    pub methods: Vec<String>,
    pub layers: Vec<String>,
    pub image_size: [u32; 2],
    pub colormap: String,
    pub probes: Vec<ProbeRecord>,
}

/// One map strip of [`MapsFile`]: an 8-bit grayscale PNG of `P` maps of `height` rows each,
/// stacked top to bottom in probe order. Row `i` holds `q = round(255·(v − min[i]) /
/// (max[i] − min[i]))` of the raw (ReLU'd, upsampled) map `v`, so `v ≈ min[i] + q/255 ·
/// (max[i] − min[i])`; a constant map is all zeros.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MapStrip {
    /// Path relative to the epoch folder, e.g. `maps/gradcam-pred.png`.
    pub file: String,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

/// `epochs/NNNN/maps.json`: the raw maps of one dump in compact form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MapsFile {
    pub epoch: u32,
    pub width: u32,
    pub height: u32,
    /// Layer name (several joined with `+`).
    pub layer: String,
    /// `"<method>/<pred|true>"` -> strip.
    pub maps: BTreeMap<String, MapStrip>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_without_a_best_value_round_trips() {
        let s = RunSummary {
            best_value: f64::NAN,
            ..Default::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"best_value\":null"), "{text}");
        let back: RunSummary = serde_json::from_str(&text).unwrap();
        assert!(back.best_value.is_nan());
        let s = RunSummary {
            best_value: 0.75,
            ..Default::default()
        };
        let back: RunSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn shortcut_accuracy_pools_groups_by_any_attribute() {
        let g = |n, correct| GroupStat {
            n,
            correct,
            accuracy: correct as f64 / n as f64,
            aligned: None,
        };
        let groups: BTreeMap<String, GroupStat> = [
            ("screen|flag=A|hair=dark", g(10, 9)),
            ("screen|flag=B|hair=dark", g(10, 8)),
            ("screen|flag=A|hair=light", g(10, 3)),
            ("direct|flag=B|hair=light", g(10, 10)),
            ("direct|flag=A|hair=dark", g(10, 2)),
            ("other|flag=A", g(5, 0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let pairs = |s: &str, d: &str| -> BTreeMap<String, String> {
            [("screen".into(), s.into()), ("direct".into(), d.into())].into()
        };
        // hair: aligned = screen/dark + direct/light = 9+8+10 of 30; conflicting 3+2 of 20.
        let (a, c) = shortcut_accuracy(&groups, "hair", &pairs("dark", "light"));
        assert_eq!((a, c), (Some(27.0 / 30.0), Some(5.0 / 20.0)));
        // flag: aligned = screen/A + direct/B = 9+3+10 of 30; conflicting 8+2 of 20.
        let (a, c) = shortcut_accuracy(&groups, "flag", &pairs("A", "B"));
        assert_eq!((a, c), (Some(22.0 / 30.0), Some(10.0 / 20.0)));
        // An attribute no group carries, or a prefix of one, pools nothing.
        assert_eq!(
            shortcut_accuracy(&groups, "fla", &pairs("A", "B")),
            (None, None)
        );
    }

    #[test]
    fn metrics_lines_are_tagged_and_round_trip() {
        let e = MetricsLine::Epoch(EpochMetrics {
            epoch: 1,
            split: "val".into(),
            ..Default::default()
        });
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.starts_with("{\"kind\":\"epoch\""), "{s}");
        assert_eq!(serde_json::from_str::<MetricsLine>(&s).unwrap(), e);
        let c = MetricsLine::Cam(CamMetrics {
            epoch: 2,
            method: "gradcam".into(),
            ..Default::default()
        });
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"kind\":\"cam\"") && s.contains("\"target\":\"pred\""));
        assert_eq!(serde_json::from_str::<MetricsLine>(&s).unwrap(), c);
    }

    #[test]
    fn run_names_are_single_plain_folder_names() {
        for ok in ["demo-fixed", "run 2", "a.b", "ü-lauf", "x..y"] {
            assert!(check_run_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "/abs",
            "a\\b",
            "run/",
            "tab\there",
            " x",
            "x ",
            "nul\0",
        ] {
            let e = check_run_name(bad).unwrap_err().to_string();
            assert!(e.starts_with("run name '"), "{bad:?}: {e}");
        }
        assert!(check_run_name(&"x".repeat(201)).is_err());
        assert!(check_run_name(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn meta_json_of_a_newer_run_format_is_refused_naming_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("x");
        std::fs::create_dir_all(&run).unwrap();
        let mut meta = serde_json::to_value(RunMeta {
            format_version: RUN_FORMAT_VERSION,
            name: "x".into(),
            ..Default::default()
        })
        .unwrap();
        let write = |v: &serde_json::Value| {
            std::fs::write(run.join(META_JSON), serde_json::to_string(v).unwrap()).unwrap()
        };
        write(&meta);
        assert_eq!(read_meta(&run).unwrap().format_version, RUN_FORMAT_VERSION);
        check_run_format(&run).unwrap();
        // Older runs have no version: they are version 1.
        meta.as_object_mut().unwrap().remove("format_version");
        write(&meta);
        assert_eq!(read_meta(&run).unwrap().format_version, 1);
        // A newer one, with a field this build does not know and one it reads otherwise.
        meta["format_version"] = (RUN_FORMAT_VERSION + 2).into();
        meta["new_field"] = "x".into();
        meta["threads"] = "many".into();
        write(&meta);
        let want = format!(
            "{}: written by a newer moirelab (run format {}, this build reads up to {})",
            run.display(),
            RUN_FORMAT_VERSION + 2,
            RUN_FORMAT_VERSION
        );
        assert_eq!(read_meta(&run).unwrap_err().to_string(), want);
        assert_eq!(check_run_format(&run).unwrap_err().to_string(), want);
        // No meta.json or a torn one: the version check leaves them to their readers.
        std::fs::write(run.join(META_JSON), "{").unwrap();
        check_run_format(&run).unwrap();
        assert!(read_meta(&run).is_err());
        std::fs::remove_file(run.join(META_JSON)).unwrap();
        check_run_format(&run).unwrap();
    }

    #[test]
    fn paths_follow_the_layout() {
        let r = Path::new("runs/x");
        assert_eq!(epoch_dir(r, 7), Path::new("runs/x/epochs/0007"));
        assert_eq!(
            tile_png(r, 3, 1, "gradcam", "pred"),
            Path::new("runs/x/epochs/0003/tiles/01-gradcam-pred.png")
        );
        assert_eq!(probe_input_png(r, 12), Path::new("runs/x/probes/12.png"));
    }
}
