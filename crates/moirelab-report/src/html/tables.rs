//! Static tables of the pages: PAD metrics, final metrics across runs, config and meta.

use crate::load::RunData;
use crate::util::{esc, fmt_num};
use moirelab_core::run::EpochMetrics;
use std::collections::{BTreeMap, BTreeSet};

/// Flatten a TOML document into dotted keys (`train.lr`), arrays of tables as `key[i]`.
pub(crate) fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::Array(a) if a.iter().any(|x| x.is_table()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

pub(crate) fn flat_config(run: &RunData) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(c) = &run.config {
        flatten("", c, &mut out);
    }
    out
}

pub(crate) fn meta_rows(run: &RunData) -> Vec<(&'static str, String)> {
    let Some(m) = &run.meta else {
        return Vec::new();
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    vec![
        ("name", m.name.clone()),
        ("status", m.status.clone()),
        ("started", m.started.clone()),
        ("finished", opt(&m.finished)),
        ("resumed", m.resumed.join(", ")),
        ("device", m.device.clone()),
        ("threads", m.threads.to_string()),
        ("seed", m.seed.to_string()),
        ("git rev", opt(&m.git_rev)),
        ("host", opt(&m.hostname)),
        ("moirelab", m.moirelab_version.clone()),
        ("tch", m.tch_version.clone()),
        ("libtorch", m.libtorch_version.clone()),
        ("argv", m.argv.join(" ")),
    ]
}

pub(crate) fn kv_table(rows: &[(String, String)], cls: &str) -> String {
    let mut s = format!("<table class=\"kv {cls}\"><tbody>");
    for (k, v) in rows {
        s.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            esc(k),
            esc(v)
        ));
    }
    s.push_str("</tbody></table>");
    s
}

pub(crate) fn opt_num(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "–".into())
}

