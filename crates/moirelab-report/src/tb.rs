//! TensorBoard event files without TensorFlow or protoc.
//!
//! A file is a sequence of records `u64 len | u32 masked_crc32c(len) | data |
//! u32 masked_crc32c(data)` (little-endian), each `data` a proto3 `Event` encoded by hand:
//! Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5},
//! Summary{value=1 repeated}, Value{tag=1, simple_value=2 float, image=4},
//! Image{height=1, width=2, colorspace=3, encoded_image_string=4}. The checksum is CRC-32C
//! (Castagnoli), not IEEE CRC-32: TensorBoard silently drops records with the wrong one.
//!
//! Steps are epochs for every tag this module logs from `metrics.jsonl`, so classification
//! and CAM curves share one x axis.

use crate::{ReportError, Result};
use moirelab_core::run::{self, CamMetrics, EpochMetrics, MetricsLine, RegionStats};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// TFRecord checksum: CRC-32C rotated right by 15 bits plus a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// One TFRecord frame around `data`.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Event header shared by every event: wall_time (always written) and step (proto3 omits 0).
fn event_head(wall_time: f64, step: i64) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, 1);
    out.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        key(&mut out, 2, 0);
        // int64 varint: negative values are their two's complement as u64 (10 bytes).
        varint(&mut out, step as u64);
    }
    out
}

/// The first event of every file: `file_version = "brain.Event:2"`.
pub fn encode_file_version_event(wall_time: f64) -> Vec<u8> {
    let mut out = event_head(wall_time, 0);
    bytes_field(&mut out, 3, b"brain.Event:2");
    out
}

fn summary_event(wall_time: f64, step: i64, value: &[u8]) -> Vec<u8> {
    let mut summary = Vec::new();
    bytes_field(&mut summary, 1, value);
    let mut out = event_head(wall_time, step);
    bytes_field(&mut out, 5, &summary);
    out
}

/// A scalar summary event (`Value.simple_value`).
pub fn encode_scalar_event(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::new();
    bytes_field(&mut v, 1, tag.as_bytes());
    key(&mut v, 2, 5);
    v.extend_from_slice(&value.to_le_bytes());
    summary_event(wall_time, step, &v)
}

/// An image summary event; `colorspace` is 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
pub fn encode_image_event(
    wall_time: f64,
    step: i64,
    tag: &str,
    png: &[u8],
    width: u32,
    height: u32,
    colorspace: u32,
) -> Vec<u8> {
    let mut img = Vec::new();
    key(&mut img, 1, 0);
    varint(&mut img, u64::from(height));
    key(&mut img, 2, 0);
    varint(&mut img, u64::from(width));
    key(&mut img, 3, 0);
    varint(&mut img, u64::from(colorspace));
    bytes_field(&mut img, 4, png);
    let mut v = Vec::new();
    bytes_field(&mut v, 1, tag.as_bytes());
    bytes_field(&mut v, 4, &img);
    summary_event(wall_time, step, &v)
}

