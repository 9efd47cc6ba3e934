//! The decode cache: every image is decoded once into compact 8-bit RGB at its stored size
//! (see `decode::stored_dims`); later epochs never decode.
//!
//! Two backings:
//! * memory: one boxed slice per image (no giant reallocation, so peak ≈ final size);
//! * disk: one file `<cache-dir>/<family>-<key>.mlc`, memory-mapped, plus a JSON sidecar with
//!   what validation found. `key` hashes every file's path, size and mtime (and the settings
//!   that shape the stored pixels), so any change to the data invalidates it; a later run with
//!   the same key maps the file and skips decoding entirely. Older files of the same family
//!   (same root and settings) are deleted when a new one is written. Each image's stored
//!   pixels carry a CRC-32C, checked (in parallel) every time the file is mapped: a file
//!   damaged in place is rebuilt, with a warning, instead of being trained on.
//!   The shared default folder holding one such folder per data set is kept tidy by
//!   `cache_tidy.rs`.
//!
//! File layout (little endian): pixel blobs back to back, then `count` × (offset u64,
//! width u32, height u32, CRC-32C of the blob u32), then the footer: count u64, key u64,
//! magic `MLCACHE2`.

use crate::check::{Problem, ProblemKind};
use crate::config::DataConfig;
use crate::decode::{self, ImageInfo};
use crate::source::Source;
use crate::DataError;
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MLCACHE2";
/// Bump when the stored pixels of the same inputs would change, or what the cache files
/// record (2: `ScanItem::mask` holds the present regions; 3: `ImageInfo::phash`; 4: a CRC per
/// image in the table).
const CACHE_VERSION: u32 = 4;
/// Bytes of one table entry.
const ENTRY_BYTES: usize = 20;
/// Images decoded in parallel before being appended in order.
const CHUNK: usize = 64;

/// What the scan learned about one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScanItem {
    /// `None` when the file is unusable (the reason is in `problems`).
    pub info: Option<ImageInfo>,
    pub problems: Vec<Problem>,
    /// `None` without a usable mask; else the regions present in it: bit `i` set when
    /// region `i` covers at least [`PRESENT_SHARE`] of the image.
    pub mask: Option<u16>,
}

/// Share of an image's pixels a region must cover to count as present in it (0.1 %: 16
/// pixels at 128 px), for the data check's "regions present" table.
pub(crate) const PRESENT_SHARE: f64 = 1e-3;

#[derive(Debug, Clone, Copy)]
struct Entry {
    off: u64,
    w: u32,
    h: u32,
    /// CRC-32C of the stored pixels (disk backing only).
    crc: u32,
}

enum Backing {
    Memory(Vec<Box<[u8]>>),
    Mapped(memmap2::Mmap),
}

/// Decoded pixels of every record (empty for unusable ones).
pub(crate) struct Store {
    entries: Vec<Entry>,
    backing: Backing,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("images", &self.entries.len())
            .field("file", &self.path)
            .finish()
    }
}

impl Store {
    /// `(width, height, HWC RGB bytes)` of record slot `i`.
    pub fn pixels(&self, i: usize) -> (u32, u32, &[u8]) {
        let e = self.entries[i];
        let data: &[u8] = match &self.backing {
            Backing::Memory(v) => &v[i],
            Backing::Mapped(m) => {
                let n = e.w as usize * e.h as usize * 3;
                &m[e.off as usize..e.off as usize + n]
            }
        };
        (e.w, e.h, data)
    }

