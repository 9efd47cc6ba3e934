//! ImageFolder: `<root>/<split>/<class>/*` (or `<root>/<class>/*` without splits) walked
//! with hidden files, links and non-images reported, never followed blindly.

use super::{has_image_extension, normalize_split, IMAGE_EXTENSIONS};
use crate::check::{Problem, ProblemKind};
use crate::config::FollowLinks;
use crate::DataError;
use moirelab_core::dataset_format::ManifestRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// One folder entry, after the link policy: `dir` is whether it leads to a folder, `link`
/// whether it is a symbolic link (followed).
struct Entry {
    name: String,
    path: PathBuf,
    dir: bool,
    link: bool,
}

/// A folder walk that follows links only as `follow-links` allows and never walks a folder
/// twice: every folder is identified by its canonical path, so a link back to an ancestor
/// (a loop) or to another folder of the tree (an alias) is reported and not descended.
struct Walk<'a> {
    root: &'a Path,
    canon_root: PathBuf,
    follow: FollowLinks,
    /// canonical folder -> path (relative to the root) it was first walked as
    seen: BTreeMap<PathBuf, String>,
    problems: &'a mut Vec<Problem>,
}

impl Walk<'_> {
    fn link_refusal(&self, path: &Path) -> Option<String> {
        let target = std::fs::canonicalize(path);
        match (self.follow, target) {
            (FollowLinks::None, _) => Some(
                "symbolic link, not followed ([data] follow-links = \"none\")".to_string(),
            ),
            (_, Err(e)) => Some(format!("symbolic link that cannot be resolved ({e}); skipped")),
            (FollowLinks::Inside, Ok(t)) if !t.starts_with(&self.canon_root) => Some(format!(
                "symbolic link to {}, outside the data-set root; not followed (set [data] follow-links = \"all\" to follow it)",
                t.display()
            )),
            _ => None,
        }
    }

    /// Sorted, non-hidden entries of `dir`; refused links are reported and left out.
    fn entries(&mut self, dir: &Path) -> Result<Vec<Entry>, DataError> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
            let e = e.map_err(DataError::io(dir))?;
            let path = e.path();
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                // Records, reports and manifests name files by UTF-8 paths; a lossy name
                // would later read as "no such file".
                let rel = rel_of(self.root, dir);
                let shown = escaped(&e.file_name());
                self.problems.push(Problem::new(
                    ProblemKind::Unreadable,
                    Some(&if rel.is_empty() {
                        shown
                    } else {
                        format!("{rel}/{shown}")
                    }),
                    "name is not valid UTF-8 (bytes shown as \\xNN); rename it to use it",
                ));
                continue;
            };
            if is_hidden(&name) {
                continue;
            }
            let link = e.file_type().map_err(DataError::io(&path))?.is_symlink();
            if link {
                if let Some(why) = self.link_refusal(&path) {
                    let rel = rel_of(self.root, &path);
                    self.problems
                        .push(Problem::new(ProblemKind::LinkNotFollowed, Some(&rel), why));
                    continue;
                }
            }
            let dir = match std::fs::metadata(&path) {
                Ok(m) => m.is_dir(),
                Err(e) if link => {
                    let rel = rel_of(self.root, &path);
                    self.problems.push(Problem::new(
                        ProblemKind::LinkNotFollowed,
                        Some(&rel),
                        format!("symbolic link that cannot be followed ({e}); skipped"),
                    ));
                    continue;
                }
                Err(e) => return Err(DataError::io(&path)(e)),
            };
            out.push(Entry {
                name,
                path,
                dir,
                link,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether `dir` is walked for the first time; a repeat is reported.
    fn first_visit(&mut self, dir: &Path) -> bool {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let rel = rel_of(self.root, dir);
        if let Some(first) = self.seen.get(&key) {
            let first = if first.is_empty() {
                "the data-set root".to_string()
            } else {
                first.clone()
            };
            self.problems.push(Problem::new(
                ProblemKind::LinkLoop,
                Some(&rel),
                format!("leads to the same folder as {first} (a link loop or alias); walked once"),
            ));
            return false;
        }
        self.seen.insert(key, rel);
        true
    }
}

/// `<root>/<split>/<class>/**` when a split folder exists, else `<root>/<class>/**` (no
/// split: train, or the evaluated split). Class folders are walked recursively, in sorted
/// order; folders reached through links are walked after every real folder, so a link never
/// takes a folder from its own class, and each folder is walked once.
///
/// `only` (evaluation) walks that split's folders alone when there are any, so nothing in
/// another split (a link loop, an unreadable name, a million files) is visited or reported.
/// Without one, every split is walked, and the caller can name the splits there are.
pub(super) fn read_imagefolder(
    root: &Path,
    follow: FollowLinks,
    only: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ManifestRecord>, DataError> {
    let canon_root = std::fs::canonicalize(root).map_err(DataError::io(root))?;
    let mut walk = Walk {
        root,
        canon_root,
        follow,
        seen: BTreeMap::new(),
        problems,
    };
    walk.first_visit(root);
    let top = walk.entries(root)?;
    let split_dirs: Vec<(&'static str, PathBuf)> = top
        .iter()
        .filter(|e| e.dir)
        .filter_map(|e| {
            let s = normalize_split(&e.name)?;
            // "" never names a folder; only real split names count
            (!e.name.is_empty()).then(|| (s, e.path.clone()))
        })
        .collect();
    let split_dirs = match only {
        Some(want) if split_dirs.iter().any(|(s, _)| *s == want) => {
            split_dirs.into_iter().filter(|(s, _)| *s == want).collect()
        }
        _ => split_dirs,
    };
    let mut ignored: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let layout: Vec<(&'static str, PathBuf)> = if split_dirs.is_empty() {
        vec![("", root.to_path_buf())]
    } else {
        for e in &top {
            if normalize_split(&e.name).is_none() {
                ignored.push(e.name.clone());
            }
        }
        split_dirs
    };
    // (split, class, folder) reached through a link, walked after all real folders.
    let mut deferred: Vec<(&'static str, String, PathBuf)> = Vec::new();
    let walk_class = |walk: &mut Walk<'_>,
                      split: &'static str,
                      class: &str,
                      start: PathBuf,
                      deferred: &mut Vec<(&'static str, String, PathBuf)>,
                      records: &mut Vec<ManifestRecord>,
                      ignored: &mut Vec<String>|
     -> Result<(), DataError> {
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            if !walk.first_visit(&d) {
                continue;
            }
            let entries = walk.entries(&d)?;
            // depth-first but sorted: push sub-folders in reverse
            for e in entries.iter().rev() {
                if e.dir && e.link {
                    deferred.push((split, class.to_string(), e.path.clone()));
                } else if e.dir {
                    stack.push(e.path.clone());
                } else if !has_image_extension(Path::new(&e.name)) {
                    ignored.push(rel_of(walk.root, &e.path));
                }
            }
            for e in entries {
                if !e.dir && has_image_extension(Path::new(&e.name)) {
                    records.push(ManifestRecord {
                        path: rel_of(walk.root, &e.path),
                        label: class.to_string(),
                        split: split.to_string(),
                        groups: BTreeMap::new(),
                        mask: None,
                        boxes: BTreeMap::new(),
                        flag_twin: None,
                        params: serde_json::Value::Null,
                    });
                }
            }
        }
        Ok(())
    };
    for (split, dir) in layout {
        if dir != root && !walk.first_visit(&dir) {
            continue;
        }
        for e in walk.entries(&dir)? {
            if !e.dir {
                ignored.push(rel_of(root, &e.path));
                continue;
            }
            walk_class(
                &mut walk,
                split,
                &e.name,
                e.path,
                &mut deferred,
                &mut records,
                &mut ignored,
            )?;
        }
    }
    let mut k = 0;
    while k < deferred.len() {
        let (split, class, dir) = deferred[k].clone();
        walk_class(
            &mut walk,
            split,
            &class,
            dir,
            &mut deferred,
            &mut records,
            &mut ignored,
        )?;
        k += 1;
    }
    if !ignored.is_empty() {
        let shown: Vec<&str> = ignored.iter().take(5).map(String::as_str).collect();
        walk.problems.push(Problem::new(
            ProblemKind::Ignored,
            None,
            format!(
                "{} entries without an image extension ({}) or outside <split>/<class>/ ignored: {}{}",
                ignored.len(),
                IMAGE_EXTENSIONS.join(", "),
                shown.join(", "),
                if ignored.len() > 5 { ", …" } else { "" }
            ),
        ));
    }
    Ok(records)
}

/// A file name for messages: valid UTF-8 as is, other bytes as `\xNN`.
fn escaped(name: &std::ffi::OsStr) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::new();
        for chunk in name.as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        name.to_string_lossy().into_owned()
    }
}

fn rel_of(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
