//! The verdict card ("is this run taking the shortcut?") and the lift small multiples
//! ("since when does it look there?"), both static HTML/SVG built from `metrics.jsonl` and
//! `summary.json`.

use crate::load::RunData;
use crate::util::{esc, fmt_num};
use moirelab_core::run::{
    monitor_improves, monitor_value, CamMetrics, CamTarget, EpochMetrics, RegionStats,
};
use std::collections::BTreeMap;

/// Regions the card and the charts lead with, in this order.
pub(crate) const KEY_REGIONS: [&str; 3] = ["flag", "face", "moire"];

/// The attack class of a run: the one its `meta.json` records (the class whose probability
/// the trainer scored as the attack score); for runs that predate that record, `screen` when
/// the run has it, else its last class (the data sets' default).
pub(crate) fn attack_class(run: &RunData) -> Option<String> {
    if let Some(a) = run.meta.as_ref().and_then(|m| m.attack_class.clone()) {
        return Some(a);
    }
    let classes = run.classes();
    if classes.iter().any(|c| c == "screen") {
        return Some("screen".into());
    }
    classes.last().cloned()
}

/// Epoch of the best checkpoint: `summary.json`'s (`None` when it names an epoch the run does
/// not have: inconsistent, and said so), else the one the run's `train.monitor` picks from the
/// epoch lines by the trainer's rule (val's line, train's without a val split).
pub(crate) fn best_epoch(run: &RunData) -> Option<u32> {
    if let Some(s) = &run.summary {
        return crate::check::summary_best_is_known(run).then_some(s.best_epoch);
    }
    let monitor = run.monitor();
    let mut by_epoch: BTreeMap<u32, (Option<&EpochMetrics>, Option<&EpochMetrics>)> =
        BTreeMap::new();
    for e in run.epoch_metrics() {
        let slot = by_epoch.entry(e.epoch).or_default();
        match e.split.as_str() {
            "train" => slot.0 = Some(e),
            "val" => slot.1 = Some(e),
            _ => {}
        }
    }
    let (mut best, mut best_value) = (None, None);
    for (epoch, (train, val)) in by_epoch {
        let Some(m) = val.or(train) else {
            continue;
        };
        let v = monitor_value(&monitor, m);
        if monitor_improves(&monitor, v, best_value) {
            best_value = v.or(best_value);
            best = Some(epoch);
        }
    }
    best
}

/// Last epoch with metrics or a dump.
pub(crate) fn last_epoch(run: &RunData) -> Option<u32> {
    let m = run.epoch_metrics().map(|e| e.epoch).max();
    let d = run.epochs.iter().map(|e| e.epoch).max();
    m.max(d)
}

/// The CAM method the card reads: `gradcam` when dumped, else the first one.
fn card_method(run: &RunData) -> Option<String> {
    let methods: Vec<String> = run.cam_metrics().map(|c| c.method.clone()).collect();
    methods
        .iter()
        .find(|m| *m == "gradcam")
        .or(methods.first())
        .cloned()
}

/// Region stats of the attack-class (predicted-class) maps of one CAM line: `per_class[attack]`,
/// else the overall pred-map stats.
fn attack_regions<'a>(c: &'a CamMetrics, attack: &str) -> &'a BTreeMap<String, RegionStats> {
    c.per_class.get(attack).unwrap_or(&c.regions)
}

/// Lift per epoch and region of the attack-class maps: epoch -> region -> lift.
pub(crate) fn lift_series(run: &RunData) -> BTreeMap<u32, BTreeMap<String, f64>> {
    let (Some(method), Some(attack)) = (card_method(run), attack_class(run)) else {
        return BTreeMap::new();
    };
    run.cam_metrics()
        .filter(|c| c.method == method && c.target == CamTarget::Pred)
        .map(|c| {
            let lifts = attack_regions(c, &attack)
                .iter()
                .filter(|(_, s)| crate::plots::plottable(s.lift))
                .map(|(r, s)| (r.clone(), s.lift))
                .collect();
            (c.epoch, lifts)
        })
        .collect()
}