    /// The cache file when disk-backed.
    pub fn file(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Decode every usable record of `src`, in parallel chunks, handing each stored view to
/// `sink` in record order (`None` for unusable records). `store` = false skips resizing
/// (validation only).
fn scan(
    src: &Source,
    root: &Path,
    cfg: &DataConfig,
    store: bool,
    sink: &mut dyn FnMut(Option<&RgbImage>) -> Result<(), DataError>,
) -> Result<Vec<ScanItem>, DataError> {
    let mut items = Vec::with_capacity(src.records.len());
    let idx: Vec<usize> = (0..src.records.len()).collect();
    for chunk in idx.chunks(CHUNK) {
        let done: Vec<(ScanItem, Option<RgbImage>)> = chunk
            .par_iter()
            .map(|&i| scan_one(src, i, root, cfg, store))
            .collect();
        for (item, view) in done {
            sink(view.as_ref())?;
            items.push(item);
        }
    }
    Ok(items)
}

fn scan_one(
    src: &Source,
    i: usize,
    root: &Path,
    cfg: &DataConfig,
    store: bool,
) -> (ScanItem, Option<RgbImage>) {
    let rec = &src.records[i];
    if src.bad[i] {
        return (
            ScanItem {
                info: None,
                problems: Vec::new(),
                mask: None,
            },
            None,
        );
    }
    match decode::decode_file(
        &root.join(&rec.path),
        &rec.path,
        decode::DecodeLimits::for_data(cfg),
    ) {
        Err(p) => (
            ScanItem {
                info: None,
                problems: vec![p],
                mask: None,
            },
            None,
        ),
        Ok(d) => {
            let mut problems = d.warnings;
            let (w, h) = (d.info.width, d.info.height);
            problems.extend(decode::view_warning(w, h, cfg, &rec.path));
            let present = match &rec.mask {
                None => None,
                Some(m) => match check_mask(&root.join(m), w, h, cfg.max_pixels) {
                    Ok(present) => Some(present),
                    Err(msg) => {
                        problems.push(Problem::new(
                            ProblemKind::BadMask,
                            Some(&rec.path),
                            format!("mask {m}: {msg}; regions not available for this image"),
                        ));
                        None
                    }
                },
            };
            let info = ImageInfo {
                phash: crate::similar::perceptual_hash(&d.rgb),
                ..d.info
            };
            let view = store.then(|| decode::stored_view(d.rgb, cfg));
            (
                ScanItem {
                    info: Some(info),
                    problems,
                    mask: present,
                },
                view,
            )
        }
    }
}

/// A mask must be a grayscale PNG (16-bit bit field, or 8-bit for ≤ 8 regions) of the
/// image's size. Returns the regions present in it (see [`ScanItem::mask`]).
fn check_mask(path: &Path, w: u32, h: u32, max_pixels: u64) -> Result<u16, String> {
    let (mw, mh, bits) = crate::masks::read_mask_bits(path, max_pixels)?;
    if (mw, mh) != (w, h) {
        return Err(format!("{mw}x{mh} but the image is {w}x{h}"));
    }
    Ok(present_regions(&bits))
}

/// Bit `i` set when at least [`PRESENT_SHARE`] of the pixels have bit `i`.
pub(crate) fn present_regions(bits: &[u16]) -> u16 {
    let mut counts = [0usize; moirelab_core::dataset_format::MAX_REGIONS];
    for &b in bits {
        let mut b = b;
        while b != 0 {
            counts[b.trailing_zeros() as usize] += 1;
            b &= b - 1;
        }
    }
    let need = ((bits.len() as f64 * PRESENT_SHARE).ceil() as usize).max(1);
    (0..counts.len())
        .filter(|&i| counts[i] >= need)
        .fold(0, |m, i| m | (1 << i))
}

/// Validation only: decode every file, keep nothing.
pub(crate) fn scan_only(
    src: &Source,
    root: &Path,
    cfg: &DataConfig,
) -> Result<Vec<ScanItem>, DataError> {
    scan(src, root, cfg, false, &mut |_| Ok(()))
}

/// Decode into memory.
pub(crate) fn build_memory(
    src: &Source,
    root: &Path,
    cfg: &DataConfig,
) -> Result<(Vec<ScanItem>, Store), DataError> {
    let mut blobs: Vec<Box<[u8]>> = Vec::with_capacity(src.records.len());
    let mut entries = Vec::with_capacity(src.records.len());
    let items = scan(src, root, cfg, true, &mut |view| {
        match view {
            Some(img) => {
                entries.push(Entry {
                    off: 0,
                    w: img.width(),
                    h: img.height(),
                    crc: 0,
                });
                blobs.push(img.as_raw().clone().into_boxed_slice());
            }
            None => {
                entries.push(Entry {
                    off: 0,
                    w: 0,
                    h: 0,
                    crc: 0,
                });
                blobs.push(Box::new([]));
            }
        }
        Ok(())
    })?;
    Ok((
        items,
        Store {
            entries,
            backing: Backing::Memory(blobs),
            path: None,
        },
    ))
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// (family, key): family names the root + settings (+ the split an evaluation kept), key adds
/// every file's size and mtime. The settings are those that shape the stored pixels or what
/// the sidecar records about a file (`max-pixels` decides "too large").
fn cache_key(src: &Source, root: &Path, cfg: &DataConfig) -> (u64, u64) {
    let canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // An evaluation that read one split has a family of its own, so that it does not
    // replace the whole data set's cache of a training run (nor the other way round).
    let family = format!(
        "v{CACHE_VERSION}|{}|{:?}|{}|{}|{}|{}{}",
        canon.display(),
        cfg.mode,
        cfg.image_size,
        cfg.patch_max_side,
        cfg.min_image_size,
        // The decoder refuses files above it, and the sidecar records that verdict.
        cfg.max_pixels,
        src.only_split
            .as_deref()
            .map(|s| format!("|only:{s}"))
            .unwrap_or_default()
    );
    let mut desc = family.clone();
    let stat = |rel: &str, desc: &mut String| match std::fs::metadata(root.join(rel)) {
        Ok(m) => desc.push_str(&format!("|{rel}:{}:{}", m.len(), mtime_ns(&m))),
        Err(_) => desc.push_str(&format!("|{rel}:-")),
    };
    for (i, r) in src.records.iter().enumerate() {
        if src.bad[i] {
            desc.push_str("|!bad");
            continue;
        }
        stat(&r.path, &mut desc);
        if let Some(m) = &r.mask {
            stat(m, &mut desc);
        }
    }
    (
        decode::content_hash(1, 0, family.as_bytes()),
        decode::content_hash(2, 0, desc.as_bytes()),
    )
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    key: String,
    items: Vec<ScanItem>,
}

/// moirelab's cache folder: `$MOIRELAB_CACHE`, else `$XDG_CACHE_HOME/moirelab`, else
/// `$HOME/.cache/moirelab` (the folder that also holds the libtorch venv).
pub(crate) fn cache_root() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MOIRELAB_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("moirelab")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("moirelab")))
}

