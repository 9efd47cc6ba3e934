//! Readers and a replacing writer of one data-set folder.
//!
//! A `train` decodes its images once, but it reads region masks from the data set every
//! epoch and evaluates its extra data sets after every epoch. A `gen-data --force` (or a
//! `train` that regenerates a data set written by another generator version) that replaced
//! the folder under it would mix the new data set's masks with the old images, or fail the run
//! in the moment between the two renames. So every process that reads a data set holds a
//! shared advisory lock (`flock`) on the folder itself for as long as it reads, and a writer
//! that replaces an existing folder must take that lock exclusively first: it fails at once,
//! naming the readers, instead of waiting for a training that may run for hours.
//!
//! The lock is on the folder, so nothing is written beside it, and a read-only data set can
//! still be locked. The operating system releases the locks of a killed process. Where a
//! folder cannot be opened as a file or the file system has no locks, both sides go on
//! unlocked, as before. On Linux the processes that hold a lock are read from `/proc/locks`
//! for the messages.

use std::fs::{File, TryLockError};
use std::path::Path;

/// A reader's shared lock on a data-set folder, held until dropped.
#[derive(Debug)]
pub struct ReadGuard {
    _file: File,
}

/// An exclusive lock on a folder, held until dropped: a writer's on the data set it is about
/// to replace (until the old folder has been renamed away and deleted), or a training's on its
/// run folder (so that no second process trains or resumes the same run).
#[derive(Debug)]
pub struct ExclusiveGuard {
    _file: File,
}

/// Why a folder could not be locked: another process holds a lock that conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The processes that hold a conflicting lock, where they can be found (Linux); this
    /// process itself may be among them.
    pub holders: Vec<u32>,
}

impl Busy {
    /// "process 12, process 14", "this process" or "another process": the holders, as a
    /// message names them.
    pub fn holders_text(&self) -> String {
        if self.holders.is_empty() {
            return process_text(None);
        }
        let own = std::process::id();
        let names: Vec<String> = self
            .holders
            .iter()
            .map(|&pid| {
                if pid == own {
                    "this process".to_string()
                } else {
                    process_text(Some(pid))
                }
            })
            .collect();
        names.join(", ")
    }
}

/// "process N" for a known process id, "another process" without one: how every message
/// about a lock's holder names it.
pub fn process_text(pid: Option<u32>) -> String {
    pid.map_or_else(
        || "another process".to_string(),
        |pid| format!("process {pid}"),
    )
}

/// Takes a shared lock on the folder `dir` for reading it. `Ok(None)` where no lock can be
/// taken (see the module docs); `Err` while a writer is replacing the folder.
pub fn read_guard(dir: &Path) -> Result<Option<ReadGuard>, Busy> {
    // A reader that locked the old folder just after a writer renamed it away holds a lock
    // on nothing; it opens the path again (a few times at most: each try means a rewrite
    // finished in between).
    for _ in 0..8 {
        let Some(file) = open_dir(dir) else {
            return Ok(None);
        };
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(busy(&file)),
            Err(TryLockError::Error(_)) => return Ok(None),
        }
        if still_named(&file, dir) {
            return Ok(Some(ReadGuard { _file: file }));
        }
    }
    Ok(None)
}

/// Takes the exclusive lock on the existing folder `dir` (see [`ExclusiveGuard`]). `Ok(None)`
/// where no lock can be taken; `Err` naming the holders while any process holds a lock on it
/// (never waits: a holder may be a training that runs for hours).
pub fn exclusive_guard(dir: &Path) -> Result<Option<ExclusiveGuard>, Busy> {
    let Some(file) = open_dir(dir) else {
        return Ok(None);
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(ExclusiveGuard { _file: file })),
        Err(TryLockError::WouldBlock) => Err(busy(&file)),
        Err(TryLockError::Error(_)) => Ok(None),
    }
}

