//! Atomic writes: a reader never sees a half-written file, and a crash leaves the old file.

use crate::{CoreError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Temp-file name in the same directory (rename is only atomic within one file system). It
/// keeps the original name as its suffix, so writers that pick a format by extension (tch's
/// `VarStore::save`, image encoders) still see `.safetensors` / `.png`.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp{}.{name}", std::process::id()))
}

/// Puts the complete folder `staged` in place of `target` (absent or not) by renames: an
/// existing `target` is first renamed to `.<name>.old-<pid>` beside it and deleted once
/// `staged` is in place, and put back if that rename fails, so `target` is never half old,
/// half new. A process killed between the renames leaves the `.old-<pid>` folder, which its
/// writer's next run deletes ([`process_ended`]).
pub fn replace_dir(staged: &Path, target: &Path) -> Result<()> {
    if !target.exists() {
        return std::fs::rename(staged, target).map_err(io_err(target));
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = target.with_file_name(format!(".{name}.old-{}", std::process::id()));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    std::fs::rename(target, &old).map_err(io_err(target))?;
    if let Err(e) = std::fs::rename(staged, target) {
        let _ = std::fs::rename(&old, target);
        return Err(io_err(target)(e));
    }
    std::fs::remove_dir_all(&old).map_err(io_err(&old))
}

/// Deletes what a writer killed while it made the folder `parent/name` left beside it: its
/// `.<name>.partial-<pid>` staging folder, or (killed between the renames of
/// [`replace_dir`]) the `.<name>.old-<pid>` one, whatever process `<pid>` no longer runs.
/// Another process writing the same folder right now keeps its own. Where processes cannot
/// be looked up (no `/proc`), only folders untouched for a day count as abandoned. Best
/// effort: a folder that cannot be read or deleted is left as it is.
pub fn remove_abandoned_dirs(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let has_proc = Path::new("/proc/self").exists();
    let day = std::time::Duration::from_secs(24 * 3600);
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(pid) = [".partial-", ".old-"].iter().find_map(|tag| {
            file.strip_prefix('.')?
                .strip_prefix(name)?
                .strip_prefix(tag)?
                .parse::<u32>()
                .ok()
        }) else {
            continue;
        };
        let abandoned = if has_proc {
            process_ended(pid)
        } else {
            pid != std::process::id()
                && std::fs::metadata(entry.path())
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > day)
        };
        if abandoned {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether process `pid` has ended: another process than this one, which `/proc` does not
/// list. `false` where processes cannot be looked up (no `/proc`), so that callers who delete
/// what such a process left behind delete nothing there.
pub fn process_ended(pid: u32) -> bool {
    pid != std::process::id()
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes the temp files ([`temp_path`]) under `dir`, down to `depth` folders below it, that
/// a process which no longer runs left behind (killed between its write and its rename);
/// returns how many. A live writer's temp file is left alone. Where processes cannot be looked
/// up (no `/proc`), nothing is deleted. Best effort: unreadable folders are skipped.
pub fn remove_abandoned_temps(dir: &Path, depth: usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            if depth > 0 {
                removed += remove_abandoned_temps(&e.path(), depth - 1);
            }
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(".tmp")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let gone = pid.is_some_and(process_ended);
        if kind.is_file() && gone && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Write `bytes` to `path` through a temp file and a rename. Parent folders are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// Like [`write_atomic`] but the content is produced by a callback writing to a temp path
/// (for encoders such as PNG or safetensors writers that want a path, not bytes).
pub fn write_atomic_with<E>(
    path: &Path,
    produce: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), AtomicError<E>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| AtomicError::Io(io_err(parent)(e)))?;
    }
    let tmp = temp_path(path);
    if let Err(e) = produce(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(AtomicError::Produce(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AtomicError::Io(io_err(path)(e))
    })
}

/// Failure of [`write_atomic_with`]: either the producer or the file system.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError<E> {
    #[error(transparent)]
    Io(CoreError),
    #[error("{0}")]
    Produce(E),
}

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CoreError::Invalid {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The most a config, sweep file or run-folder JSON/TOML file may hold: far above any real
/// one, and a file named by mistake (a video, `/dev/zero`'s worth) is refused before it is read.
pub const TEXT_MAX_BYTES: u64 = 16 << 20;
/// The most a data-set manifest (CSV or JSONL, one line per image) may hold: 1 GiB is
/// millions of records.
pub const MANIFEST_MAX_BYTES: u64 = 1 << 30;

fn size_words(n: u64) -> String {
    const MB: f64 = (1u64 << 20) as f64;
    if n >= 1 << 30 {
        format!("{:.1} GB", n as f64 / (MB * 1024.0))
    } else if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / MB)
    } else {
        format!("{n} bytes")
    }
}

