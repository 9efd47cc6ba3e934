//! Error rates by slice: where, in a data set's own terms, a detector fails.
//!
//! A slice key names one value of every image: a field of its manifest `params` by a dotted
//! path (`screen.layout`, `camera.sensor-scale`; moirelab's generator records its draws
//! there, and a user's JSONL manifest may carry any), or one of its shortcut groups
//! (`groups.flag`), or arithmetic on numeric fields: products and quotients (`*`, `/`,
//! left to right) summed with `+` (`mask-areas.moire-area+mask-areas.bands-area`: zero for a
//! recapture that shows neither; `pitch_sensor/sensor_scale`: a display's pitch in output
//! pixels from a simulation's draws). Images are grouped by that value (text and booleans as
//! they are; numbers into bins: the quartiles of the values, or edges the user gives, or a row
//! per value when there are at most four) and each slice reports
//! APCER over its attacks and BPCER over its bona fide images at one threshold, the same
//! decisions as the data set's row. Images without the value form the slice `(none)`; for
//! the generator's screen fields these are the bona fide photos.

use crate::metrics::decisions_at;
use moirelab_core::dataset_format::ManifestRecord;
use serde_json::Value;
use std::collections::BTreeMap;

/// At most this many text values get their own row; the rarer ones share `(other)`.
pub const MAX_CATEGORIES: usize = 20;
/// A number key with 2 to this many distinct values gets a row per value (as many as the
/// quartile bins); with more, the quartiles.
pub const MAX_DISTINCT_NUMBERS: usize = 4;

/// A parsed `KEY` or `KEY=E1,E2,...` (bin edges for a numeric key).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceSpec {
    pub key: String,
    source: Source,
    pub edges: Option<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// One dotted path, its value as it is.
    Param(Vec<String>),
    /// Terms summed with `+`, each a product of paths (see [`Factor`]).
    Expr(Vec<Vec<Factor>>),
    Group(String),
}

/// One path of a product: multiplied into it (the first one, or after `*`) or divided
/// (after `/`).
#[derive(Debug, Clone, PartialEq)]
struct Factor {
    divide: bool,
    path: Vec<String>,
}

