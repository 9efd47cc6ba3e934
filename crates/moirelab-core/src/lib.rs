//! Shared, tch-free building blocks of moirelab.
//!
//! This crate owns the *formats* that several crates read or write: the data-set files
//! (`dataset.json`, `manifest.jsonl`, region-mask encoding), the run-folder records
//! (`metrics.jsonl` lines, `probes.json`, `meta.json`), atomic file writes, the small seeded
//! RNG every stochastic component uses so results do not depend on a third-party RNG crate's
//! version, the JPEG model (the lossy steps of a 4:4:4 or 4:2:0 round trip) that the
//! generator's camera and `eval --perturb` share, and the CSV quoting rule. Its only I/O
//! policies are "write to a temp file, then rename" and the data-set folder locks of
//! `dirlock` (readers share a folder, a writer replacing it must have it alone). It never
//! prints.

pub mod csv;
pub mod dataset_format;
pub mod dirlock;
pub mod fsio;
pub mod jpeg;
pub mod mask;
pub mod rng;
pub mod run;

/// Errors of the shared format helpers. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {msg}")]
    Parse {
        path: std::path::PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Invalid {
        path: std::path::PathBuf,
        msg: String,
    },
    /// A run name that is not a single ordinary folder name; `why` is a phrase.
    #[error("run name '{}' {why}", name.escape_debug())]
    RunName { name: String, why: &'static str },
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
