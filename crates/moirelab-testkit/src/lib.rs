//! Test support for the moirelab crates: where the repository's `scripts/` live and which
//! Python (the venv `scripts/env.sh` sets up, with PyTorch) runs the parity checks.
//!
//! A dev-dependency only; it panics with instructions where a test would otherwise pass
//! without checking anything.

pub mod png;

use std::path::PathBuf;

/// `scripts/NAME` in the repository the test is running from.
pub fn script(name: &str) -> PathBuf {
    scripts_dir().join(name)
}

/// A cross-check script of `scripts/parity/` (the PyTorch twin and the readers that compare
/// moirelab with PyTorch, pytorch-grad-cam and TensorBoard).
pub fn parity_script(name: &str) -> PathBuf {
    parity_dir().join(name)
}

/// `scripts/parity/`: also the folder to put on `sys.path` for `import moirelab_torch`.
pub fn parity_dir() -> PathBuf {
    scripts_dir().join("parity")
}

/// The repository's `scripts/` folder.
///
/// Cargo sets `CARGO_MANIFEST_DIR` when it runs a test; that value is read first because the
/// compile-time one goes stale when a target folder shared between checkouts (the CI cache)
/// reuses a test binary built in another clone.
pub fn scripts_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../../scripts")
}

/// The venv's python from `MOIRELAB_PYTHON`, or `None` when the caller opted out of the
/// PyTorch checks with `MOIRELAB_SKIP_PYTHON=1`.
///
/// # Panics
/// When neither is set: a parity test must not pass silently because the environment was not
/// prepared. `what` names the check in the message.
pub fn python(what: &str) -> Option<String> {
    if std::env::var("MOIRELAB_SKIP_PYTHON").as_deref() == Ok("1") {
        return None;
    }
    match std::env::var("MOIRELAB_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => panic!(
            "MOIRELAB_PYTHON is not set: run the tests through scripts/test.sh (it sources \
             scripts/env.sh and installs the Python packages), or set MOIRELAB_SKIP_PYTHON=1 \
             to skip {what}"
        ),
    }
}