/// Width, height and TensorBoard colorspace from a PNG's IHDR chunk, without decoding.
pub fn png_info(png: &[u8]) -> Option<(u32, u32, u32)> {
    if png.len() < 26 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let h = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    let colorspace = match png[25] {
        0 => 1,
        4 => 2,
        6 => 4,
        // RGB and palette (decoded to RGB by TensorBoard's PNG reader).
        _ => 3,
    };
    Some((w, h, colorspace))
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Host name for the file name, reduced to `[A-Za-z0-9._-]` so it stays one path segment.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

/// Appends events to `<run>/tb/events.out.tfevents.<unix_secs:010>.<host>`. One writer per
/// run; a resumed run creates a new file (never reusing one: a name clash within the same
/// second gets a `.2`, `.3`, … suffix), as TensorBoard expects.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl EventWriter {
    /// New event file under `run_dir/tb/`, named after the current time and host.
    pub fn create(run_dir: &Path) -> Result<Self> {
        Self::create_named(run_dir, now_secs() as u64, &host_name())
    }

    /// New event file with an explicit time stamp and host in its name (tests, replays).
    pub fn create_named(run_dir: &Path, unix_secs: u64, host: &str) -> Result<Self> {
        let dir = run_dir.join("tb");
        std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io {
            path: dir.clone(),
            source,
        })?;
        let base = format!("events.out.tfevents.{unix_secs:010}.{host}");
        for n in 1..10_000u32 {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    let mut w = EventWriter {
                        path,
                        out: BufWriter::new(f),
                    };
                    w.write_event(&encode_file_version_event(now_secs()))?;
                    w.flush()?;
                    return Ok(w);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(ReportError::Io { path, source }),
            }
        }
        Err(ReportError::Io {
            path: dir.join(base),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "no free event file name",
            ),
        })
    }

    /// The event file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: &[u8]) -> Result<()> {
        self.out
            .write_all(&frame_record(event))
            .map_err(|source| ReportError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn check_tag(tag: &str) -> Result<()> {
        if tag.is_empty() {
            return Err(ReportError::Tag {
                tag: tag.into(),
                msg: "empty tag".into(),
            });
        }
        Ok(())
    }

    /// Append one scalar.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<()> {
        Self::check_tag(tag)?;
        self.write_event(&encode_scalar_event(now_secs(), step, tag, value))
    }

    /// Append one PNG image of `w` x `h` pixels; the colorspace is read from the PNG header.
    pub fn image(&mut self, tag: &str, step: i64, png: &[u8], w: u32, h: u32) -> Result<()> {
        Self::check_tag(tag)?;
        let (pw, ph, colorspace) = png_info(png).ok_or_else(|| ReportError::Tag {
            tag: tag.into(),
            msg: "image bytes are not a PNG".into(),
        })?;
        if (pw, ph) != (w, h) {
            return Err(ReportError::Tag {
                tag: tag.into(),
                msg: format!("PNG is {pw}x{ph}, caller said {w}x{h}"),
            });
        }
        self.write_event(&encode_image_event(
            now_secs(),
            step,
            tag,
            png,
            w,
            h,
            colorspace,
        ))
    }

    /// Push buffered events to the file (TensorBoard reads files while they grow).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|source| ReportError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // Best effort: callers that care call flush() and see its error.
        let _ = self.out.flush();
    }
}

fn region_scalars(
    w: &mut EventWriter,
    prefix: &str,
    step: i64,
    regions: &BTreeMap<String, RegionStats>,
) -> Result<()> {
    for (region, s) in regions {
        for (stat, v) in [
            ("mass", s.mass),
            ("lift", s.lift),
            ("pointing", s.pointing),
            ("rank", s.rank),
        ] {
            w.scalar(&format!("{prefix}/{region}/{stat}"), step, v as f32)?;
        }
    }
    Ok(())
}

fn epoch_scalars(w: &mut EventWriter, e: &EpochMetrics) -> Result<()> {
    let s = &e.split;
    let step = i64::from(e.epoch);
    let mut put = |name: &str, v: Option<f64>| -> Result<()> {
        match v {
            Some(v) => w.scalar(&format!("{s}/{name}"), step, v as f32),
            None => Ok(()),
        }
    };
    put("loss", Some(e.loss))?;
    put("accuracy", Some(e.accuracy))?;
    put("balanced_accuracy", Some(e.balanced_accuracy))?;
    put("worst_group_accuracy", e.worst_group_accuracy)?;
    put("aligned_accuracy", e.aligned_accuracy)?;
    put("conflicting_accuracy", e.conflicting_accuracy)?;
    put("lr", e.lr)?;
    put("images_per_sec", e.images_per_sec)?;
    if let Some(p) = &e.pad {
        put("pad/threshold", Some(p.threshold))?;
        put("pad/accuracy_at_threshold", p.accuracy_at_threshold)?;
        put("pad/apcer", Some(p.apcer))?;
        put("pad/bpcer", Some(p.bpcer))?;
        put("pad/acer_non_iso", Some(p.acer_non_iso))?;
        put("pad/eer", Some(p.eer))?;
        put("pad/auc", Some(p.auc))?;
        put("pad/bpcer20", p.bpcer20)?;
        put("pad/bpcer100", p.bpcer100)?;
    }
    for (g, st) in &e.groups {
        put(&format!("group/{g}/accuracy"), Some(st.accuracy))?;
    }
    if s.starts_with(run::EXTRA_PREFIX) {
        // Extra data sets are compared on AUC first: keep it beside accuracy.
        put("auc", e.pad.as_ref().map(|p| p.auc))?;
    }
    Ok(())
}

