//! One writer per data set at a time. Two `train`s started together on the same missing data
//! set, or a `gen-data --force` while a `train` generates that folder, would otherwise both
//! render it, and the second rename into place fails (the folder is no longer empty) after
//! minutes of work. The writer holds an advisory lock (`flock`) on `.<name>.lock` beside the
//! data set; a second writer tries it again every 0.1 s (so that its caller can give up, on
//! Ctrl-C) and can then see that the data set now exists.
//!
//! The lock file carries the holder's process id for the waiter's message, and the holder
//! deletes it before it lets go, so nothing is left beside the data sets. A writer that gets
//! the lock on a file already deleted (its holder deleted it between this writer's open and
//! lock) opens the path again. The operating system releases the lock of a killed
//! process, so a crash never leaves a data set locked. Where the file cannot be created or
//! the file system has no locks, writing goes on unlocked, as it did before locks.

use crate::SynthError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The right to write the data set at [`WriteLock::out`], held until dropped.
#[derive(Debug)]
pub struct WriteLock {
    out: PathBuf,
    path: PathBuf,
    /// `None` where no lock could be taken (see the module docs).
    file: Option<File>,
}

impl WriteLock {
    /// How often a waiting writer tries the lock again.
    pub const POLL: std::time::Duration = std::time::Duration::from_millis(100);

    /// Takes the lock for writing the data set `out`, waiting while another process (or
    /// thread) holds it. While it waits, `waiting` is called every [`WriteLock::POLL`] with
    /// the holder's process id (when the lock file names one); it returns `false` to stop
    /// waiting, and then the result is [`SynthError::StoppedWaiting`] (a Ctrl-C must not
    /// hang behind a writer that never finishes).
    pub fn acquire(
        out: &Path,
        waiting: &mut dyn FnMut(Option<u32>) -> bool,
    ) -> Result<Self, SynthError> {
        let (parent, name) = parent_and_name(out)?;
        std::fs::create_dir_all(parent).map_err(|source| SynthError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        let path = parent.join(format!(".{name}.lock"));
        let unlocked = |path: PathBuf| Self {
            out: out.to_path_buf(),
            path,
            file: None,
        };
        loop {
            let Ok(mut file) = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            else {
                return Ok(unlocked(path));
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = holder(&path);
                    if !waiting(holder) {
                        return Err(SynthError::StoppedWaiting {
                            path: out.to_path_buf(),
                            holder,
                        });
                    }
                    std::thread::sleep(Self::POLL);
                    continue;
                }
                Err(TryLockError::Error(_)) => return Ok(unlocked(path)),
            }
            if moirelab_core::dirlock::still_named(&file, &path) {
                // Best effort: the id only serves the next waiter's message.
                let _ = file
                    .set_len(0)
                    .and_then(|()| write!(file, "{}", std::process::id()));
                return Ok(Self {
                    out: out.to_path_buf(),
                    path,
                    file: Some(file),
                });
            }
        }
    }

    /// The data set folder this lock is for.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Whether a lock is really held (false where the file system offers none).
    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // Delete first, then let go (closing the file releases the lock): a waiter that gets
        // the lock afterwards finds the path gone and starts again on a fresh file.
        if let Some(file) = self.file.take() {
            let _ = std::fs::remove_file(&self.path);
            drop(file);
        }
    }
}

/// `out`'s parent folder (`.` for a bare name) and its own name.
pub(super) fn parent_and_name(out: &Path) -> Result<(&Path, String), SynthError> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SynthError::Invalid {
            what: "out".into(),
            msg: format!("{} has no folder name", out.display()),
        })?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((parent, name))
}

/// The process id the lock file at `path` names, if it names one.
fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
