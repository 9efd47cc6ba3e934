//! A user's own manifest: CSV (RFC 4180) or JSONL, one record per image with its path,
//! label, split, groups and boxes.

use crate::check::{Problem, ProblemKind};
use crate::DataError;
use moirelab_core::dataset_format::ManifestRecord;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A line of a user JSONL manifest: like `ManifestRecord`, with `split` optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    path: String,
    label: String,
    #[serde(default)]
    split: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, String>,
    #[serde(default)]
    mask: Option<String>,
    #[serde(default)]
    boxes: BTreeMap<String, [u32; 4]>,
    #[serde(default)]
    flag_twin: Option<String>,
    #[serde(default)]
    params: serde_json::Value,
}

/// A manifest's text. A file that is not UTF-8 text (an image, an archive) is named as such
/// instead of with the decoder's "stream did not contain valid UTF-8".
fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = moirelab_core::fsio::read_capped(
        path,
        "a manifest",
        moirelab_core::fsio::MANIFEST_MAX_BYTES,
    )?;
    String::from_utf8(bytes).map_err(|_| DataError::Layout {
        root: path.to_path_buf(),
        msg: "not a text file; a manifest is CSV or JSONL text (UTF-8)".into(),
    })
}

pub(super) fn read_user_jsonl(path: &Path) -> Result<Vec<ManifestRecord>, DataError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let u: UserRecord = serde_json::from_str(line).map_err(|e| DataError::Manifest {
            path: path.to_path_buf(),
            line: i + 1,
            msg: e.to_string(),
        })?;
        out.push(ManifestRecord {
            path: u.path,
            label: u.label,
            split: u.split.unwrap_or_default(),
            groups: u.groups,
            mask: u.mask,
            boxes: u.boxes,
            flag_twin: u.flag_twin,
            params: u.params,
        });
    }
    Ok(out)
}

/// A CSV row: (line number where it starts, fields).
pub(crate) type CsvRow = (usize, Vec<String>);

/// RFC 4180 CSV: quoted fields, `""` escapes, CRLF or LF, newlines inside quotes, a UTF-8
/// BOM. Returns (line number of the row's start, fields).
pub(crate) fn parse_csv(text: &str) -> Result<Vec<CsvRow>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut field_started_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !field_started_quoted => {
                in_quotes = true;
                field_started_quoted = true;
            }
            '"' => return Err((line, "stray quote inside an unquoted field".into())),
            ',' => {
                row.push(std::mem::take(&mut field));
                field_started_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                field_started_quoted = false;
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push((row_line, std::mem::take(&mut row)));
                } else {
                    row.clear();
                }
                line += 1;
                row_line = line;
            }
            _ => {
                if field_started_quoted {
                    return Err((line, "text after a closing quote".into()));
                }
                field.push(c)
            }
        }
    }
    if in_quotes {
        return Err((row_line, "unterminated quoted field".into()));
    }
    if !field.is_empty() || !row.is_empty() || field_started_quoted {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

pub(super) fn parse_box(s: &str) -> Option<[u32; 4]> {
    let v: Vec<u32> = s
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    <[u32; 4]>::try_from(v).ok()
}

/// CSV with a header row. Columns: `path` (or `file`, `filename`, `image`), `label` (or
/// `class`), optional `split`, `mask`, `group:<attr>` / `group.<attr>`, and `box:<region>`
/// holding `x0 y0 x1 y1`. Other columns are reported and ignored.
pub(super) fn read_csv(
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ManifestRecord>, DataError> {
    let text = read_text(path)?;
    let bad = |line: usize, msg: String| DataError::Manifest {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let rows = parse_csv(&text).map_err(|(l, m)| bad(l, m))?;
    let Some(((_, header), body)) = rows.split_first() else {
        return Err(bad(1, "empty CSV: expected a header row".into()));
    };
    enum Col {
        Path,
        Label,
        Split,
        Mask,
        Group(String),
        Box(String),
        Ignore,
    }
    let mut cols = Vec::new();
    let mut ignored = Vec::new();
    for h in header {
        let name = h.trim();
        let lower = name.to_ascii_lowercase();
        let col = match lower.as_str() {
            "path" | "file" | "filename" | "image" => Col::Path,
            "label" | "class" => Col::Label,
            "split" => Col::Split,
            "mask" => Col::Mask,
            _ => {
                if let Some(g) = name.strip_prefix("group:").or(name.strip_prefix("group.")) {
                    Col::Group(g.to_string())
                } else if let Some(b) = name.strip_prefix("box:").or(name.strip_prefix("box.")) {
                    Col::Box(b.to_string())
                } else {
                    ignored.push(name.to_string());
                    Col::Ignore
                }
            }
        };
        cols.push(col);
    }
    if !cols.iter().any(|c| matches!(c, Col::Path)) || !cols.iter().any(|c| matches!(c, Col::Label))
    {
        return Err(bad(
            1,
            format!(
                "header [{}] needs a 'path' and a 'label' column",
                header.join(", ")
            ),
        ));
    }
    if !ignored.is_empty() {
        problems.push(Problem::new(
            ProblemKind::Ignored,
            None,
            format!(
                "CSV columns ignored: {} (known: path, label, split, mask, group:<attr>, box:<region>)",
                ignored.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for (line, row) in body {
        if row.len() != header.len() {
            return Err(bad(
                *line,
                format!("{} fields, header has {}", row.len(), header.len()),
            ));
        }
        let mut rec = ManifestRecord {
            path: String::new(),
            label: String::new(),
            split: String::new(),
            groups: BTreeMap::new(),
            mask: None,
            boxes: BTreeMap::new(),
            flag_twin: None,
            params: serde_json::Value::Null,
        };
        for (col, v) in cols.iter().zip(row) {
            let v = v.trim();
            match col {
                Col::Path => rec.path = v.to_string(),
                Col::Label => rec.label = v.to_string(),
                Col::Split => rec.split = v.to_string(),
                Col::Mask if !v.is_empty() => rec.mask = Some(v.to_string()),
                Col::Group(g) if !v.is_empty() => {
                    rec.groups.insert(g.clone(), v.to_string());
                }
                Col::Box(b) if !v.is_empty() => {
                    let bx = parse_box(v).ok_or_else(|| {
                        bad(
                            *line,
                            format!("box:{b} '{v}' is not four integers x0 y0 x1 y1"),
                        )
                    })?;
                    rec.boxes.insert(b.clone(), bx);
                }
                _ => {}
            }
        }
        if rec.path.is_empty() || rec.label.is_empty() {
            return Err(bad(*line, "empty path or label".into()));
        }
        out.push(rec);
    }
    Ok(out)
}