fn cam_scalars(w: &mut EventWriter, c: &CamMetrics) -> Result<()> {
    let step = i64::from(c.epoch);
    let base = format!("cam/{}/{}", c.method, c.target.as_str());
    region_scalars(w, &base, step, &c.regions)?;
    region_scalars(w, &format!("{base}/aligned"), step, &c.aligned)?;
    region_scalars(w, &format!("{base}/conflicting"), step, &c.conflicting)?;
    for (class, regions) in &c.per_class {
        region_scalars(w, &format!("{base}/class-{class}"), step, regions)?;
    }
    Ok(())
}

/// Log one `metrics.jsonl` line as scalars, step = epoch. Tags: `<split>/loss`,
/// `<split>/accuracy`, `<split>/pad/eer`, `<split>/group/<group>/accuracy`, …; an
/// `[eval] extra` data set's split is `extra/<name>` and adds `extra/<name>/auc`;
/// `cam/<method>/<pred|true>/<region>/<mass|lift|pointing|rank>` and the same under
/// `…/<pred|true>/aligned/…`, `…/conflicting/…` and `…/class-<class>/…`.
pub fn log_metrics_line(w: &mut EventWriter, line: &MetricsLine) -> Result<()> {
    match line {
        MetricsLine::Epoch(e) => epoch_scalars(w, e),
        MetricsLine::Cam(c) => cam_scalars(w, c),
    }
}

