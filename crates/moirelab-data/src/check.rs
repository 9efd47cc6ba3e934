//! What validation found: counts per split/class/group, image sizes and formats, and every
//! problem, each with a severity. `Display` renders the table `moirelab data check` prints.

use moirelab_core::dataset_format::ARTIFACT_REGIONS;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Errors stop a run (unless `on-bad-image = "skip"`); warnings are reported and tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The kind of a problem; fixes its severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The file could not be read (permissions, I/O error).
    Unreadable,
    /// The manifest names a file that does not exist.
    MissingFile,
    /// Zero bytes.
    EmptyFile,
    /// Content matches no supported image format.
    NotAnImage,
    /// Decoder failed (truncated or corrupt data).
    Corrupt,
    /// A side below `min-image-size`.
    TooSmall,
    /// A manifest path is absolute or contains `..`.
    PathEscapesRoot,
    /// A label not among the configured classes.
    UnknownLabel,
    /// A split name other than train/val/test.
    UnknownSplit,
    /// A class without training images.
    EmptyClass,
    /// Grayscale, converted to RGB.
    Grayscale,
    /// Alpha channel dropped.
    Alpha,
    /// 16-bit or float samples scaled to 8 bits.
    HighBitDepth,
    /// CMYK/YCCK JPEG converted to RGB.
    Cmyk,
    /// Content format differs from the file extension.
    ExtensionMismatch,
    /// Smaller than the working resolution, upscaled.
    Upscaled,
    /// Patch mode: larger than `patch-max-side`, downscaled.
    Downscaled,
    /// Identical pixels in two different splits (leakage).
    DuplicateAcrossSplits,
    /// Identical pixels twice in one split.
    DuplicateWithinSplit,
    /// Nearly the same picture (perceptual hash within `NEAR_BITS`) in two splits: a
    /// re-encoded, resized or retouched copy (leakage).
    NearDuplicateAcrossSplits,
    /// Largest/smallest class ratio in train above `max-imbalance`.
    ClassImbalance,
    /// Region mask missing, unreadable or not aligned; regions unavailable for that image.
    BadMask,
    /// Files or manifest columns that were ignored.
    Ignored,
    /// The decode cache could not be written; kept in memory.
    CacheFallback,
    /// A disk decode cache was damaged (its pixels no longer match their checksums, or its
    /// files do not parse) and was rebuilt from the images.
    CacheRebuilt,
    /// The header declares more pixels than `max-pixels` (or the file is larger than any
    /// image of that size), or a side above what its format's decoder reads (BMP: 65535);
    /// refused before decoding.
    TooLarge,
    /// The same file (path, or the same file reached through a link) in two splits.
    DuplicatePathAcrossSplits,
    /// The same file listed twice in one split; used once.
    DuplicatePathWithinSplit,
    /// The same file listed twice with different labels; used under neither.
    ConflictingLabels,
    /// A symbolic link that was not followed (it leads out of the root, or links are off).
    LinkNotFollowed,
    /// A folder reached a second time through a link (a loop or an alias); walked once.
    LinkLoop,
    /// A val or test split without any image of a class: its metrics and the threshold
    /// fixed on it mean nothing for that class.
    MissingClass,
    /// Like `MissingClass`, tolerated because `allow-missing-class = true`.
    MissingClassAllowed,
}

impl ProblemKind {
    pub fn severity(self) -> Severity {
        use ProblemKind::*;
        match self {
            Unreadable
            | MissingFile
            | EmptyFile
            | NotAnImage
            | Corrupt
            | TooSmall
            | PathEscapesRoot
            | UnknownLabel
            | UnknownSplit
            | EmptyClass
            | TooLarge
            | DuplicatePathAcrossSplits
            | ConflictingLabels
            | MissingClass => Severity::Error,
            _ => Severity::Warning,
        }
    }

    /// Whether the problem disqualifies the file it names (dropped under `skip`).
    pub(crate) fn disqualifies_file(self) -> bool {
        self.severity() == Severity::Error
            && !matches!(self, ProblemKind::EmptyClass | ProblemKind::MissingClass)
    }

