//! Test support for the moirelab crates: where the repository's `scripts/` live and which
//! Python (the venv `scripts/env.sh` sets up, with PyTorch) runs the parity checks, and where
//! a test binary keeps the files its tests share.
//!
//! A dev-dependency only; it panics with instructions where a test would otherwise pass
//! without checking anything.

pub mod png;

use std::path::{Path, PathBuf};

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

/// A fresh folder `<base>/<prefix><this process's id>` for files a test binary shares between
/// its tests through a static (never dropped). Folders of the same prefix whose process has
/// ended are deleted first, so repeated test runs leave one folder, not one each. `base` is
/// the binary's `env!("CARGO_TARGET_TMPDIR")`.
pub fn process_dir(base: &Path, prefix: &str) -> PathBuf {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ended = name
            .strip_prefix(prefix)
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if ended {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