fn read_png(path: &Path) -> Result<Option<(Vec<u8>, u32, u32)>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let (w, h, _) = png_info(&bytes).ok_or_else(|| ReportError::Corrupt {
                path: path.to_path_buf(),
                msg: "not a PNG".into(),
            })?;
            Ok(Some((bytes, w, h)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Longest side of the grid image logged to TensorBoard; larger grids are downsized.
pub const TB_GRID_MAX: u32 = 512;
/// Longest side of the per-probe overlays logged to TensorBoard.
pub const TB_TILE_MAX: u32 = 96;

/// PNG bytes of `png` scaled down (never up) so that its longer side is at most `max`.
fn downsized(path: &Path, png: Vec<u8>, w: u32, h: u32, max: u32) -> Result<(Vec<u8>, u32, u32)> {
    if w.max(h) <= max {
        return Ok((png, w, h));
    }
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .map_err(|e| ReportError::Corrupt {
            path: path.to_path_buf(),
            msg: format!("cannot decode PNG: {e}"),
        })?
        .to_rgb8();
    let k = f64::from(max) / f64::from(w.max(h));
    let (nw, nh) = (
        ((f64::from(w) * k).round() as u32).max(1),
        ((f64::from(h) * k).round() as u32).max(1),
    );
    let small = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    small
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(|e| ReportError::Encode {
            path: path.to_path_buf(),
            what: "downsized PNG",
            msg: e.to_string(),
        })?;
    Ok((out, nw, nh))
}

/// Log the images of one epoch's CAM dump that exist: `cam/grid` (grid.png, longer side at
/// most [`TB_GRID_MAX`]) and `cam/<method>/overlay/<NN>` per probe overlay tile (at most
/// [`TB_TILE_MAX`]): TensorBoard shows thumbnails, and full-size copies of every epoch made
/// its event file the largest thing in a run folder. Returns how many images were logged.
pub fn log_epoch_images(w: &mut EventWriter, run_dir: &Path, epoch: u32) -> Result<usize> {
    let step = i64::from(epoch);
    let mut n = 0;
    let dir = run::epoch_dir(run_dir, epoch);
    let grid = dir.join(run::GRID_PNG);
    if let Some((png, pw, ph)) = read_png(&grid)? {
        let (png, pw, ph) = downsized(&grid, png, pw, ph, TB_GRID_MAX)?;
        w.image("cam/grid", step, &png, pw, ph)?;
        n += 1;
    }
    if !dir.is_dir() {
        return Ok(n);
    }
    let e = crate::load::load_epoch(&dir, epoch)?;
    let colormap = e
        .probes
        .as_ref()
        .map(|p| p.colormap.clone())
        .unwrap_or_default();
    let stops = crate::maps::colormap_stops(&colormap);
    let mut from_strips: Vec<String> = Vec::new();
    if let Some(mf) = &e.maps {
        for (key, strip) in &mf.maps {
            let Some(method) = key.strip_suffix("/pred") else {
                continue;
            };
            let Some(path) = e.strips.get(key) else {
                continue;
            };
            let gray = crate::maps::read_strip(path)?;
            for probe in 0..strip.max.len() {
                let input = run::probe_input_png(run_dir, probe);
                if !input.is_file() {
                    continue;
                }
                let rgb = crate::maps::read_rgb(&input)?;
                let over =
                    crate::maps::overlay(&gray, probe, mf.height, &rgb, stops, (path, &input))?;
                let (w0, h0) = over.dimensions();
                let k = f64::from(TB_TILE_MAX) / f64::from(w0.max(h0));
                let over = if k < 1.0 {
                    let nw = ((f64::from(w0) * k).round() as u32).max(1);
                    let nh = ((f64::from(h0) * k).round() as u32).max(1);
                    image::imageops::resize(&over, nw, nh, image::imageops::FilterType::Triangle)
                } else {
                    over
                };
                let rgb = image::DynamicImage::ImageRgba8(over).to_rgb8();
                let mut png = Vec::new();
                rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|err| ReportError::Encode {
                        path: path.clone(),
                        what: "TensorBoard overlay",
                        msg: err.to_string(),
                    })?;
                w.image(
                    &format!(
                        "cam/{}/overlay/{probe:02}",
                        crate::load::method_file_stem(method)
                    ),
                    step,
                    &png,
                    rgb.width(),
                    rgb.height(),
                )?;
                n += 1;
            }
            from_strips.push(method.to_string());
        }
    }
    for ((probe, method, kind), path) in crate::load::scan_tiles(&dir)? {
        let done = from_strips
            .iter()
            .any(|m| *m == method || crate::load::method_file_stem(m) == method);
        if kind != "overlay" || done {
            continue;
        }
        if let Some((png, pw, ph)) = read_png(&path)? {
            let (png, pw, ph) = downsized(&path, png, pw, ph, TB_TILE_MAX)?;
            w.image(
                &format!("cam/{method}/overlay/{probe:02}"),
                step,
                &png,
                pw,
                ph,
            )?;
            n += 1;
        }
    }
    Ok(n)
}

/// Write a fresh event file for a whole run folder (every metrics line, every epoch's grid
/// and overlay tiles) — for runs trained without live TensorBoard logging. Returns its path.
pub fn export_run(run_dir: &Path) -> Result<PathBuf> {
    let run = crate::load::load_run(run_dir)?;
    let mut w = EventWriter::create(&run.dir)?;
    for line in &run.metrics {
        log_metrics_line(&mut w, line)?;
    }
    for e in &run.epochs {
        log_epoch_images(&mut w, &run.dir, e.epoch)?;
    }
    w.flush()?;
    Ok(w.path().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_encodes_multi_byte_and_negative_steps() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let e = event_head(0.0, -1);
        // key 0x10 then ten bytes of two's complement.
        assert_eq!(e.len(), 9 + 1 + 10);
    }

    #[test]
    fn large_images_are_downsized_for_tensorboard_small_ones_kept() {
        let img = image::RgbImage::from_pixel(200, 100, image::Rgb([10, 200, 30]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        let p = Path::new("x.png");
        let (small, w, h) = downsized(p, bytes.clone(), 200, 100, 96).unwrap();
        assert_eq!((w, h), (96, 48));
        assert_eq!(png_info(&small).map(|i| (i.0, i.1)), Some((96, 48)));
        let (same, w, h) = downsized(p, bytes.clone(), 200, 100, 200).unwrap();
        assert_eq!((same == bytes, w, h), (true, 200, 100));
    }

    #[test]
    fn png_info_reads_ihdr() {
        let img = image::RgbaImage::new(5, 3);
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        assert_eq!(png_info(&bytes), Some((5, 3, 4)));
        assert_eq!(png_info(b"GIF89a"), None);
    }
}