impl SliceSpec {
    /// `camera.sensor-scale`, `camera.sensor-scale=1.5,2,2.5`, `groups.flag`, `a.x+a.y=1`,
    /// `a.pitch/a.scale=0.45,0.9`. Edges must be finite and strictly increasing. A name that
    /// holds `.`, `+`, `*`, `/` or `=` itself is written in double quotes:
    /// `exif."f/number"`, `"iso+gain"`.
    pub fn parse(s: &str) -> Result<SliceSpec, String> {
        let bad_path = || {
            format!(
                "'{s}': give a dotted path into the images' params (e.g. screen.layout, \
                 camera.sensor-scale) or groups.<attribute>, or numeric paths joined by \
                 '+', '*' or '/', optionally =EDGE,EDGE,... (a name with one of .+*/= in it \
                 in double quotes)"
            )
        };
        fn unquoted<'a>(
            text: &'a str,
            at: &[char],
            whole: &str,
        ) -> Result<Vec<(Option<char>, &'a str)>, String> {
            split_unquoted(text, at)
                .ok_or_else(|| format!("'{whole}': a double quote is not closed"))
        }
        // The key ends at the first `=` outside quotes; the edges are all that follows.
        let halves = unquoted(s, &['='], s)?;
        let key = halves[0].1;
        let edges = (halves.len() > 1).then(|| &s[key.len() + 1..]);
        let key = key.trim();
        // Sum of products: `+` binds loosest, `*` and `/` apply left to right.
        let mut terms: Vec<Vec<Factor>> = Vec::new();
        for (_, term) in unquoted(key, &['+'], s)? {
            let mut factors = Vec::new();
            for (op, path) in unquoted(term, &['*', '/'], s)? {
                let mut segments = Vec::new();
                for (_, seg) in unquoted(path.trim(), &['.'], s)? {
                    // Only a quoted name may be empty (`""`, as `available_keys` lists one).
                    let name = match seg.strip_prefix('"') {
                        Some(inner) => inner.strip_suffix('"').filter(|n| !n.contains('"')),
                        None => (!seg.is_empty() && !seg.contains('"')).then_some(seg),
                    };
                    match name {
                        Some(n) => segments.push(n.to_string()),
                        None => return Err(bad_path()),
                    }
                }
                factors.push(Factor {
                    divide: op == Some('/'),
                    path: segments,
                });
            }
            terms.push(factors);
        }
        let arithmetic = terms.len() > 1 || terms[0].len() > 1;
        let first = &terms[0][0].path;
        let source = if first[0] == "groups" && !arithmetic {
            match first.as_slice() {
                [_, g] => Source::Group(g.clone()),
                _ => {
                    return Err(format!(
                        "'{key}': groups have one level (groups.<attribute>)"
                    ))
                }
            }
        } else if !arithmetic {
            Source::Param(terms.remove(0).remove(0).path)
        } else {
            if let Some(f) = terms.iter().flatten().find(|f| f.path[0] == "groups") {
                return Err(format!(
                    "'{key}': only numeric params can be combined with '+', '*' or '/', not {}",
                    f.path.join(".")
                ));
            }
            Source::Expr(terms)
        };
        let edges = match edges {
            None => None,
            Some(e) => {
                let mut out = Vec::new();
                for part in e.split(',') {
                    let v: f64 = part.trim().parse().map_err(|_| {
                        format!("'{s}': bin edge '{}' is not a number", part.trim())
                    })?;
                    if !v.is_finite() {
                        return Err(format!("'{s}': bin edge '{}' is not finite", part.trim()));
                    }
                    if out.last().is_some_and(|&last| v <= last) {
                        return Err(format!("'{s}': bin edges must increase"));
                    }
                    out.push(v);
                }
                Some(out)
            }
        };
        Ok(SliceSpec {
            key: key.to_string(),
            source,
            edges,
        })
    }

    /// The image's value of this key; `None` when it has none (or `null`). A sum is the sum
    /// of the terms the image has (a missing one counts as 0), `None` when it has none of
    /// them; a product or quotient needs every one of its paths, and one that is not finite
    /// (a division by zero) is missing too. A path that is not a number is returned as it
    /// is, so that the slicing names it.
    pub fn value(&self, rec: &ManifestRecord) -> Option<Value> {
        let at = |path: &[String]| {
            let mut v = &rec.params;
            for p in path {
                v = v.get(p)?;
            }
            (!v.is_null()).then(|| v.clone())
        };
        let terms = match &self.source {
            Source::Group(g) => return rec.groups.get(g).map(|v| Value::String(v.clone())),
            Source::Param(path) => return at(path),
            Source::Expr(terms) => terms,
        };
        let mut sum: Option<f64> = None;
        for factors in terms {
            let mut product = Some(1.0);
            for f in factors {
                match at(&f.path) {
                    Some(v) if !v.is_number() => return Some(v),
                    Some(v) => {
                        let x = v.as_f64().unwrap_or(f64::NAN);
                        product = product.map(|p| if f.divide { p / x } else { p * x });
                    }
                    None => product = None,
                }
            }
            // A division by zero leaves the term out, as a missing path does.
            if let Some(p) = product.filter(|p| p.is_finite()) {
                sum = Some(sum.unwrap_or(0.0) + p);
            }
        }
        sum.map(|x| serde_json::json!(x))
    }
}

/// `text` cut at each of the characters `at` that is outside double quotes, each piece with
/// the character before it (`None` for the first); `None` when a quote is left open.
fn split_unquoted<'a>(text: &'a str, at: &[char]) -> Option<Vec<(Option<char>, &'a str)>> {
    let mut pieces = Vec::new();
    let (mut quoted, mut start, mut before) = (false, 0, None);
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && at.contains(&c) {
            pieces.push((before, &text[start..i]));
            before = Some(c);
            start = i + c.len_utf8();
        }
    }
    (!quoted).then(|| {
        pieces.push((before, &text[start..]));
        pieces
    })
}

/// A params name as a key writes it: in double quotes when it holds a character that would
/// otherwise cut it.
fn key_segment(name: &str) -> String {
    if name.is_empty() || name.contains(['.', '+', '*', '/', '=']) {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

/// The leaf paths of a record's params (and its groups as `groups.<attribute>`), to name
/// what a key could have been.
pub fn available_keys(rec: &ManifestRecord) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        key_segment(k)
                    } else {
                        format!("{prefix}.{}", key_segment(k))
                    };
                    walk(&p, v, out);
                }
            }
            _ if !prefix.is_empty() => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", &rec.params, &mut out);
    out.extend(rec.groups.keys().map(|g| format!("groups.{g}")));
    out
}

