//! A safetensors weights file checked against a model's variables: names, shapes, kinds and
//! values ([`WeightsError`]). `model.init` ([`crate::load_pretrained`]) and a run's own
//! checkpoints ([`load_weights`]: moirelab-train's `load_run`, resume and the final
//! evaluation) share these checks, so a file that does not fit is one message naming the
//! tensor instead of a libtorch error or a model that scores NaN.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// How many names an error lists before "…".
const LIST_MAX: usize = 8;

/// What is wrong with a weights file for a model. Messages name the tensor, not the file:
/// the caller says which file it was loading and what for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    #[error("no such file")]
    NoFile,
    /// A FIFO, device or folder: never opened (a FIFO would block).
    #[error("not a regular file")]
    NotAFile,
    #[error("not a readable safetensors file ({0})")]
    Unreadable(String),
    /// Keys the model has no variable for.
    #[error("{} tensor(s) that the model does not have: {}", .0.len(), listing(.0))]
    Unknown(Vec<String>),
    /// Variables of the model the file has no tensor for.
    #[error("{} of the model's tensors missing: {}", .0.len(), listing(.0))]
    Missing(Vec<String>),
    #[error("tensor '{name}' has shape {found:?}, the model expects {expected:?}")]
    Shape {
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    /// An integer, boolean or complex tensor where the model holds floating point.
    #[error("tensor '{name}' is {found:?}, expected floating point (the model's is {expected:?})")]
    Kind {
        name: String,
        found: Kind,
        expected: Kind,
    },
    /// NaN or ±inf in the file, or a finite value beyond the model's precision (an f64 above
    /// f32's range): every score of such a model can be NaN.
    #[error("tensor '{name}' holds non-finite values (NaN or infinity{})", converted_note(*.overflow))]
    NonFinite { name: String, overflow: bool },
    #[error("tensor '{name}': {msg}")]
    Torch { name: String, msg: String },
}

impl WeightsError {
    /// Whether the file describes another model (other names or shapes), as opposed to
    /// the right model with unusable values.
    pub fn is_structural(&self) -> bool {
        matches!(
            self,
            WeightsError::Unknown(_) | WeightsError::Missing(_) | WeightsError::Shape { .. }
        )
    }
}

fn converted_note(overflow: bool) -> &'static str {
    if overflow {
        " once converted to the model's precision"
    } else {
        ""
    }
}

/// Up to [`LIST_MAX`] names, comma-separated, "…" for the rest.
pub(crate) fn listing(names: &[String]) -> String {
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

/// The first line of a libtorch error: the C++ stack frames that follow it ("Exception
/// raised from …", `frame #0: …`) mean nothing to a user and run to thousands of characters.
pub fn torch_error_line(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    without_torch_frames(&s)
        .lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string()
}

/// `message` up to libtorch's C++ stack frames ("Exception raised from …"), which mean
/// nothing to a user; the whole message when it has none.
pub fn without_torch_frames(message: &str) -> &str {
    message
        .split("Exception raised from")
        .next()
        .unwrap_or("")
        .trim_end()
}

/// The tensors of a safetensors file by name.
pub(crate) fn read(path: &Path) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    match std::fs::metadata(path) {
        Err(_) => return Err(WeightsError::NoFile),
        Ok(m) if !m.is_file() => return Err(WeightsError::NotAFile),
        Ok(_) => {}
    }
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| WeightsError::Unreadable(torch_error_line(&e)))?
        .into_iter()
        .collect())
}

/// The model's variables, sorted by name.
pub(crate) fn variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Keys of `file` that are not variables of the model.
pub(crate) fn unknown_keys(
    file: &BTreeMap<String, Tensor>,
    vars: &[(String, Tensor)],
) -> Vec<String> {
    let ours: BTreeSet<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    file.keys()
        .filter(|k| !ours.contains(k.as_str()))
        .cloned()
        .collect()
}

