//! Housekeeping of the shared decode-cache folder `<cache root>/decode/`, which holds one
//! folder per data set (`cache::default_dir`). Without it that folder only grows: every data
//! set ever opened keeps its cache, temporary and deleted ones included (on the machine this
//! was written on it had reached 32 GB and filled the disk under a running benchmark).
//!
//! Each time a data set's default cache folder is opened:
//! 1. the folder records which data set it belongs to and when it was last used
//!    ([`OWNER`], rewritten, so its modification time is the last use);
//! 2. folders whose data set no longer exists are deleted;
//! 3. while the decode folder holds more than the cap (`MOIRELAB_CACHE_MAX_GB`, default
//!    [`DEFAULT_MAX_GB`]; 0 turns the cap off), the least recently used folders are deleted,
//!    never the one being opened and never one used within [`GRACE`] (another run may be
//!    reading it; on Unix a deleted, memory-mapped cache stays readable by the runs that have
//!    it open anyway).
//!
//! A folder set with `[data] cache-dir` is the user's and is never tidied.

use crate::DataError;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// File in each cache folder holding the canonical path of its data set.
const OWNER: &str = "root.txt";
/// Default size cap of the decode folder, in gigabytes (10⁹ bytes).
const DEFAULT_MAX_GB: f64 = 20.0;
/// Folders used more recently than this are never evicted for size.
const GRACE: Duration = Duration::from_secs(3600);
/// The environment variable that sets the cap.
const MAX_ENV: &str = "MOIRELAB_CACHE_MAX_GB";

/// The cap on the decode folder from `MOIRELAB_CACHE_MAX_GB` (`None`: no cap).
fn max_bytes_from_env() -> Result<Option<u64>, DataError> {
    let Some(raw) = std::env::var_os(MAX_ENV) else {
        return Ok(Some(gb(DEFAULT_MAX_GB)));
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok((x > 0.0).then(|| gb(x))),
        _ => Err(DataError::Request(format!(
            "{MAX_ENV}={text}: expected a size in gigabytes (0 = no cap)"
        ))),
    }
}

fn gb(x: f64) -> u64 {
    (x * 1e9) as u64
}

/// Opening the shared cache folder `dir` of the data set at `root`: record the use, then tidy
/// the decode folder around it.
pub(crate) fn opening(dir: &Path, root: &Path) -> Result<(), DataError> {
    let cap = max_bytes_from_env()?;
    mark_used(dir, root);
    if let Some(decode_root) = dir.parent() {
        tidy(decode_root, dir, cap, SystemTime::now(), GRACE);
    }
    Ok(())
}

/// Record that `dir` caches the data set at `root` and that it is in use now.
fn mark_used(dir: &Path, root: &Path) {
    let canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // Best effort: a cache folder without a record is never deleted as an orphan.
    let _ = moirelab_core::fsio::write_atomic(&dir.join(OWNER), &path_bytes(&canon));
}

#[cfg(unix)]
fn path_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().into_owned().into_bytes()
}

#[cfg(unix)]
fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

#[cfg(not(unix))]
fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&b).into_owned())
}

/// One data set's cache folder.
struct Folder {
    path: PathBuf,
    bytes: u64,
    /// Last use: the record's modification time, else the newest file's (folders written
    /// before records existed).
    used: SystemTime,
    /// The data set it belongs to, when recorded.
    owner: Option<PathBuf>,
}

fn scan(decode_root: &Path) -> Vec<Folder> {
    let Ok(rd) = std::fs::read_dir(decode_root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = e.path();
        let (mut bytes, mut newest) = (0u64, SystemTime::UNIX_EPOCH);
        for f in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            if let Ok(m) = f.metadata() {
                bytes += m.len();
                if let Ok(t) = m.modified() {
                    newest = newest.max(t);
                }
            }
        }
        let record = path.join(OWNER);
        let owner = std::fs::read(&record)
            .ok()
            .filter(|b| !b.is_empty())
            .map(path_from_bytes);
        let used = std::fs::metadata(&record)
            .and_then(|m| m.modified())
            .unwrap_or(newest);
        out.push(Folder {
            path,
            bytes,
            used,
            owner,
        });
    }
    out
}

/// What [`tidy`] deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tidied {
    /// Folders whose data set no longer exists.
    pub orphans: usize,
    /// Folders evicted to get under the cap.
    pub evicted: usize,
    pub freed_bytes: u64,
}

