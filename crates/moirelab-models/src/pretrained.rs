//! `model.init` (initial weights from a PyTorch `state_dict` saved as safetensors, e.g.
//! torchvision's ImageNet weights) and `model.freeze` (first layers not trained).

use crate::{Arch, ModelConfig, ModelError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// Buffers PyTorch keeps that moirelab's BatchNorm has no use for (eval mode uses the running
/// statistics only, and momentum is fixed).
const IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// How many names an error lists before "…".
const LIST_MAX: usize = 8;

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

fn listing(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIST_MAX {
        s.push_str(", …");
    }
    s
}

/// Copy the tensors of the safetensors file `path` into `vs` (the model of `cfg`). Every
/// parameter and BatchNorm statistic must be in the file with the same shape, except the
/// final classifier (`Arch::classifier_prefix`): when its shape differs (1000 ImageNet
/// classes vs. 2) or it is absent, it keeps its fresh initialisation and the report says
/// so. Keys the model does not have are an error (PyTorch's `num_batches_tracked` buffers are
/// ignored). Floating-point tensors of any precision are converted to the model's.
pub fn load_pretrained(
    vs: &mut nn::VarStore,
    cfg: &ModelConfig,
    path: &Path,
) -> Result<InitReport, ModelError> {
    let bad = |msg: String| ModelError::Config(format!("model.init {}: {msg}", path.display()));
    if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?
        .into_iter()
        .filter(|(k, _)| !k.ends_with(IGNORED_SUFFIX))
        .collect();
    let head = cfg.arch.classifier_prefix();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let ours: BTreeSet<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    let unknown: Vec<String> = file
        .keys()
        .filter(|k| !ours.contains(k.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(bad(format!(
            "{} key(s) that arch '{}' does not have: {}",
            unknown.len(),
            cfg.arch,
            listing(&unknown)
        )));
    }
    let missing: Vec<String> = vars
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with(head) && !file.contains_key(k.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "{} of the model's tensors missing: {}",
            missing.len(),
            listing(&missing)
        )));
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
        if src.size() != var.size() {
            return Err(bad(format!(
                "tensor '{k}' has shape {:?}, the model expects {:?}",
                src.size(),
                var.size()
            )));
        }
        if !is_float(src) && is_float(var) {
            return Err(bad(format!(
                "tensor '{k}' has kind {:?}, expected floating point",
                src.kind()
            )));
        }
        let src = src.to_kind(var.kind()).to_device(var.device());
        tch::no_grad(|| var.f_copy_(&src))?;
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

/// Whether a tensor holds floating-point values (a state dict's f32, f16, bf16 or f64).
fn is_float(t: &Tensor) -> bool {
    matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}