    fn title(self) -> &'static str {
        use ProblemKind::*;
        match self {
            Unreadable => "unreadable files",
            MissingFile => "missing files",
            EmptyFile => "empty files",
            NotAnImage => "not images",
            Corrupt => "truncated or corrupt images",
            TooSmall => "images too small",
            PathEscapesRoot => "paths outside the data-set root",
            UnknownLabel => "unknown labels",
            UnknownSplit => "unknown splits",
            EmptyClass => "classes without training images",
            Grayscale => "grayscale images (converted to RGB)",
            Alpha => "images with alpha (alpha dropped)",
            HighBitDepth => "16-bit/float images (scaled to 8 bits)",
            Cmyk => "CMYK JPEGs (converted to RGB)",
            ExtensionMismatch => "extension does not match content",
            Upscaled => "images smaller than the working size (upscaled)",
            Downscaled => "images above patch-max-side (downscaled)",
            DuplicateAcrossSplits => "same image in two splits",
            DuplicateWithinSplit => "same image twice in one split",
            NearDuplicateAcrossSplits => {
                "nearly the same image in two splits (a re-encoded or resized copy?)"
            }
            ClassImbalance => "class imbalance",
            BadMask => "region masks unusable",
            Ignored => "ignored",
            CacheFallback => "decode cache",
            CacheRebuilt => "decode cache damaged (rebuilt)",
            TooLarge => "images too large to decode (max-pixels or the format's limit)",
            DuplicatePathAcrossSplits => "same file in two splits",
            DuplicatePathWithinSplit => "same file listed twice in one split (used once)",
            ConflictingLabels => "same file listed with two labels",
            LinkNotFollowed => "symbolic links not followed",
            LinkLoop => "folders reached twice through links (walked once)",
            MissingClass | MissingClassAllowed => "splits missing a class",
        }
    }
}

/// One finding. `path` is relative to the data-set root when the problem is about a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub path: Option<String>,
    pub message: String,
}

impl Problem {
    /// A problem is one line: line breaks in the message (decoder texts, file names) become
    /// spaces.
    pub fn new(kind: ProblemKind, path: Option<&str>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = if message.contains(['\n', '\r']) {
            message.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            message
        };
        Problem {
            kind,
            path: path.map(str::to_string),
            message,
        }
    }

    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            // a file name may hold control characters (a newline would split the line)
            Some(p) if p.chars().any(char::is_control) => {
                write!(f, "{}: {}", p.escape_debug(), self.message)
            }
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Image counts of one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    pub images: usize,
    /// class -> images
    pub classes: BTreeMap<String, usize>,
    /// "attr=value" -> images
    pub groups: BTreeMap<String, usize>,
}

/// How often each mask region is present (covers at least 0.1 % of the image) in the masked
/// images of one split and class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionPresence {
    /// Images with a usable mask.
    pub masked: usize,
    /// region -> images in which it is present
    pub regions: BTreeMap<String, usize>,
    /// Images with none of the artifact regions
    /// ([`moirelab_core::dataset_format::ARTIFACT_REGIONS`]) present; `None` when the data
    /// set has none of them.
    pub no_artifact: Option<usize>,
}

/// Everything one validation pass learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub root: PathBuf,
    /// The layout that was read (`moirelab`, `imagefolder`, `csv`, `jsonl`).
    pub format: String,
    /// Records in the manifest / files found.
    pub files: usize,
    /// Images usable for training/eval (after dropping bad files under `skip`).
    pub usable: usize,
    pub classes: Vec<String>,
    /// Per split (`train`, `val`, `test`), counted over usable images.
    pub splits: BTreeMap<String, SplitStats>,
    /// Native (width, height) -> images, over decodable images.
    pub sizes: BTreeMap<String, usize>,
    /// Decoded colour type (e.g. `Rgb8`, `L8`) -> images.
    pub color_types: BTreeMap<String, usize>,
    /// File format (e.g. `png`, `jpeg`) -> images.
    pub file_formats: BTreeMap<String, usize>,
    /// Images rotated upright from EXIF orientation.
    pub exif_rotated: usize,
    /// Records carved from train into val (`val-fraction`), when the data set had no val.
    pub val_carved: usize,
    /// Records with a usable region mask.
    pub with_masks: usize,
    /// split -> class -> region presence, over usable images with masks. For a recapture
    /// data set this says how many screen images show any screen artifact at all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub presence: BTreeMap<String, BTreeMap<String, RegionPresence>>,
    pub problems: Vec<Problem>,
    /// Files dropped under `on-bad-image = "skip"`.
    pub skipped: Vec<String>,
}