fn kind_words(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Why [`open_regular`] did not open a file.
#[derive(Debug)]
pub enum OpenError {
    /// It does not exist, or cannot be opened or read.
    Io(std::io::Error),
    /// It is something other than a regular file: "a folder", "a FIFO", "a character device"…
    NotRegular(&'static str),
}

/// Open a file a user named (a config, a manifest, an image, a mask) for reading, with its
/// size. Only a regular file is opened (a FIFO named `x.png` would block the caller, a device
/// never ends), and it is opened without blocking, so a regular file whose read waits for
/// data (`/proc/kmsg`, reached through a link) fails at its first read instead of hanging.
pub fn open_regular(path: &Path) -> std::result::Result<(std::fs::File, u64), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let regular = |m: std::fs::Metadata| {
        if m.file_type().is_file() {
            Ok(m.len())
        } else {
            Err(OpenError::NotRegular(kind_words(&m.file_type())))
        }
    };
    // Looked at before it is opened: opening a socket fails with an unhelpful "no such device".
    regular(std::fs::metadata(path).map_err(OpenError::Io)?)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(OpenError::Io)?;
    // And again once open: the path may have been replaced in between.
    let len = regular(f.metadata().map_err(OpenError::Io)?)?;
    Ok((f, len))
}

/// Read `f` (of `len` bytes, from [`open_regular`]) whole; `None` when it holds more than
/// `max` bytes (it grew, or its size was not known), of which at most `max + 1` are read.
pub fn read_at_most(f: std::fs::File, len: u64, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(len.min(max) as usize);
    f.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Read a file a user named (a config, a manifest, a run folder's JSON) whole, safely: it is
/// opened by [`open_regular`] (regular files only, without blocking), and may hold at most
/// `max` bytes (a larger one is refused before it is read). `what` names the kind of file in
/// the size error ("a config"). Errors are one line naming the file.
pub fn read_capped(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    let invalid = |msg: String| CoreError::Invalid {
        path: path.to_path_buf(),
        msg,
    };
    let (f, len) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => io_err(path)(e),
        OpenError::NotRegular(kind) => invalid(format!("not a regular file ({kind})")),
    })?;
    let too_big = |n: u64| {
        invalid(format!(
            "{}, above the {} {what} may be",
            size_words(n),
            size_words(max)
        ))
    };
    if len > max {
        return Err(too_big(len));
    }
    read_at_most(f, len, max)
        .map_err(io_err(path))?
        .ok_or_else(|| too_big(max + 1))
}

/// [`read_capped`] for UTF-8 text; other bytes are "not a text file (UTF-8)".
pub fn read_text_capped(path: &Path, what: &str, max: u64) -> Result<String> {
    String::from_utf8(read_capped(path, what, max)?).map_err(|_| CoreError::Invalid {
        path: path.to_path_buf(),
        msg: "not a text file (UTF-8)".into(),
    })
}

/// Read and parse a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    parse_json(
        &read_text_capped(path, "a JSON file", TEXT_MAX_BYTES)?,
        path,
    )
}

/// [`read_json`] on text already read from `path` (named in errors).
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| CoreError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        msg: e.to_string(),
    })
}

/// Append one JSON object as a line. The line is written with a single `write_all` on a file
/// opened in append mode, so a crash can lose the line but never leaves a torn one among
/// complete lines (the log reader [`read_jsonl`] skips a trailing partial line).
pub fn append_jsonl<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value).map_err(|e| CoreError::Invalid {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(&line).map_err(io_err(path))
}

/// Read a JSON-lines log written by [`append_jsonl`] (a run's `metrics.jsonl`). Blank lines
/// are skipped; a final line without a newline that does not parse is treated as a torn write
/// (a crash mid-append) and ignored; any other bad line is an error naming it.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = read_text_capped(path, "a JSON-lines log", MANIFEST_MAX_BYTES)?;
    parse_jsonl(&text, path)
}

/// [`read_jsonl`] on text already read from `path` (named in errors).
pub fn parse_jsonl<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<Vec<T>> {
    parse_lines(text, path, true)
}

/// Read a JSON-lines file that is written whole (a data set's `manifest.jsonl`, atomically by
/// the generator or by a user): blank lines are skipped and every other line must parse, the
/// last one too, with or without a final newline. A torn last line here means a damaged file,
/// and dropping it would silently drop a record.
pub fn read_jsonl_strict<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = read_text_capped(path, "a manifest", MANIFEST_MAX_BYTES)?;
    parse_jsonl_strict(&text, path)
}

/// [`read_jsonl_strict`] on text already read from `path` (named in errors).
pub fn parse_jsonl_strict<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<Vec<T>> {
    parse_lines(text, path, false)
}