/// One slice: its value (or bin), its images of each class and the errors among them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SliceRow {
    pub value: String,
    pub attacks: u64,
    pub bona_fide: u64,
    /// Attacks decided bona fide, over `attacks`; `None` when the slice has none.
    pub apcer: Option<f64>,
    /// Bona fide images decided attack, over `bona_fide`; `None` when the slice has none.
    pub bpcer: Option<f64>,
    /// Share of the slice's images decided right.
    pub accuracy: f64,
}

/// A data set's slices by one key, at one threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SliceTable {
    pub key: String,
    pub threshold: f64,
    /// The bin edges used for a numeric key (given or the quartiles); absent for text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f64>>,
    pub rows: Vec<SliceRow>,
}

/// Why a key cannot slice a data set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliceError {
    #[error("no image has '{key}'{}", key_list(.known))]
    Missing { key: String, known: Vec<String> },
    #[error("'{key}' is an object or a list, not a value{}", key_list(.known))]
    NotAValue { key: String, known: Vec<String> },
    #[error("'{key}' has bin edges but its values are not numbers (e.g. {example})")]
    EdgesOnText { key: String, example: String },
}

fn key_list(keys: &[String]) -> String {
    const SHOWN: usize = 40;
    if keys.is_empty() {
        return "; the images carry no params or groups".into();
    }
    let mut s = format!("; keys: {}", keys[..keys.len().min(SHOWN)].join(", "));
    if keys.len() > SHOWN {
        s.push_str(&format!(" (and {} more)", keys.len() - SHOWN));
    }
    s
}

/// How one key splits a data set's images: each image's row name, in the rows' order. It
/// depends on the images' values only, so it is built (and a bad key refused) before any
/// image is scored, once per data set, and [`Slicing::table`] applies it to each scored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Slicing {
    key: String,
    edges: Option<Vec<f64>>,
    /// Row name of each image.
    labels: Vec<String>,
    /// Row names in table order, `(none)` last.
    order: Vec<String>,
}

/// Split images by `spec`, `values[i]` being [`SliceSpec::value`] of image `i`. `known`
/// names the keys to suggest when the key is missing.
pub fn slicing(
    spec: &SliceSpec,
    values: &[Option<Value>],
    known: impl FnOnce() -> Vec<String>,
) -> Result<Slicing, SliceError> {
    if values.iter().all(Option::is_none) {
        return Err(SliceError::Missing {
            key: spec.key.clone(),
            known: known(),
        });
    }
    if values
        .iter()
        .flatten()
        .any(|v| v.is_object() || v.is_array())
    {
        let mut keys = known();
        keys.retain(|k| k.starts_with(&format!("{}.", spec.key)));
        return Err(SliceError::NotAValue {
            key: spec.key.clone(),
            known: keys,
        });
    }
    let numeric = values.iter().flatten().all(Value::is_number);
    let mut xs: Vec<f64> = values.iter().flatten().filter_map(Value::as_f64).collect();
    xs.sort_by(f64::total_cmp);
    let mut distinct = xs.clone();
    distinct.dedup();
    // A few distinct numbers (a photo side, a layout index) are values, not a range: one row
    // each, in numeric order, where quartile bins would lump or split them arbitrarily.
    let discrete =
        numeric && spec.edges.is_none() && (2..=MAX_DISTINCT_NUMBERS).contains(&distinct.len());
    let (labels, edges): (Vec<String>, Option<Vec<f64>>) = if numeric {
        let edges = (!discrete).then(|| spec.edges.clone().unwrap_or_else(|| quartile_edges(&xs)));
        let labels = values
            .iter()
            .map(|v| match (v.as_ref().and_then(Value::as_f64), &edges) {
                (Some(x), Some(e)) => bin_label(e, x),
                (Some(x), None) => format!("{x}"),
                (None, _) => NONE.to_string(),
            })
            .collect();
        (labels, edges)
    } else {
        if spec.edges.is_some() {
            let example = values
                .iter()
                .flatten()
                .find(|v| !v.is_number())
                .map(|v| v.to_string())
                .unwrap_or_default();
            return Err(SliceError::EdgesOnText {
                key: spec.key.clone(),
                example,
            });
        }
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for v in values.iter().flatten() {
            *counts.entry(text(v)).or_default() += 1;
        }
        let mut by_count: Vec<(&String, &usize)> = counts.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let kept: Vec<String> = by_count
            .iter()
            .take(MAX_CATEGORIES)
            .map(|(k, _)| (*k).clone())
            .collect();
        let labels = values
            .iter()
            .map(|v| match v {
                None => NONE.to_string(),
                Some(v) => {
                    let t = text(v);
                    if kept.contains(&t) {
                        t
                    } else {
                        OTHER.to_string()
                    }
                }
            })
            .collect();
        (labels, None)
    };
    // Rows in value or bin order for numbers, by name for text; (other) and (none) last.
    let mut order: Vec<String> = match &edges {
        _ if discrete => distinct.iter().map(|x| format!("{x}")).collect(),
        Some(e) => (0..=e.len()).map(|i| bin_name(e, i)).collect(),
        None => {
            let mut names: Vec<String> = labels
                .iter()
                .filter(|l| *l != NONE && *l != OTHER)
                .cloned()
                .collect();
            names.sort();
            names.dedup();
            names.push(OTHER.to_string());
            names
        }
    };
    order.push(NONE.to_string());
    Ok(Slicing {
        key: spec.key.clone(),
        edges,
        labels,
        order,
    })
}