/// How many example files `Display` lists per problem kind.
const EXAMPLES: usize = 5;

impl CheckReport {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity() == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity() == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Drop the findings that only matter for training (classes without training images,
    /// class imbalance in train): what `eval --data` and `data check --eval` report.
    pub fn for_evaluation(&mut self) {
        self.problems.retain(|p| {
            !matches!(
                p.kind,
                ProblemKind::EmptyClass | ProblemKind::ClassImbalance
            )
        });
    }

    /// Problems of one kind.
    pub fn of_kind(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }

    /// Up to `max` errors as `path: reason; …` for one-line error messages.
    pub fn error_listing(&self, max: usize) -> String {
        let errors: Vec<&Problem> = self.errors().collect();
        let mut s = errors
            .iter()
            .take(max)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        if errors.len() > max {
            s.push_str(&format!("; … and {} more", errors.len() - max));
        }
        s
    }
}

fn size_key(w: u32, h: u32) -> String {
    format!("{w}x{h}")
}

pub(crate) fn count_size(map: &mut BTreeMap<String, usize>, w: u32, h: u32) {
    *map.entry(size_key(w, h)).or_default() += 1;
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "data set {} ({}): {} files, {} usable, classes [{}]",
            self.root.display(),
            self.format,
            self.files,
            self.usable,
            self.classes.join(", ")
        )?;
        // split × class table
        let cw = self
            .classes
            .iter()
            .map(|c| c.len())
            .chain([6])
            .max()
            .unwrap_or(6);
        write!(f, "  {:<6} {:>7}", "split", "images")?;
        for c in &self.classes {
            write!(f, " {c:>cw$}")?;
        }
        writeln!(f)?;
        for (name, s) in &self.splits {
            write!(f, "  {name:<6} {:>7}", s.images)?;
            for c in &self.classes {
                write!(f, " {:>cw$}", s.classes.get(c).copied().unwrap_or(0))?;
            }
            writeln!(f)?;
        }
        for (name, s) in &self.splits {
            if !s.groups.is_empty() {
                let g: Vec<String> = s.groups.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                writeln!(f, "  groups in {name}: {}", g.join(", "))?;
            }
        }
        if self.val_carved > 0 {
            writeln!(
                f,
                "  val: {} images carved from train (stratified by class and group)",
                self.val_carved
            )?;
        }
        let mut sizes: Vec<(&String, &usize)> = self.sizes.iter().collect();
        sizes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = sizes
            .iter()
            .take(5)
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let more = if sizes.len() > 5 {
            format!(", … {} more sizes", sizes.len() - 5)
        } else {
            String::new()
        };
        writeln!(f, "  sizes: {}{more}", shown.join(", "))?;
        let join = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "  formats: {}", join(&self.file_formats))?;
        writeln!(f, "  channels: {}", join(&self.color_types))?;
        if self.exif_rotated > 0 {
            writeln!(f, "  exif-rotated: {}", self.exif_rotated)?;
        }
        writeln!(f, "  region masks: {}", self.with_masks)?;
        write_presence(f, &self.presence)?;
        // Problems grouped by kind, errors first.
        let mut kinds: BTreeMap<(Severity, ProblemKind), Vec<&Problem>> = BTreeMap::new();
        for p in &self.problems {
            kinds.entry((p.severity(), p.kind)).or_default().push(p);
        }
        for ((sev, kind), ps) in &kinds {
            let tag = match sev {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(f, "{tag}: {} ({})", kind.title(), ps.len())?;
            for p in ps.iter().take(EXAMPLES) {
                writeln!(f, "    {p}")?;
            }
            if ps.len() > EXAMPLES {
                writeln!(f, "    … and {} more", ps.len() - EXAMPLES)?;
            }
        }
        if !self.skipped.is_empty() {
            writeln!(
                f,
                "skipped (on-bad-image = \"skip\"): {} files",
                self.skipped.len()
            )?;
        }
        let (e, w) = (self.errors().count(), self.warnings().count());
        write!(f, "{e} error(s), {w} warning(s)")
    }
}