/// One row of the card: a run at one epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct CardRow {
    pub which: &'static str,
    pub epoch: u32,
    /// Epoch of the CAM dump the lifts come from (the nearest one at or before `epoch`).
    pub cam_epoch: Option<u32>,
    pub lifts: BTreeMap<String, f64>,
    pub split: Option<String>,
    pub aligned: Option<f64>,
    pub conflicting: Option<f64>,
    /// (data set, accuracy)
    pub extra: Vec<(String, f64)>,
    /// Instead of numbers: why the row has none (a best epoch the run does not have).
    pub note: Option<String>,
}

fn row_at(run: &RunData, which: &'static str, epoch: u32) -> CardRow {
    let series = lift_series(run);
    let cam_epoch = series
        .range(..=epoch)
        .next_back()
        .or_else(|| series.iter().next())
        .map(|(e, _)| *e);
    let lifts = cam_epoch
        .and_then(|e| series.get(&e))
        .cloned()
        .unwrap_or_default();
    let at = |split: &str| -> Option<&EpochMetrics> {
        run.epoch_metrics()
            .find(|e| e.epoch == epoch && e.split == split)
    };
    let acc = at("test")
        .filter(|e| e.aligned_accuracy.is_some())
        .or(at("val"));
    let mut extra: BTreeMap<String, f64> = run
        .epoch_metrics()
        .filter(|e| e.epoch == epoch)
        .filter_map(|e| {
            e.split
                .strip_prefix("extra/")
                .map(|n| (n.to_string(), e.accuracy))
        })
        .collect();
    if which == "best" {
        for (name, e) in &run.summary_extra {
            extra.entry(name.clone()).or_insert(e.accuracy);
        }
    }
    CardRow {
        which,
        epoch,
        cam_epoch,
        lifts,
        split: acc.map(|e| e.split.clone()),
        aligned: acc.and_then(|e| e.aligned_accuracy),
        conflicting: acc.and_then(|e| e.conflicting_accuracy),
        extra: extra.into_iter().collect(),
        note: None,
    }
}

/// Best and last rows of a run (one row when they coincide).
pub(crate) fn card_rows(run: &RunData) -> Vec<CardRow> {
    let mut rows = Vec::new();
    let best = best_epoch(run);
    let last = last_epoch(run);
    if let Some(b) = best {
        rows.push(row_at(run, "best", b));
    } else if let Some(s) = &run.summary {
        rows.push(CardRow {
            which: "best",
            epoch: s.best_epoch,
            note: Some(format!(
                "inconsistent: summary.json names epoch {}, which this run does not have",
                s.best_epoch
            )),
            ..Default::default()
        });
    }
    if let Some(l) = last.filter(|l| Some(*l) != best) {
        rows.push(row_at(run, "last", l));
    }
    rows
}