impl Slicing {
    /// The rows at `threshold`: `scores[i]` is image `i`'s attack score and `is_attack[i]`
    /// its ground truth, in the order of the values the slicing was built from; the decision
    /// is attack iff `score >= threshold`, as in [`crate::metrics::pad_metrics`]. Rows with
    /// no image are left out.
    pub fn table(&self, scores: &[f64], is_attack: &[bool], threshold: f64) -> SliceTable {
        debug_assert!(self.labels.len() == scores.len() && scores.len() == is_attack.len());
        let mut rows = Vec::new();
        for name in &self.order {
            let (s, a): (Vec<f64>, Vec<bool>) = self
                .labels
                .iter()
                .zip(scores.iter().zip(is_attack))
                .filter(|(l, _)| *l == name)
                .map(|(_, (&s, &a))| (s, a))
                .unzip();
            if s.is_empty() {
                continue;
            }
            let d = decisions_at(&s, &a, threshold);
            let frac = |c: u64, n: u64| (n > 0).then(|| c as f64 / n as f64);
            rows.push(SliceRow {
                value: name.clone(),
                attacks: d.n_attack,
                bona_fide: d.n_bona,
                apcer: frac(d.missed, d.n_attack),
                bpcer: frac(d.false_alarms, d.n_bona),
                accuracy: d.accuracy(),
            });
        }
        SliceTable {
            key: self.key.clone(),
            threshold,
            edges: self.edges.clone(),
            rows,
        }
    }
}

const NONE: &str = "(none)";
const OTHER: &str = "(other)";

/// The distinct quartiles of sorted values (fewer edges when values repeat).
fn quartile_edges(sorted: &[f64]) -> Vec<f64> {
    let mut edges: Vec<f64> = Vec::new();
    if sorted.is_empty() {
        return edges;
    }
    for q in [0.25, 0.5, 0.75] {
        let i = ((sorted.len() as f64 * q).ceil() as usize).min(sorted.len() - 1);
        let e = sorted[i];
        // An edge at the smallest value would leave its bin empty.
        if e > sorted[0] && edges.last().is_none_or(|&l| e > l) {
            edges.push(e);
        }
    }
    edges
}

/// Name of bin `i` of `edges` (bin i holds `edges[i-1] <= x < edges[i]`).
fn bin_name(edges: &[f64], i: usize) -> String {
    let f = short;
    match (i.checked_sub(1).map(|j| edges[j]), edges.get(i)) {
        (None, None) => "all".to_string(),
        (None, Some(&hi)) => format!("< {}", f(hi)),
        (Some(lo), None) => format!(">= {}", f(lo)),
        (Some(lo), Some(&hi)) => format!("{} - {}", f(lo), f(hi)),
    }
}

/// `x` with at most four significant digits, without trailing zeros (the JSON keeps the
/// exact edges).
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn bin_label(edges: &[f64], x: f64) -> String {
    bin_name(edges, edges.partition_point(|&e| e <= x))
}

#[cfg(test)]
mod tests;