/// The "regions present" table: one row per split and class, one column per region that is
/// present in some masked images but not all (regions every image has say nothing), and the
/// share with no artifact region.
fn write_presence(
    f: &mut fmt::Formatter<'_>,
    presence: &BTreeMap<String, BTreeMap<String, RegionPresence>>,
) -> fmt::Result {
    let rows: Vec<(&String, &String, &RegionPresence)> = presence
        .iter()
        .flat_map(|(split, by_class)| by_class.iter().map(move |(c, p)| (split, c, p)))
        .filter(|(_, _, p)| p.masked > 0)
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    // BTreeSet: columns in name order.
    let columns: BTreeSet<&String> = rows
        .iter()
        .flat_map(|(_, _, p)| p.regions.iter().filter(|(_, &n)| n > 0).map(|(r, _)| r))
        .filter(|r| {
            rows.iter()
                .any(|(_, _, p)| p.regions.get(*r).copied().unwrap_or(0) < p.masked)
        })
        .collect();
    let artifacts = rows.iter().any(|(_, _, p)| p.no_artifact.is_some());
    if columns.is_empty() && !artifacts {
        return Ok(());
    }
    let cw = rows
        .iter()
        .map(|(_, c, _)| c.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    writeln!(
        f,
        "  regions present (>= {}% of the image), share of masked images:",
        100.0 * crate::cache::PRESENT_SHARE
    )?;
    let none = format!("no {}", ARTIFACT_REGIONS.join(" or "));
    write!(f, "    {:<6} {:<cw$} {:>7}", "split", "class", "masked")?;
    for r in &columns {
        write!(f, " {:>w$}", r, w = r.len().max(5))?;
    }
    if artifacts {
        write!(f, " {none:>w$}", w = none.len())?;
    }
    writeln!(f)?;
    let pct = |n: usize, of: usize| format!("{:.0}%", 100.0 * n as f64 / of as f64);
    for (split, class, p) in rows {
        write!(f, "    {split:<6} {class:<cw$} {:>7}", p.masked)?;
        for r in &columns {
            let n = p.regions.get(*r).copied().unwrap_or(0);
            write!(f, " {:>w$}", pct(n, p.masked), w = r.len().max(5))?;
        }
        if artifacts {
            let cell = p.no_artifact.map(|n| pct(n, p.masked)).unwrap_or_default();
            write!(f, " {cell:>w$}", w = none.len())?;
        }
        writeln!(f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_groups_problems_by_kind_errors_first_and_counts_them() {
        let mut r = CheckReport {
            root: "d".into(),
            format: "imagefolder".into(),
            classes: vec!["direct".into(), "screen".into()],
            ..Default::default()
        };
        r.splits.insert(
            "train".into(),
            SplitStats {
                images: 3,
                classes: [("direct".to_string(), 1), ("screen".to_string(), 2)].into(),
                groups: BTreeMap::new(),
            },
        );
        for i in 0..7 {
            r.problems.push(Problem::new(
                ProblemKind::Grayscale,
                Some(&format!("g{i}.png")),
                "grayscale (L8), replicated to RGB",
            ));
        }
        r.problems.push(Problem::new(
            ProblemKind::EmptyFile,
            Some("z.png"),
            "empty file (0 bytes)",
        ));
        let s = r.to_string();
        let err_at = s.find("error: empty files (1)").unwrap();
        let warn_at = s.find("warning: grayscale images").unwrap();
        assert!(err_at < warn_at, "{s}");
        assert!(s.contains("… and 2 more"), "{s}");
        assert!(s.contains("  train        3      1      2"), "{s}");
        assert!(s.ends_with("1 error(s), 7 warning(s)"), "{s}");
        assert!(r.has_errors());
        assert_eq!(r.error_listing(20), "z.png: empty file (0 bytes)");
    }
}