/// The one-line reading of a row, and whether it suspects a shortcut (`None`: no evidence).
pub(crate) fn reading(row: &CardRow, attack: &str) -> (Option<bool>, String) {
    // The stronger of the planted-shortcut regions (flag, face) speaks for the shortcut.
    let cue = ["flag", "face"]
        .iter()
        .filter_map(|r| row.lifts.get(*r).map(|l| (*r, *l)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let flag = cue.map(|(_, l)| l);
    let cue_name = cue.map_or("flag", |(r, _)| r);
    let moire = row.lifts.get("moire").copied();
    let gap = match (row.aligned, row.conflicting) {
        (Some(a), Some(c)) => Some(a - c),
        _ => None,
    };
    if flag.is_none() && gap.is_none() {
        return (
            None,
            "no region metrics or group accuracies: nothing to judge".into(),
        );
    }
    let on_flag = flag.is_some_and(|f| f >= 2.0 && f > moire.unwrap_or(0.0));
    let gap_big = gap.is_some_and(|g| g >= 0.1);
    let mut why = Vec::new();
    if let Some(f) = flag {
        why.push(format!(
            "{attack} maps: {cue_name} lift {}{}",
            fmt_num(round2(f)),
            moire
                .map(|m| format!(" vs moiré {}", fmt_num(round2(m))))
                .unwrap_or_default()
        ));
    }
    if let (Some(a), Some(c)) = (row.aligned, row.conflicting) {
        why.push(format!(
            "conflicting accuracy {} vs aligned {}",
            fmt_num(round2(c)),
            fmt_num(round2(a))
        ));
    }
    if on_flag || gap_big {
        (
            Some(true),
            format!("shortcut suspected: {}", why.join("; ")),
        )
    } else {
        (
            Some(false),
            format!("no shortcut signal: {}", why.join("; ")),
        )
    }
}

fn round2(v: f64) -> f64 {
    // `+ 0.0` turns a rounded -0 into 0.
    (v * 100.0).round() / 100.0 + 0.0
}

/// The card: one table row per run and epoch (best, last), lifts of the attack class's maps,
/// group accuracies, extra data sets, and the reading of the best epoch.
pub(crate) fn card_html(runs: &[RunData]) -> String {
    let extra_names: Vec<String> = {
        let mut v: Vec<String> = runs
            .iter()
            .flat_map(card_rows)
            .flat_map(|r| r.extra.into_iter().map(|(n, _)| n))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut s = String::from(
        "<section id=\"verdict\" class=\"verdict\"><h2>Verdict: where does it look?</h2>\
         <div class=\"hscroll\"><table class=\"metrics verdict-table\"><thead><tr>\
         <th>run</th><th>epoch</th><th title=\"lift = CAM mass share in the region / its area share; 1 = no preference\">flag lift</th>\
         <th>face lift</th><th>moiré lift</th><th>accuracy split</th><th>aligned acc</th><th>conflicting acc</th>",
    );
    for n in &extra_names {
        s.push_str(&format!("<th>{} acc</th>", esc(n)));
    }
    s.push_str("<th>reading</th></tr></thead><tbody>");
    for r in runs {
        let attack = attack_class(r).unwrap_or_else(|| "attack".into());
        let rows = card_rows(r);
        if rows.is_empty() {
            s.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td colspan=\"{}\" class=\"na\">no epochs yet</td></tr>",
                esc(&r.name),
                8 + extra_names.len()
            ));
            continue;
        }
        // The run's name heads its rows (on the first one, spanning them all).
        let run_head = format!(
            "<th scope=\"row\" rowspan=\"{}\" class=\"run-name\">{}</th>",
            rows.len(),
            esc(&r.name)
        );
        for (i, row) in rows.iter().enumerate() {
            if let Some(note) = &row.note {
                s.push_str("<tr>");
                if i == 0 {
                    s.push_str(&run_head);
                }
                s.push_str(&format!(
                    "<td class=\"which\">{} ?</td><td colspan=\"{}\" class=\"na\">{}</td></tr>",
                    row.which,
                    7 + extra_names.len(),
                    esc(note)
                ));
                continue;
            }
            let (suspect, text) = reading(row, &attack);
            let cls = match suspect {
                Some(true) => "suspect",
                Some(false) => "clear",
                None => "na",
            };
            s.push_str("<tr>");
            if i == 0 {
                s.push_str(&run_head);
            }
            let cam = match row.cam_epoch {
                Some(c) if c != row.epoch => format!(" (maps of epoch {c})"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "<td class=\"which\">{} {}{}</td>",
                row.which,
                row.epoch,
                esc(&cam)
            ));
            for reg in KEY_REGIONS {
                let v = row.lifts.get(reg).copied();
                let hot = v.is_some_and(|v| v >= 2.0);
                s.push_str(&format!(
                    "<td{}>{}</td>",
                    if hot { " class=\"hot\"" } else { "" },
                    v.map(|v| fmt_num(round2(v))).unwrap_or_else(|| "–".into())
                ));
            }
            let opt = |v: Option<f64>| v.map(|v| fmt_num(round2(v))).unwrap_or_else(|| "–".into());
            s.push_str(&format!(
                "<td>{}</td><td>{}</td><td>{}</td>",
                esc(row.split.as_deref().unwrap_or("–")),
                opt(row.aligned),
                opt(row.conflicting)
            ));
            for n in &extra_names {
                let v = row.extra.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
                s.push_str(&format!("<td>{}</td>", opt(v)));
            }
            s.push_str(&format!(
                "<td class=\"reading {cls}\">{}</td></tr>",
                esc(&text)
            ));
        }
    }
    s.push_str(
        "</tbody></table></div><p class=\"note\">Lifts of the maps that explain the attack class \
         (the model's evidence for an attack, the class <code>meta.json</code> records), first CAM method; 1 = no preference, \
         ≥ 2 highlighted. A shortcut shows up as a high flag lift and a gap between aligned and \
         conflicting accuracy.</p></section>",
    );
    s
}

/// Panels of the small multiples: the key regions first, then the others, `card` last.
fn panel_regions(series: &[BTreeMap<u32, BTreeMap<String, f64>>]) -> Vec<String> {
    let mut rest: Vec<String> = series
        .iter()
        .flat_map(|s| s.values().flat_map(|m| m.keys().cloned()))
        .filter(|r| !KEY_REGIONS.contains(&r.as_str()))
        .collect();
    rest.sort();
    rest.dedup();
    rest.sort_by_key(|r| r == "card");
    let present = |r: &str| series.iter().any(|s| s.values().any(|m| m.contains_key(r)));
    KEY_REGIONS
        .iter()
        .filter(|r| present(r))
        .map(|r| r.to_string())
        .chain(rest)
        .collect()
}

const PW: f64 = 150.0;
const PH: f64 = 96.0;
const ML: f64 = 34.0;
const MT: f64 = 18.0;
const MB: f64 = 18.0;

/// Lift per region over epochs, one row of panels per run: shared log y axis, lift 1 dashed,
/// the best (test-checkpoint) epoch marked. Inline SVG, no script.
pub(crate) fn small_multiples_html(runs: &[RunData]) -> String {
    let series: Vec<_> = runs.iter().map(lift_series).collect();
    let regions = panel_regions(&series);
    if regions.is_empty() {
        return "<section id=\"attention\"><h2>Attention over epochs</h2><p class=\"note\">No \
                attention-in-region metrics (no CAM dump yet, or a data set without region \
                masks).</p></section>"
            .into();
    }
    let vals = series
        .iter()
        .flat_map(|s| s.values().flat_map(|m| m.values().copied()))
        .filter(|v| *v > 0.0);
    let (lo, hi) = vals.fold((1.0f64, 1.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (ylo, yhi) = ((lo / 1.3).max(1e-3).log10(), (hi * 1.3).log10());
    let ticks: Vec<f64> = [0.01f64, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]
        .into_iter()
        .filter(|t| t.log10() >= ylo && t.log10() <= yhi)
        .collect();
    let mut s = String::from(
        "<section id=\"attention\"><h2>Attention over epochs: lift per region</h2>\
         <p class=\"legend\"><span class=\"sw sw-line\"></span> lift of the attack-class maps \
         (log scale, shared by all panels) <span class=\"sw sw-one\"></span> lift 1 = no \
         preference <span class=\"sw sw-best\"></span> best epoch (the checkpoint tested)</p>",
    );
    let width = ML + regions.len() as f64 * (PW + 8.0);
    let height = MT + PH + MB;
    for (run, ser) in runs.iter().zip(&series) {
        let epochs: Vec<u32> = ser.keys().copied().collect();
        let (e0, e1) = match (epochs.first(), last_epoch(run).or(epochs.last().copied())) {
            (Some(&a), Some(b)) => (f64::from(a.min(1)), f64::from(b.max(a + 1))),
            _ => (0.0, 1.0),
        };
        let best = best_epoch(run);
        s.push_str(&format!(
            "<figure class=\"multiples\"><figcaption class=\"run-name\">{}</figcaption>\
             <div class=\"hscroll\"><svg viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"lift per region over epochs of {}\">",
            esc(&run.name),
            esc(&run.name)
        ));
        for (pi, region) in regions.iter().enumerate() {
            let x0 = ML + pi as f64 * (PW + 8.0);
            let xs = |e: f64| x0 + (e - e0) / (e1 - e0) * PW;
            let ys = |v: f64| {
                let t = ((v.max(1e-3).log10() - ylo) / (yhi - ylo)).clamp(0.0, 1.0);
                MT + PH - t * PH
            };
            s.push_str(&format!(
                "<rect x=\"{x0:.1}\" y=\"{MT}\" width=\"{PW}\" height=\"{PH}\" class=\"panel\"/>\
                 <text x=\"{:.1}\" y=\"12\" class=\"ptitle\">{}</text>",
                x0 + 2.0,
                esc(region)
            ));
            for t in &ticks {
                let y = ys(*t);
                s.push_str(&format!(
                    "<line x1=\"{x0:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"{}\"/>",
                    x0 + PW,
                    if *t == 1.0 { "one" } else { "grid" }
                ));
                if pi == 0 {
                    s.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
                        x0 - 3.0,
                        y + 3.0,
                        fmt_num(*t)
                    ));
                }
            }
            if let Some(b) = best {
                let x = xs(f64::from(b));
                s.push_str(&format!(
                    "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{MT}\" y2=\"{:.1}\" class=\"best\"/>",
                    MT + PH
                ));
            }
            s.push_str(&format!(
                "<text x=\"{x0:.1}\" y=\"{:.1}\" class=\"tick\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">epoch {}</text>",
                MT + PH + 12.0,
                e0,
                x0 + PW,
                MT + PH + 12.0,
                e1
            ));
            let pts: Vec<(f64, f64)> = ser
                .iter()
                .filter_map(|(e, m)| m.get(region).map(|v| (xs(f64::from(*e)), ys(*v))))
                .collect();
            if pts.len() > 1 {
                let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                s.push_str(&format!(
                    "<polyline points=\"{}\" class=\"series\"/>",
                    d.join(" ")
                ));
            }
            for (x, y) in &pts {
                s.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" class=\"dot\"/>"
                ));
            }
            if let Some(v) = best.and_then(|b| ser.get(&b)).and_then(|m| m.get(region)) {
                let (x, y) = (xs(f64::from(best.unwrap_or(0))), ys(*v));
                s.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" class=\"bestdot\"><title>best epoch: lift {}</title></circle>",
                    fmt_num(round2(*v))
                ));
            }
        }
        s.push_str("</svg></div></figure>");
    }
    s.push_str("</section>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(flag: f64, moire: f64, a: f64, c: f64) -> CardRow {
        CardRow {
            lifts: BTreeMap::from([("flag".into(), flag), ("moire".into(), moire)]),
            aligned: Some(a),
            conflicting: Some(c),
            ..Default::default()
        }
    }

    #[test]
    fn reading_suspects_flag_attention_or_a_group_gap_and_clears_otherwise() {
        let (s, t) = reading(&row(13.0, 2.0, 0.98, 0.24), "screen");
        assert_eq!(s, Some(true));
        assert!(
            t.starts_with("shortcut suspected") && t.contains("flag lift 13"),
            "{t}"
        );
        let (s, _) = reading(&row(0.9, 2.8, 0.96, 0.6), "screen");
        assert_eq!(s, Some(true), "a 0.36 accuracy gap alone is enough");
        let (s, t) = reading(&row(0.97, 2.81, 0.96, 0.98), "screen");
        assert_eq!(s, Some(false));
        assert!(t.starts_with("no shortcut signal"), "{t}");
        let (s, _) = reading(&CardRow::default(), "screen");
        assert_eq!(s, None);
        // A face-shortcut run: the portrait, not the flag, is named.
        let mut r = row(0.8, 0.5, 0.99, 0.35);
        r.lifts.insert("face".into(), 7.5);
        let (s, t) = reading(&r, "screen");
        assert_eq!(s, Some(true));
        assert!(t.contains("face lift 7.5 vs moiré 0.5"), "{t}");
    }
}