/// Delete the orphans of `decode_root`, then the least recently used folders while it holds
/// more than `max_bytes`; `keep` (the folder being opened) and folders used within `grace`
/// of `now` are never evicted for size. Failures to delete are skipped.
fn tidy(
    decode_root: &Path,
    keep: &Path,
    max_bytes: Option<u64>,
    now: SystemTime,
    grace: Duration,
) -> Tidied {
    let mut t = Tidied::default();
    let mut folders = scan(decode_root);
    folders.retain(|f| {
        let gone = f.path != keep && f.owner.as_ref().is_some_and(|o| !o.exists());
        if gone && std::fs::remove_dir_all(&f.path).is_ok() {
            t.orphans += 1;
            t.freed_bytes += f.bytes;
            return false;
        }
        true
    });
    let Some(cap) = max_bytes else {
        return t;
    };
    let mut total: u64 = folders.iter().map(|f| f.bytes).sum();
    folders.sort_by_key(|f| f.used);
    for f in &folders {
        if total <= cap {
            break;
        }
        let recent = now.duration_since(f.used).unwrap_or_default() < grace;
        if f.path == keep || recent {
            continue;
        }
        if std::fs::remove_dir_all(&f.path).is_ok() {
            total -= f.bytes;
            t.evicted += 1;
            t.freed_bytes += f.bytes;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mtime(path: &Path, when: SystemTime) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(when).unwrap();
    }

    /// A cache folder of `bytes` bytes, owned by `owner`, last used `age` ago.
    fn folder(root: &Path, name: &str, bytes: usize, owner: Option<&Path>, age: Duration) {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("x.mlc"), vec![0u8; bytes]).unwrap();
        let when = SystemTime::now() - age;
        set_mtime(&d.join("x.mlc"), when);
        if let Some(o) = owner {
            mark_used(&d, o);
            set_mtime(&d.join(OWNER), when);
        }
    }

    fn names(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn folders_of_deleted_data_sets_go_and_the_rest_stay_without_a_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, decode) = (tmp.path().join("data"), tmp.path().join("decode"));
        std::fs::create_dir_all(&data).unwrap();
        folder(&decode, "alive", 10, Some(&data), 5 * HOUR);
        folder(
            &decode,
            "gone",
            10,
            Some(&tmp.path().join("deleted")),
            5 * HOUR,
        );
        folder(&decode, "unrecorded", 10, None, 5 * HOUR);
        let keep = decode.join("alive");
        let t = tidy(&decode, &keep, None, SystemTime::now(), HOUR);
        assert_eq!((t.orphans, t.evicted), (1, 0));
        assert!(t.freed_bytes > 10, "the cache file and its record");
        assert_eq!(names(&decode), ["alive", "unrecorded"]);
    }

    #[test]
    fn above_the_cap_the_least_recently_used_go_first_but_never_the_open_or_recent_one() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let decode = tmp.path().join("decode");
        let mb = 1 << 20;
        folder(&decode, "oldest", mb, Some(&data), 9 * HOUR);
        folder(&decode, "old", mb, None, 7 * HOUR);
        folder(&decode, "middle", mb, Some(&data), 5 * HOUR);
        folder(&decode, "recent", mb, Some(&data), HOUR / 4);
        folder(&decode, "opening", mb, Some(&data), 20 * HOUR);
        let keep = decode.join("opening");
        // Five folders of ~1 MiB, cap 3.5 MiB: the two least recently used go.
        let cap = Some((7 * mb / 2) as u64);
        let t = tidy(&decode, &keep, cap, SystemTime::now(), HOUR);
        assert_eq!((t.orphans, t.evicted), (0, 2));
        assert_eq!(names(&decode), ["middle", "opening", "recent"]);
        // A cap nothing can meet: all but the open and the recent folder go, and it stops.
        let t = tidy(&decode, &keep, Some(1), SystemTime::now(), HOUR);
        assert_eq!(t.evicted, 1);
        assert_eq!(names(&decode), ["opening", "recent"]);
    }

    #[test]
    fn the_record_round_trips_the_canonical_root() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("a b");
        std::fs::create_dir_all(&data).unwrap();
        let d = tmp.path().join("cache");
        std::fs::create_dir_all(&d).unwrap();
        mark_used(&d, &data.join("..").join("a b"));
        let owner = path_from_bytes(std::fs::read(d.join(OWNER)).unwrap());
        assert_eq!(owner, data.canonicalize().unwrap());
    }
}