/// [`exclusive_guard`], tried again for up to `wait` while only readers hold the folder: a
/// reader's shared lock (a report, or a sweep's check for a live training, looking at a run
/// folder) lasts a moment. A folder that a process holds exclusively (a training, which may
/// run for hours) is refused at once.
pub fn exclusive_guard_after_readers(
    dir: &Path,
    wait: std::time::Duration,
) -> Result<Option<ExclusiveGuard>, Busy> {
    let t0 = std::time::Instant::now();
    loop {
        match exclusive_guard(dir) {
            // A shared lock of ours succeeds only while no process holds the folder exclusively.
            Err(_) if t0.elapsed() < wait && matches!(read_guard(dir), Ok(Some(_))) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// The folder opened for locking; `None` where it is no folder or cannot be opened.
fn open_dir(dir: &Path) -> Option<File> {
    let file = File::open(dir).ok()?;
    file.metadata().ok()?.is_dir().then_some(file)
}

fn busy(file: &File) -> Busy {
    Busy {
        holders: lock_holders(file),
    }
}

/// The processes that hold a lock on `file`'s inode, from `/proc/locks` (best effort: empty
/// where that file is missing or unreadable).
#[cfg(target_os = "linux")]
fn lock_holders(file: &File) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    holders_in(&table, meta.dev(), meta.ino())
}

#[cfg(not(target_os = "linux"))]
fn lock_holders(_file: &File) -> Vec<u32> {
    Vec::new()
}

/// The process ids of the locks on inode `ino` of device `dev` in a `/proc/locks` table,
/// sorted, each once. A line reads `1: FLOCK  ADVISORY  READ  4242 fd:01:1234 0 EOF`
/// (blocked waiters carry `->` after the number, and are skipped); the device is
/// `major:minor` in hexadecimal.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn holders_in(table: &str, dev: u64, ino: u64) -> Vec<u32> {
    // Linux's encoding of a device number (glibc's `major`/`minor`).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let mut pids: Vec<u32> = table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.nth(1)? == "->" {
                return None;
            }
            let pid = fields.nth(2)?.parse::<u32>().ok()?;
            let mut id = fields.next()?.split(':');
            let (ma, mi) = (id.next()?, id.next()?);
            let node = id.next()?.parse::<u64>().ok()?;
            let same = u64::from_str_radix(ma, 16).ok()? == major
                && u64::from_str_radix(mi, 16).ok()? == minor
                && node == ino;
            same.then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether `path` still names the open `file` (a writer may have renamed or deleted it
/// meanwhile).
#[cfg(unix)]
pub fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Elsewhere an open file cannot be renamed or deleted, so the path always names it.
#[cfg(not(unix))]
pub fn still_named(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_read_from_the_lock_table() {
        // dev 0xfd01 is major 0xfd, minor 0x01.
        let table = "1: FLOCK  ADVISORY  READ  4242 fd:01:1234 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 77 fd:01:1234 0 EOF\n\
                     2: FLOCK  ADVISORY  READ  4241 fd:01:1234 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 99 fd:01:999 0 EOF\n\
                     4: FLOCK  ADVISORY  READ  4242 fd:01:1234 0 EOF\n\
                     garbage\n";
        assert_eq!(holders_in(table, 0xfd01, 1234), vec![4241, 4242]);
        assert_eq!(holders_in(table, 0xfd02, 1234), Vec::<u32>::new());
        // A minor number above 255 is split around the major in `dev`.
        let big = "1: FLOCK  ADVISORY  READ  5 103:1234:42 0 EOF\n";
        let dev = (0x103 << 8) | (0x1234 & 0xff) | ((0x1234 & !0xff) << 12);
        assert_eq!(holders_in(big, dev, 42), vec![5]);
    }

    /// Readers share the folder; a replacing writer is refused while any reads it, and a
    /// reader while a writer replaces it; each side is told who holds the other.
    #[cfg(target_os = "linux")]
    #[test]
    fn readers_and_a_replacing_writer_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = read_guard(d).unwrap().expect("a lock on a local folder");
        let b = read_guard(d).unwrap().expect("readers share it");
        let busy = exclusive_guard(d).unwrap_err();
        assert_eq!(busy.holders, vec![std::process::id()]);
        assert_eq!(busy.holders_text(), "this process");
        drop(a);
        assert!(exclusive_guard(d).is_err(), "one reader is left");
        drop(b);
        let w = exclusive_guard(d).unwrap().expect("no reader is left");
        assert_eq!(read_guard(d).unwrap_err().holders, vec![std::process::id()]);
        drop(w);
        assert!(read_guard(d).unwrap().is_some());
    }

    /// A reader's moment delays a writer that waits for readers; a writer is refused at once.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_writer_waits_out_a_reader_but_not_another_writer() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let reader = read_guard(&d).unwrap().expect("a lock on a local folder");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(reader);
        });
        let w = exclusive_guard_after_readers(&d, Duration::from_secs(5)).unwrap();
        assert!(w.is_some());
        release.join().unwrap();
        let t0 = Instant::now();
        let busy = exclusive_guard_after_readers(&d, Duration::from_secs(5)).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!(busy.holders, vec![std::process::id()]);
        drop(w);
    }

    /// A path that is no folder is read and replaced without a lock.
    #[test]
    fn no_lock_where_there_is_no_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(read_guard(&file).unwrap().is_none());
        assert!(exclusive_guard(&dir.path().join("missing"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn names_of_holders() {
        assert_eq!(Busy { holders: vec![] }.holders_text(), "another process");
        let own = std::process::id();
        let text = Busy {
            holders: vec![own, own.wrapping_add(1)],
        }
        .holders_text();
        assert_eq!(
            text,
            format!("this process, process {}", own.wrapping_add(1))
        );
    }
}