/// One value per non-blank line; `torn_tail`: a last line without a newline that does not
/// parse is ignored instead of being an error.
fn parse_lines<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    torn_tail: bool,
) -> Result<Vec<T>> {
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if torn_tail && !complete && i + 1 == lines.len() => break,
            Err(e) => {
                return Err(CoreError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    msg: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// First free folder name: `base`, then `base-2`, `base-3`, … Creates it (never reuses one).
pub fn create_unique_dir(base: &Path) -> Result<PathBuf> {
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    for i in 1..10_000u32 {
        let candidate = if i == 1 {
            base.to_path_buf()
        } else {
            base.with_file_name(format!("{name}-{i}"))
        };
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&candidate)(e)),
        }
    }
    Err(CoreError::Invalid {
        path: base.to_path_buf(),
        msg: "no free run-folder name after 10000 tries".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp file of a process that has ended goes; a live writer's (this process's), a
    /// file that only looks similar, and anything deeper than asked stay.
    #[cfg(target_os = "linux")]
    #[test]
    fn abandoned_temp_files_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A pid above the kernel's limit (2^22) never runs.
        let gone = 4_194_400u32;
        let own = std::process::id();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        for f in [
            format!(".tmp{gone}.summary.json"),
            format!("a/.tmp{gone}.index.html"),
            format!("a/b/.tmp{gone}.grid.png"),
            format!(".tmp{own}.metrics.json"),
            ".tmpx.notes".to_string(),
            "keep.json".to_string(),
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        assert_eq!(remove_abandoned_temps(d, 1), 2);
        assert!(!d.join(format!(".tmp{gone}.summary.json")).exists());
        assert!(!d.join(format!("a/.tmp{gone}.index.html")).exists());
        assert!(d.join(format!("a/b/.tmp{gone}.grid.png")).exists());
        assert!(d.join(format!(".tmp{own}.metrics.json")).exists());
        assert!(d.join(".tmpx.notes").exists() && d.join("keep.json").exists());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn jsonl_skips_torn_last_line_but_rejects_bad_middle_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let v: Vec<serde_json::Value> = read_jsonl(&p).unwrap();
        assert_eq!(v.len(), 2);
        std::fs::write(&p, "{\"a\":1}\nnot json\n{\"a\":2}\n").unwrap();
        let err = read_jsonl::<serde_json::Value>(&p).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn strict_jsonl_rejects_a_torn_last_line_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let err = read_jsonl_strict::<serde_json::Value>(&p).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("manifest.jsonl") && text.contains("line 3"),
            "{text}"
        );
        // garbage instead of a torn object, too
        std::fs::write(&p, "{\"a\":1}\n\u{0}\u{1}garbage").unwrap();
        let err = read_jsonl_strict::<serde_json::Value>(&p).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn strict_jsonl_reads_a_complete_last_line_without_a_newline() {
        let text = "{\"a\":1}\n\n{\"a\":2}";
        let v: Vec<serde_json::Value> = parse_jsonl_strict(text, Path::new("m.jsonl")).unwrap();
        assert_eq!(v.len(), 2);
        let v: Vec<serde_json::Value> =
            parse_jsonl_strict("{\"a\":1}\r\n\r\n", Path::new("m.jsonl")).unwrap();
        assert_eq!(v.len(), 1);
        let err = parse_jsonl_strict::<serde_json::Value>("{\"a\":1}\nnope\n", Path::new("m"));
        assert!(err.unwrap_err().to_string().contains("line 2"));
    }

    #[test]
    fn capped_read_refuses_fifos_devices_and_oversized_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.png");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        // Would block forever on open (no writer) without O_NONBLOCK.
        let err = read_capped(&fifo, "a config", TEXT_MAX_BYTES).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: not a regular file (a FIFO)", fifo.display())
        );
        let err = read_capped(Path::new("/dev/zero"), "a config", TEXT_MAX_BYTES).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
        let err = read_capped(dir.path(), "a config", TEXT_MAX_BYTES).unwrap_err();
        assert!(
            err.to_string().contains("not a regular file (a folder)"),
            "{err}"
        );
        let big = dir.path().join("big.toml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(3 << 30).unwrap(); // sparse: no disk used
        let err = read_capped(&big, "a config", TEXT_MAX_BYTES).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: 3.0 GB, above the 16.0 MB a config may be",
                big.display()
            )
        );
        let small = dir.path().join("s.toml");
        std::fs::write(&small, "a = 1\n").unwrap();
        assert_eq!(read_text_capped(&small, "a config", 6).unwrap(), "a = 1\n");
        std::fs::write(&small, [0xff, 0xfe]).unwrap();
        let err = read_text_capped(&small, "a config", 6).unwrap_err();
        assert!(
            err.to_string().ends_with("not a text file (UTF-8)"),
            "{err}"
        );
    }

    /// `/proc/kmsg` is a regular file whose read waits for kernel messages (an image linked to
    /// it hung a run). It opens only with CAP_SYSLOG; where it does not, there is nothing to
    /// check.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_regular_file_whose_read_would_wait_does_not_block() {
        let Ok((f, len)) = open_regular(Path::new("/proc/kmsg")) else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_at_most(f, len, 1 << 20).is_err());
        });
        // Pending messages are returned, none is EAGAIN: either way at once, never a wait.
        let done = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert!(done.is_ok(), "the read waited");
    }

    #[test]
    fn unique_dir_never_reuses_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = create_unique_dir(&dir.path().join("run")).unwrap();
        let b = create_unique_dir(&dir.path().join("run")).unwrap();
        let c = create_unique_dir(&dir.path().join("run")).unwrap();
        assert!(a.ends_with("run") && b.ends_with("run-2") && c.ends_with("run-3"));
    }
}
