//! `model.init` (initial weights from a PyTorch `state_dict` saved as safetensors, e.g.
//! torchvision's ImageNet weights) and `model.freeze` (first layers not trained).

use crate::weights::{self, WeightsError};
use crate::{Arch, ModelConfig, ModelError};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Tensor};

/// Buffers PyTorch keeps that moirelab's BatchNorm has no use for (eval mode uses the running
/// statistics only, and momentum is fixed).
const IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// What [`load_pretrained`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitReport {
    /// Tensors copied from the file.
    pub loaded: usize,
    /// Final-classifier tensors left freshly initialised, with the file's shape (it did not
    /// fit the class count, or the file has no classifier).
    pub head_kept: Vec<(String, Option<Vec<i64>>)>,
}

impl std::fmt::Display for InitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tensors loaded", self.loaded)?;
        if !self.head_kept.is_empty() {
            let kept: Vec<String> = self
                .head_kept
                .iter()
                .map(|(k, s)| match s {
                    Some(s) => format!("{k} (file {s:?})"),
                    None => format!("{k} (not in file)"),
                })
                .collect();
            write!(f, "; classifier freshly initialised: {}", kept.join(", "))?;
        }
        Ok(())
    }
}

/// Copy the tensors of the safetensors file `path` into `vs` (the model of `cfg`). Every
/// parameter and BatchNorm statistic must be in the file with the same shape, except the
/// final classifier (`Arch::classifier_prefix`): when its shape differs (1000 ImageNet
/// classes vs. 2) or it is absent, it keeps its fresh initialisation and the report says
/// so. Keys the model does not have are an error (PyTorch's `num_batches_tracked` buffers are
/// ignored). Floating-point tensors of any precision are converted to the model's; integer
/// ones and values that are not finite are errors ([`crate::weights`] has the checks).
pub fn load_pretrained(
    vs: &mut nn::VarStore,
    cfg: &ModelConfig,
    path: &Path,
) -> Result<InitReport, ModelError> {
    let bad = |e: WeightsError| {
        let msg = match e {
            WeightsError::Unknown(keys) => format!(
                "{} key(s) that arch '{}' does not have: {}",
                keys.len(),
                cfg.arch,
                weights::listing(&keys)
            ),
            e => e.to_string(),
        };
        ModelError::Config(format!("model.init {}: {msg}", path.display()))
    };
    let file: BTreeMap<String, Tensor> = weights::read(path)
        .map_err(bad)?
        .into_iter()
        .filter(|(k, _)| !k.ends_with(IGNORED_SUFFIX))
        .collect();
    let head = cfg.arch.classifier_prefix();
    let mut vars = weights::variables(vs);
    let unknown = weights::unknown_keys(&file, &vars);
    if !unknown.is_empty() {
        return Err(bad(WeightsError::Unknown(unknown)));
    }
    let missing = weights::missing_keys(&file, &vars, |k| k.starts_with(head));
    if !missing.is_empty() {
        return Err(bad(WeightsError::Missing(missing)));
    }
    // The head is loaded only if all of it fits.
    let head_fits = vars
        .iter()
        .filter(|(k, _)| k.starts_with(head))
        .all(|(k, v)| file.get(k).is_some_and(|t| t.size() == v.size()));
    let mut report = InitReport::default();
    for (k, var) in &mut vars {
        let Some(src) = file.get(k.as_str()) else {
            report.head_kept.push((k.clone(), None));
            continue;
        };
        if k.starts_with(head) && !head_fits {
            report.head_kept.push((k.clone(), Some(src.size())));
            continue;
        }
        weights::check_shape(k, src, var).map_err(bad)?;
        let src = weights::converted(k, src, var).map_err(bad)?;
        weights::copy_into(k, var, &src).map_err(bad)?;
        report.loaded += 1;
    }
    Ok(report)
}

/// Parameter-name prefixes `model.freeze = value` freezes for `cfg`'s architecture; an
/// unknown value is an error listing the valid ones.
pub fn freeze_prefixes(cfg: &ModelConfig, value: &str) -> Result<Vec<String>, ModelError> {
    let (valid, prefixes): (Vec<String>, Vec<Vec<String>>) = match cfg.arch {
        Arch::Resnet | Arch::Resnet18 => {
            let depth = if cfg.arch == Arch::Resnet18 {
                4
            } else {
                cfg.depth
            };
            let mut valid = vec!["stem".to_string()];
            let mut sets = vec![vec!["conv1.".to_string(), "bn1.".to_string()]];
            for s in 1..=depth {
                valid.push(format!("layer{s}"));
                let mut p = sets[sets.len() - 1].clone();
                p.push(format!("layer{s}."));
                sets.push(p);
            }
            (valid, sets)
        }
        Arch::Mobilenet | Arch::MobilenetV3Small => {
            // Block count: the stem, the blocks, the final conv (all named `features.<i>`).
            let n = if cfg.arch == Arch::MobilenetV3Small {
                13
            } else {
                let repeats = [1, 2, 3, 4, 3, 3, 1];
                2 + repeats[..cfg.depth.clamp(0, 7) as usize]
                    .iter()
                    .sum::<i64>()
            };
            let mut valid = vec!["stem".to_string()];
            let mut sets = vec![vec!["features.0.".to_string()]];
            for i in 0..n {
                valid.push(format!("features.{i}"));
                sets.push((0..=i).map(|j| format!("features.{j}.")).collect());
            }
            (valid, sets)
        }
        Arch::Shallow | Arch::Vgg => {
            return Err(ModelError::Config(format!(
            "model.freeze applies to resnet, resnet18, mobilenet and mobilenet_v3_small, not '{}'",
            cfg.arch
        )))
        }
    };
    if value == "none" {
        return Ok(Vec::new());
    }
    valid
        .iter()
        .position(|v| v == value)
        .map(|i| prefixes[i].clone())
        .ok_or_else(|| {
            ModelError::Config(format!(
                "model.freeze = \"{value}\" is unknown for arch '{}'; valid: none, {}",
                cfg.arch,
                valid.join(", ")
            ))
        })
}

/// Apply `model.freeze`: the matching parameters stop requiring gradients (so the trainer's
/// optimizer never sees them). Returns how many tensors were frozen.
pub fn apply_freeze(vs: &nn::VarStore, cfg: &ModelConfig) -> Result<usize, ModelError> {
    let Some(value) = &cfg.freeze else {
        return Ok(0);
    };
    let prefixes = freeze_prefixes(cfg, value)?;
    let mut n = 0;
    for (k, t) in vs.variables() {
        if prefixes.iter().any(|p| k.starts_with(p.as_str())) && t.requires_grad() {
            let _ = t.set_requires_grad(false);
            n += 1;
        }
    }
    Ok(n)
}
