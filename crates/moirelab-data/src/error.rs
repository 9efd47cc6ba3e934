//! The crate's one error type. Every variant names the file, key or value it is about, and
//! renders as a single line.

use std::path::PathBuf;

/// Errors of opening, validating and loading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A `[data]` config value is invalid.
    #[error("[data] {key}: {msg}")]
    Config { key: String, msg: String },
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest (JSONL or CSV) line is malformed.
    #[error("{path}: line {line}: {msg}")]
    Manifest {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// The folder does not look like any supported layout, or holds no usable images.
    #[error("{root}: {msg}")]
    Layout { root: PathBuf, msg: String },
    /// Validation found errors and `on-bad-image = "error"`.
    #[error("{count} bad file(s) in {root} (set [data] on-bad-image = \"skip\" to drop them): {listing}")]
    BadImages {
        root: PathBuf,
        count: usize,
        listing: String,
    },
    /// One image file could not be decoded (for `load_image_file`).
    #[error("{path}: {msg}")]
    Decode { path: PathBuf, msg: String },
    /// The decode cache file is unusable.
    #[error("decode cache {path}: {msg}")]
    Cache { path: PathBuf, msg: String },
    /// A caller asked for something that does not exist (split, index).
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Core(#[from] moirelab_core::CoreError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }

    pub(crate) fn config(key: &str, msg: impl Into<String>) -> DataError {
        DataError::Config {
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}