/// Variables of the model, other than those `optional` accepts, that `file` lacks.
pub(crate) fn missing_keys(
    file: &BTreeMap<String, Tensor>,
    vars: &[(String, Tensor)],
    optional: impl Fn(&str) -> bool,
) -> Vec<String> {
    vars.iter()
        .map(|(k, _)| k)
        .filter(|k| !optional(k) && !file.contains_key(k.as_str()))
        .cloned()
        .collect()
}

pub(crate) fn check_shape(name: &str, src: &Tensor, var: &Tensor) -> Result<(), WeightsError> {
    if src.size() == var.size() {
        return Ok(());
    }
    Err(WeightsError::Shape {
        name: name.to_string(),
        found: src.size(),
        expected: var.size(),
    })
}

/// The file's tensor `src` in the kind and on the device of the model's variable `var`.
/// Floating-point tensors of any precision (f16, bf16, f64) are converted; integer, boolean
/// and complex ones are refused, as are values that are not finite once converted.
pub(crate) fn converted(name: &str, src: &Tensor, var: &Tensor) -> Result<Tensor, WeightsError> {
    if !is_float(src) && is_float(var) {
        return Err(WeightsError::Kind {
            name: name.to_string(),
            found: src.kind(),
            expected: var.kind(),
        });
    }
    let torch = |e: tch::TchError| WeightsError::Torch {
        name: name.to_string(),
        msg: torch_error_line(&e),
    };
    let out = src.f_to_kind(var.kind()).map_err(torch)?;
    if is_float(&out) && !all_finite(&out).map_err(torch)? {
        return Err(WeightsError::NonFinite {
            name: name.to_string(),
            overflow: all_finite(src).map_err(torch)?,
        });
    }
    out.f_to_device(var.device()).map_err(torch)
}

/// Copy `src` (already [`converted`]) into the model's variable `var`.
pub(crate) fn copy_into(name: &str, var: &mut Tensor, src: &Tensor) -> Result<(), WeightsError> {
    tch::no_grad(|| var.f_copy_(src)).map_err(|e| WeightsError::Torch {
        name: name.to_string(),
        msg: torch_error_line(&e),
    })
}

/// Load a weights file written for exactly this model (a run's `best.safetensors` or
/// `last.safetensors`) into `vs`: the file must hold every variable and nothing else, each
/// with the variable's shape; floating-point tensors of another precision are converted to
/// the model's (see [`converted`]), and every value must be finite. Shapes are checked for
/// the whole file before kinds and values, and nothing is copied unless the whole file
/// passes. Returns the number of tensors loaded.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<usize, WeightsError> {
    let file = read(path)?;
    let mut vars = variables(vs);
    let unknown = unknown_keys(&file, &vars);
    if !unknown.is_empty() {
        return Err(WeightsError::Unknown(unknown));
    }
    let missing = missing_keys(&file, &vars, |_| false);
    if !missing.is_empty() {
        return Err(WeightsError::Missing(missing));
    }
    let mut pairs = Vec::with_capacity(vars.len());
    for (k, var) in &mut vars {
        let src = file
            .get(k.as_str())
            .ok_or_else(|| WeightsError::Missing(vec![k.clone()]))?;
        check_shape(k, src, var)?;
        pairs.push((k.as_str(), src, var));
    }
    let ready = pairs
        .iter()
        .map(|(k, src, var)| converted(k, src, var))
        .collect::<Result<Vec<Tensor>, WeightsError>>()?;
    for ((k, _, var), t) in pairs.iter_mut().zip(&ready) {
        copy_into(k, var, t)?;
    }
    Ok(ready.len())
}

/// Whether a tensor holds floating-point values (a state dict's f32, f16, bf16 or f64).
pub(crate) fn is_float(t: &Tensor) -> bool {
    matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

/// Whether every value of a floating-point tensor is finite (true for an empty one).
fn all_finite(t: &Tensor) -> Result<bool, tch::TchError> {
    Ok(t.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fifo_or_folder_is_not_a_regular_file_and_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("init.safetensors");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = super::read(&fifo).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
        assert_eq!(
            super::read(dir.path()).unwrap_err().to_string(),
            "not a regular file"
        );
        let e = super::read(&dir.path().join("none")).unwrap_err();
        assert_eq!(e.to_string(), "no such file");
    }
}