/// Default decode-cache folder of a data set: `<cache root>/decode/<name>-<hash of the
/// canonical root>`. Never inside the data set, which may be read-only or shared.
pub(crate) fn default_dir(root: &Path) -> Option<PathBuf> {
    let canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let name: String = canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let name = name.trim_start_matches('.');
    let hash = decode::content_hash(3, 0, canon.to_string_lossy().as_bytes());
    let leaf = if name.is_empty() {
        format!("{hash:016x}")
    } else {
        format!("{name}-{hash:016x}")
    };
    Some(cache_root()?.join("decode").join(leaf))
}

/// Whether the cache folder accepts files.
pub(crate) fn dir_writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Open the disk cache for `src`, building it when missing or stale. The problem, if any,
/// says that a cache file was there but damaged, and was rebuilt.
pub(crate) fn open_disk(
    src: &Source,
    root: &Path,
    cfg: &DataConfig,
    dir: &Path,
) -> Result<(Vec<ScanItem>, Store, Option<Problem>), DataError> {
    let (family, key) = cache_key(src, root, cfg);
    let stem = format!("{family:016x}-{key:016x}");
    let file = dir.join(format!("{stem}.mlc"));
    let side = dir.join(format!("{stem}.scan.json"));
    let rebuilt = match try_load(&file, &side, key, src) {
        Loaded::Hit(items, store) => return Ok((items, store, None)),
        Loaded::Absent => None,
        Loaded::Damaged(why) => Some(Problem::new(
            ProblemKind::CacheRebuilt,
            None,
            format!(
                "decode cache {}: {why}; rebuilt from the images",
                file.display()
            ),
        )),
    };
    let mut items = None;
    moirelab_core::fsio::write_atomic_with(&file, |tmp| -> Result<(), DataError> {
        let f = std::fs::File::create(tmp).map_err(DataError::io(tmp))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut entries = Vec::with_capacity(src.records.len());
        let mut off = 0u64;
        let scanned = scan(src, root, cfg, true, &mut |view| {
            match view {
                Some(img) => {
                    w.write_all(img.as_raw()).map_err(DataError::io(tmp))?;
                    entries.push(Entry {
                        off,
                        w: img.width(),
                        h: img.height(),
                        crc: crc32c::crc32c(img.as_raw()),
                    });
                    off += img.as_raw().len() as u64;
                }
                None => entries.push(Entry {
                    off,
                    w: 0,
                    h: 0,
                    crc: crc32c::crc32c(&[]),
                }),
            }
            Ok(())
        })?;
        for e in &entries {
            w.write_all(&e.off.to_le_bytes())
                .and_then(|_| w.write_all(&e.w.to_le_bytes()))
                .and_then(|_| w.write_all(&e.h.to_le_bytes()))
                .and_then(|_| w.write_all(&e.crc.to_le_bytes()))
                .map_err(DataError::io(tmp))?;
        }
        w.write_all(&(entries.len() as u64).to_le_bytes())
            .and_then(|_| w.write_all(&key.to_le_bytes()))
            .and_then(|_| w.write_all(MAGIC))
            .map_err(DataError::io(tmp))?;
        let f = w
            .into_inner()
            .map_err(|e| DataError::io(tmp)(e.into_error()))?;
        f.sync_all().map_err(DataError::io(tmp))?;
        items = Some(scanned);
        Ok(())
    })
    .map_err(|e| match e {
        moirelab_core::fsio::AtomicError::Io(c) => DataError::Core(c),
        moirelab_core::fsio::AtomicError::Produce(d) => d,
    })?;
    let items = items.ok_or_else(|| DataError::Cache {
        path: file.clone(),
        msg: "writer finished without scanning".into(),
    })?;
    moirelab_core::fsio::write_json_atomic(
        &side,
        &Sidecar {
            key: format!("{key:016x}"),
            items: items.clone(),
        },
    )?;
    remove_stale(dir, family, &stem);
    let store = map_file(&file, key, src.records.len())?;
    Ok((items, store, rebuilt))
}

