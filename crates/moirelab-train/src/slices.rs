//! Error rates by slice: where, in a data set's own terms, a detector fails.
//!
//! A slice key names one value of every image: a field of its manifest `params` by a dotted
//! path (`screen.layout`, `camera.sensor-scale`; moirelab's generator records its draws
//! there, and a user's JSONL manifest may carry any), or one of its shortcut groups
//! (`groups.flag`), or the sum of several numeric fields (`mask-areas.moire-area+mask-areas.
//! bands-area`: zero for a recapture that shows neither). Images are grouped by that value (text and booleans as they are; numbers
//! into bins: the quartiles of the values, or edges the user gives, or a row per value when
//! there are at most four) and each slice reports
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
    /// One dotted path, or several joined by `+` whose numbers are summed.
    Param(Vec<Vec<String>>),
    Group(String),
}

impl SliceSpec {
    /// `camera.sensor-scale`, `camera.sensor-scale=1.5,2,2.5`, `groups.flag`, `a.x+a.y=1`.
    /// Edges must be finite and strictly increasing.
    pub fn parse(s: &str) -> Result<SliceSpec, String> {
        let (key, edges) = match s.split_once('=') {
            Some((k, e)) => (k.trim(), Some(e)),
            None => (s.trim(), None),
        };
        let terms: Vec<&str> = key.split('+').map(str::trim).collect();
        if terms
            .iter()
            .any(|t| t.is_empty() || t.split('.').any(str::is_empty))
        {
            return Err(format!(
                "'{s}': give a dotted path into the images' params (e.g. screen.layout, \
                 camera.sensor-scale) or groups.<attribute>, or numeric paths joined by '+', \
                 optionally =EDGE,EDGE,..."
            ));
        }
        let source = match key.strip_prefix("groups.") {
            Some(_) if terms.len() > 1 => {
                return Err(format!(
                    "'{key}': only numeric params can be summed with '+', not groups"
                ))
            }
            Some(g) if !g.contains('.') => Source::Group(g.to_string()),
            Some(_) => {
                return Err(format!(
                    "'{key}': groups have one level (groups.<attribute>)"
                ))
            }
            None => {
                if let Some(t) = terms.iter().skip(1).find(|t| t.starts_with("groups.")) {
                    return Err(format!(
                        "'{key}': only numeric params can be summed with '+', not {t}"
                    ));
                }
                Source::Param(
                    terms
                        .iter()
                        .map(|t| t.split('.').map(str::to_string).collect())
                        .collect(),
                )
            }
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
    /// them; a term that is not a number is returned as it is, so that the slicing names it.
    pub fn value(&self, rec: &ManifestRecord) -> Option<Value> {
        let at = |path: &[String]| {
            let mut v = &rec.params;
            for p in path {
                v = v.get(p)?;
            }
            (!v.is_null()).then(|| v.clone())
        };
        match &self.source {
            Source::Group(g) => rec.groups.get(g).map(|v| Value::String(v.clone())),
            Source::Param(paths) if paths.len() == 1 => at(&paths[0]),
            Source::Param(paths) => {
                let present: Vec<Value> = paths.iter().filter_map(|p| at(p)).collect();
                if let Some(v) = present.iter().find(|v| !v.is_number()) {
                    return Some(v.clone());
                }
                let sum: f64 = present.iter().filter_map(Value::as_f64).sum();
                (!present.is_empty()).then(|| serde_json::json!(sum))
            }
        }
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
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
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
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(params: Value, groups: &[(&str, &str)]) -> ManifestRecord {
        ManifestRecord {
            path: "x.png".into(),
            label: "screen".into(),
            split: "test".into(),
            groups: groups
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mask: None,
            boxes: Default::default(),
            flag_twin: None,
            params,
        }
    }

    fn none_known() -> Vec<String> {
        vec![]
    }

    /// [`slicing`] then [`Slicing::table`], as `eval` runs them.
    fn slice(
        spec: &SliceSpec,
        values: &[Option<Value>],
        scores: &[f64],
        is_attack: &[bool],
        threshold: f64,
        known: impl FnOnce() -> Vec<String>,
    ) -> Result<SliceTable, SliceError> {
        Ok(slicing(spec, values, known)?.table(scores, is_attack, threshold))
    }

    #[test]
    fn parse_accepts_paths_groups_and_increasing_edges() {
        let s = SliceSpec::parse("camera.sensor-scale=1.5, 2,2.5").unwrap();
        assert_eq!(s.key, "camera.sensor-scale");
        assert_eq!(s.edges, Some(vec![1.5, 2.0, 2.5]));
        let g = SliceSpec::parse("groups.flag").unwrap();
        assert_eq!(
            g.value(&rec(Value::Null, &[("flag", "A")])),
            Some(json!("A"))
        );
        for bad in ["", "a..b", "x=1,1", "x=1,a", "x=inf", "groups.a.b", ".x"] {
            assert!(SliceSpec::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn text_values_give_one_row_each_with_rates_at_the_threshold() {
        let spec = SliceSpec::parse("screen.layout").unwrap();
        let recs = [
            rec(json!({"screen": {"layout": "rgb"}}), &[]),
            rec(json!({"screen": {"layout": "rgb"}}), &[]),
            rec(json!({"screen": {"layout": "pentile"}}), &[]),
            rec(json!({"screen": null}), &[]),
            rec(json!({}), &[]),
        ];
        let values: Vec<_> = recs.iter().map(|r| spec.value(r)).collect();
        let scores = [0.9, 0.2, 0.5, 0.7, 0.1];
        let attack = [true, true, true, false, false];
        let t = slice(&spec, &values, &scores, &attack, 0.5, none_known).unwrap();
        let got: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r.value.as_str(), r.attacks, r.bona_fide, r.apcer, r.bpcer))
            .collect();
        assert_eq!(
            got,
            [
                ("pentile", 1, 0, Some(0.0), None),
                ("rgb", 2, 0, Some(0.5), None),
                ("(none)", 0, 2, None, Some(0.5)),
            ]
        );
        assert_eq!(t.rows[2].accuracy, 0.5);
        assert!(t.edges.is_none());
    }

    #[test]
    fn numbers_fall_into_quartiles_or_the_given_edges() {
        let spec = SliceSpec::parse("s").unwrap();
        let values: Vec<_> = (1..=8).map(|i| Some(json!(i as f64))).collect();
        let scores = [0.0; 8];
        let attack = [true; 8];
        let t = slice(&spec, &values, &scores, &attack, 0.5, none_known).unwrap();
        assert_eq!(t.edges, Some(vec![3.0, 5.0, 7.0]));
        let names: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r.value.as_str(), r.attacks))
            .collect();
        assert_eq!(names, [("< 3", 2), ("3 - 5", 2), ("5 - 7", 2), (">= 7", 2)]);
        let given = SliceSpec::parse("s=4.5").unwrap();
        let t = slice(&given, &values, &scores, &attack, 0.5, none_known).unwrap();
        let names: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r.value.as_str(), r.attacks))
            .collect();
        assert_eq!(names, [("< 4.5", 4), (">= 4.5", 4)]);
        assert_eq!(
            [
                short(1.530_612_2),
                short(0.000_134_16),
                short(1530.6),
                short(2.0),
                short(-0.5)
            ],
            ["1.531", "0.0001342", "1531", "2", "-0.5"]
        );
        // Two to four distinct numbers: a row each, in numeric order (64 before 128).
        let sides: Vec<_> = [128, 64, 256, 128, 64]
            .iter()
            .map(|&x| Some(json!(x)))
            .collect();
        let t = slice(&spec, &sides, &[0.9; 5], &[true; 5], 0.5, none_known).unwrap();
        let names: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r.value.as_str(), r.attacks))
            .collect();
        assert_eq!(names, [("64", 2), ("128", 2), ("256", 1)]);
        assert!(t.edges.is_none());
        // One repeated value: one bin, not empty ones.
        let same = vec![Some(json!(2)); 5];
        let t = slice(&spec, &same, &[0.0; 5], &[true; 5], 0.5, none_known).unwrap();
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.rows[0].value, "all");
    }

    #[test]
    fn rare_text_values_share_one_row() {
        let spec = SliceSpec::parse("id").unwrap();
        let values: Vec<_> = (0..MAX_CATEGORIES + 5)
            .map(|i| Some(json!(format!("v{i:02}"))))
            .chain([Some(json!("v00"))])
            .collect();
        let n = values.len();
        let t = slice(
            &spec,
            &values,
            &vec![0.9; n],
            &vec![true; n],
            0.5,
            none_known,
        )
        .unwrap();
        assert_eq!(t.rows.len(), MAX_CATEGORIES + 1);
        let other = t.rows.last().unwrap();
        assert_eq!((other.value.as_str(), other.attacks), ("(other)", 5));
        assert_eq!(t.rows.iter().map(|r| r.attacks).sum::<u64>(), n as u64);
    }

    #[test]
    fn a_sum_of_params_counts_missing_terms_as_zero() {
        // Screens with a moiré mask, with bands only, with neither; a genuine photo with none
        // of the terms falls into (none).
        let spec = SliceSpec::parse("m.moire-area + m.bands-area=1").unwrap();
        assert_eq!(spec.key, "m.moire-area + m.bands-area");
        let recs = [
            rec(json!({"m": {"moire-area": 40, "bands-area": 10}}), &[]),
            rec(json!({"m": {"moire-area": 0, "bands-area": 7}}), &[]),
            rec(json!({"m": {"moire-area": 0}}), &[]),
            rec(json!({"m": {"glare-area": 5}}), &[]),
        ];
        let values: Vec<_> = recs.iter().map(|r| spec.value(r)).collect();
        assert_eq!(
            values,
            [Some(json!(50.0)), Some(json!(7.0)), Some(json!(0.0)), None]
        );
        let t = slice(
            &spec,
            &values,
            &[0.9, 0.2, 0.1, 0.3],
            &[true, true, true, false],
            0.5,
            none_known,
        )
        .unwrap();
        let rows: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r.value.as_str(), r.attacks, r.apcer, r.bona_fide))
            .collect();
        assert_eq!(
            rows,
            [
                ("< 1", 1, Some(1.0), 0),
                (">= 1", 2, Some(0.5), 0),
                ("(none)", 0, None, 1)
            ]
        );
        // A text term is named, as a text key with edges is.
        let text = SliceSpec::parse("m.layout+m.moire-area=1").unwrap();
        let r = rec(json!({"m": {"layout": "pentile", "moire-area": 3}}), &[]);
        let e = slice(&text, &[text.value(&r)], &[0.5], &[true], 0.5, none_known).unwrap_err();
        assert!(e.to_string().contains("\"pentile\""), "{e}");
        for bad in ["a.b+", "a.b+groups.flag", "groups.flag+a.b", "+a"] {
            assert!(SliceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_keys_name_what_the_images_have() {
        let r = rec(
            json!({"camera": {"demosaic": "malvar", "scale": 2.0}}),
            &[("flag", "A")],
        );
        let known = || available_keys(&r);
        let missing = SliceSpec::parse("camera.lens").unwrap();
        let e = slice(&missing, &[missing.value(&r)], &[0.5], &[true], 0.5, known).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no image has 'camera.lens'; keys: camera.demosaic, camera.scale, groups.flag"
        );
        let object = SliceSpec::parse("camera").unwrap();
        let e = slice(&object, &[object.value(&r)], &[0.5], &[true], 0.5, known).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'camera' is an object or a list, not a value; keys: camera.demosaic, camera.scale"
        );
        let text = SliceSpec::parse("camera.demosaic=1,2").unwrap();
        let e = slice(&text, &[text.value(&r)], &[0.5], &[true], 0.5, known).unwrap_err();
        assert!(
            e.to_string().contains("not numbers (e.g. \"malvar\")"),
            "{e}"
        );
    }
}