/// PAD + accuracy table, one row per split, threshold included.
pub(crate) fn pad_table(rows: &[(&str, &EpochMetrics)]) -> String {
    let heads = [
        "split",
        "epoch",
        "n",
        "loss",
        "accuracy",
        "balanced acc",
        "worst group",
        "aligned acc",
        "conflicting acc",
        "threshold",
        "acc at threshold",
        "APCER",
        "BPCER",
        "ACER (non-ISO)",
        "EER",
        "AUC",
        "BPCER20",
        "BPCER100",
    ];
    let mut s = String::from("<table class=\"metrics\"><thead><tr>");
    for h in heads {
        s.push_str(&format!("<th>{h}</th>"));
    }
    s.push_str("</tr></thead><tbody>");
    for (split, e) in rows {
        let p = e.pad.as_ref();
        let cells = [
            e.epoch.to_string(),
            e.n.to_string(),
            fmt_num(e.loss),
            fmt_num(e.accuracy),
            fmt_num(e.balanced_accuracy),
            opt_num(e.worst_group_accuracy),
            opt_num(e.aligned_accuracy),
            opt_num(e.conflicting_accuracy),
            opt_num(p.map(|p| p.threshold)),
            opt_num(p.and_then(|p| p.accuracy_at_threshold)),
            opt_num(p.map(|p| p.apcer)),
            opt_num(p.map(|p| p.bpcer)),
            opt_num(p.map(|p| p.acer_non_iso)),
            opt_num(p.map(|p| p.eer)),
            opt_num(p.map(|p| p.auc)),
            opt_num(p.and_then(|p| p.bpcer20)),
            opt_num(p.and_then(|p| p.bpcer100)),
        ];
        s.push_str(&format!("<tr><th scope=\"row\">{}</th>", esc(split)));
        for c in cells {
            s.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// (label, split, getter, higher is better) rows of the compare page's final table.
type MetricRow = (
    &'static str,
    &'static str,
    fn(&EpochMetrics) -> Option<f64>,
    bool,
);

const FINAL_ROWS: [MetricRow; 16] = [
    ("loss", "val", |e| Some(e.loss), false),
    ("accuracy", "val", |e| Some(e.accuracy), true),
    (
        "balanced accuracy",
        "val",
        |e| Some(e.balanced_accuracy),
        true,
    ),
    ("EER", "val", |e| e.pad.as_ref().map(|p| p.eer), false),
    ("AUC", "val", |e| e.pad.as_ref().map(|p| p.auc), true),
    ("loss", "test", |e| Some(e.loss), false),
    ("accuracy", "test", |e| Some(e.accuracy), true),
    (
        "balanced accuracy",
        "test",
        |e| Some(e.balanced_accuracy),
        true,
    ),
    (
        "worst-group accuracy",
        "test",
        |e| e.worst_group_accuracy,
        true,
    ),
    (
        "conflicting accuracy",
        "test",
        |e| e.conflicting_accuracy,
        true,
    ),
    ("APCER", "test", |e| e.pad.as_ref().map(|p| p.apcer), false),
    ("BPCER", "test", |e| e.pad.as_ref().map(|p| p.bpcer), false),
    (
        "ACER (non-ISO)",
        "test",
        |e| e.pad.as_ref().map(|p| p.acer_non_iso),
        false,
    ),
    ("EER", "test", |e| e.pad.as_ref().map(|p| p.eer), false),
    ("AUC", "test", |e| e.pad.as_ref().map(|p| p.auc), true),
    (
        "BPCER20",
        "test",
        |e| e.pad.as_ref().and_then(|p| p.bpcer20),
        false,
    ),
];

pub(crate) fn final_table(runs: &[RunData]) -> String {
    let mut s =
        String::from("<table class=\"metrics final\"><thead><tr><th>metric</th><th>better</th>");
    for r in runs {
        s.push_str(&format!("<th>{}</th>", esc(&r.name)));
    }
    s.push_str("</tr></thead><tbody>");
    for (label, split, get, higher) in FINAL_ROWS {
        let vals: Vec<Option<f64>> = runs
            .iter()
            .map(|r| r.final_split(split).and_then(get).filter(|v| v.is_finite()))
            .collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        let present: Vec<f64> = vals.iter().flatten().copied().collect();
        let best = if higher {
            present.iter().copied().fold(f64::MIN, f64::max)
        } else {
            present.iter().copied().fold(f64::MAX, f64::min)
        };
        // Only mark a best when there is something to compare against.
        let mark = present.len() > 1;
        s.push_str(&format!(
            "<tr><th scope=\"row\">{split} {label}</th><td>{}</td>",
            if higher { "higher" } else { "lower" }
        ));
        for v in vals {
            match v {
                Some(v) if mark && v == best => s.push_str(&format!(
                    "<td class=\"best\" title=\"best\">{} ★</td>",
                    esc(&fmt_num(v))
                )),
                Some(v) => s.push_str(&format!("<td>{}</td>", esc(&fmt_num(v)))),
                None => s.push_str("<td class=\"na\">–</td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Config table across runs; rows equal in every run carry `data-same` for the toggle.
pub(crate) fn config_table(runs: &[RunData], flats: &[BTreeMap<String, String>]) -> String {
    let keys: BTreeSet<&String> = flats.iter().flat_map(|f| f.keys()).collect();
    let mut s = String::from(
        "<label class=\"toggle\"><input type=\"checkbox\" id=\"diff-only\" checked> differences only</label>\
         <table class=\"config-diff diff-only\" id=\"config-table\"><thead><tr><th>key</th>",
    );
    for r in runs {
        s.push_str(&format!("<th>{}</th>", esc(&r.name)));
    }
    s.push_str("</tr></thead><tbody>");
    for k in keys {
        let vals: Vec<Option<&String>> = flats.iter().map(|f| f.get(k)).collect();
        let same = vals.windows(2).all(|w| w[0] == w[1]);
        s.push_str(&format!(
            "<tr class=\"{}\"><th scope=\"row\">{}</th>",
            if same { "same" } else { "differs" },
            esc(k)
        ));
        for v in vals {
            match v {
                Some(v) => s.push_str(&format!("<td>{}</td>", esc(v))),
                None => s.push_str("<td class=\"na\">(absent)</td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Dotted config keys whose values differ between runs, leaving out the data set's own keys
/// (`data.root`, `data.preset`, `data.manifest`): the runs of a like-for-like comparison
/// differ only there.
pub(crate) fn differing_keys(flats: &[BTreeMap<String, String>], skip_data: bool) -> Vec<String> {
    let keys: BTreeSet<&String> = flats.iter().flat_map(|f| f.keys()).collect();
    keys.into_iter()
        .filter(|k| !(skip_data && DATA_KEYS.contains(&k.as_str())))
        .filter(|k| {
            let v: Vec<Option<&String>> = flats.iter().map(|f| f.get(*k)).collect();
            !v.windows(2).all(|w| w[0] == w[1])
        })
        .cloned()
        .collect()
}

/// Keys that name the data a run trained on.
const DATA_KEYS: [&str; 3] = ["data.root", "data.preset", "data.manifest"];

/// A table wide enough to scroll gets its own horizontal scroller, never the page's.
pub(crate) fn scroller(inner: &str) -> String {
    format!("<div class=\"hscroll\">{inner}</div>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_uses_dotted_keys_and_indexes_arrays_of_tables() {
        let v: toml::Value =
            toml::from_str("a = 1\n[train]\nlr = 0.001\nname = \"x\"\n[[hooks]]\nk = true\n")
                .unwrap();
        let mut out = BTreeMap::new();
        flatten("", &v, &mut out);
        assert_eq!(out["a"], "1");
        assert_eq!(out["train.lr"], "0.001");
        assert_eq!(out["train.name"], "x");
        assert_eq!(out["hooks[0].k"], "true");
    }

    #[test]
    fn differing_keys_leave_out_the_data_set_when_asked() {
        let mk = |root: &str, lr: &str| {
            BTreeMap::from([
                ("data.root".to_string(), root.to_string()),
                ("train.lr".to_string(), lr.to_string()),
                ("train.seed".to_string(), "1".to_string()),
            ])
        };
        let flats = [mk("/a", "0.1"), mk("/b", "0.2")];
        assert_eq!(differing_keys(&flats, true), ["train.lr"]);
        assert_eq!(differing_keys(&flats, false), ["data.root", "train.lr"]);
    }
}