/// Delete older cache files of the same family (other keys).
fn remove_stale(dir: &Path, family: u64, keep: &str) {
    let prefix = format!("{family:016x}-");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && !name.starts_with(keep) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What [`try_load`] found.
enum Loaded {
    Hit(Vec<ScanItem>, Store),
    /// No cache file of this key (a first run, or one killed before it finished writing).
    Absent,
    /// The files are there but unusable: why (for the warning).
    Damaged(String),
}

/// The cache files of `key` when both are there and sound: the sidecar parses and is of this
/// key and record count, the table is consistent, and every image's pixels match their CRC.
fn try_load(file: &Path, side: &Path, key: u64, src: &Source) -> Loaded {
    if !file.is_file() || !side.is_file() {
        return Loaded::Absent;
    }
    let n = src.records.len();
    let sc: Sidecar = match moirelab_core::fsio::read_json(side) {
        Ok(sc) => sc,
        Err(e) => return Loaded::Damaged(format!("sidecar {e}")),
    };
    if sc.key != format!("{key:016x}") || sc.items.len() != n {
        return Loaded::Damaged(format!(
            "sidecar {} is of another key or holds {} records, not {n}",
            side.display(),
            sc.items.len()
        ));
    }
    let store = match map_file(file, key, n) {
        Ok(store) => store,
        Err(DataError::Cache { msg, .. }) => return Loaded::Damaged(msg),
        Err(e) => return Loaded::Damaged(e.to_string()),
    };
    if let Err(why) = verify_pixels(&store, src) {
        return Loaded::Damaged(why);
    }
    Loaded::Hit(sc.items, store)
}

/// Recompute every image's CRC-32C over its mapped pixels, in parallel (CRC-32C because it
/// runs at memory speed: see `examples/bench_cache_open.rs`).
fn verify_pixels(store: &Store, src: &Source) -> Result<(), String> {
    let bad: Vec<usize> = (0..store.entries.len())
        .into_par_iter()
        .filter(|&i| crc32c::crc32c(store.pixels(i).2) != store.entries[i].crc)
        .collect();
    match bad.first() {
        None => Ok(()),
        Some(&i) => Err(format!(
            "the stored pixels of {} image(s) do not match their checksum (first: {})",
            bad.len(),
            src.records[i].path
        )),
    }
}

fn map_file(path: &Path, key: u64, n: usize) -> Result<Store, DataError> {
    let bad = |msg: String| DataError::Cache {
        path: path.to_path_buf(),
        msg,
    };
    let f = std::fs::File::open(path).map_err(DataError::io(path))?;
    // SAFETY: the cache file is written once through a temp file and an atomic rename and
    // never modified in place (new data → new key → new file name), so the mapping does not
    // change under us unless someone truncates our private cache file by hand.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(DataError::io(path))?;
    let len = map.len();
    if len < 24 || &map[len - 8..] != MAGIC {
        return Err(bad("not a moirelab cache file (bad magic)".into()));
    }
    let rd = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&map[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let count = rd(len - 24) as usize;
    if count != n || rd(len - 16) != key {
        return Err(bad(format!("stale: holds {count} images for another key")));
    }
    let table = count
        .checked_mul(ENTRY_BYTES)
        .and_then(|t| len.checked_sub(24 + t))
        .ok_or_else(|| bad("truncated table".into()))?;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = table + ENTRY_BYTES * i;
        let off = rd(at);
        let wh = rd(at + 8);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&map[at + 16..at + 20]);
        let e = Entry {
            off,
            w: wh as u32,
            h: (wh >> 32) as u32,
            crc: u32::from_le_bytes(crc),
        };
        let end = off as u128 + e.w as u128 * e.h as u128 * 3;
        if end > table as u128 {
            return Err(bad(format!("entry {i} points past the pixel data")));
        }
        entries.push(e);
    }
    Ok(Store {
        entries,
        backing: Backing::Mapped(map),
        path: Some(path.to_path_buf()),
    })
}
