//! `moirelab demo`: the flag-shortcut story end to end, with a verdict from the numbers.

use crate::commands::train_from_config;
use crate::DemoArgs;
use anyhow::{bail, Result};
use moirelab_core::fsio;
use moirelab_core::run::{self as runfmt, RunSummary};
use moirelab_train::Outcome;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Regions that hold screen artifacts (generator masks); "attention on the cue".
const ARTIFACT_REGIONS: &[&str] = &["moire", "bands"];
/// The generator's attack class (presentation attack = screen recording).
const ATTACK_CLASS: &str = "screen";

/// The numbers the demo's story is told with, for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub flag_mass: Option<f64>,
    pub flag_lift: Option<f64>,
    /// Lift of the holder's portrait (the face-shortcut preset's cue).
    pub face_lift: Option<f64>,
    /// Best lift over the artifact regions, with the region's name.
    pub artifact_lift: Option<(String, f64)>,
    pub test_accuracy: Option<f64>,
    pub aligned_accuracy: Option<f64>,
    pub conflicting_accuracy: Option<f64>,
}

type Regions = BTreeMap<String, runfmt::RegionStats>;

/// Region stats of the predicted-class Grad-CAM maps (method `gradcam` preferred) of the
/// probes the model calls screen recordings, from `summary.json`'s attention (the best
/// epoch's dump, keyed `method/pred/class`); all probes' maps when the run predates the
/// per-class split.
fn attack_regions(attention: &BTreeMap<String, Regions>) -> Option<&Regions> {
    let methods = std::iter::once("gradcam").chain(
        attention
            .keys()
            .filter_map(|k| k.strip_suffix("/pred"))
            .filter(|m| !m.contains('/')),
    );
    methods
        .clone()
        .find_map(|m| attention.get(&format!("{m}/pred/{ATTACK_CLASS}")))
        .or_else(|| {
            methods
                .clone()
                .find_map(|m| attention.get(&format!("{m}/pred")))
        })
}

/// Read a finished run's verdict numbers from its files.
pub fn verdict(run: &Path) -> Result<Verdict> {
    let summary: RunSummary = fsio::read_json(&run.join(runfmt::SUMMARY_JSON))?;
    let mut v = Verdict {
        name: run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Some(t) = &summary.test {
        v.test_accuracy = Some(t.accuracy);
        v.aligned_accuracy = t.aligned_accuracy;
        v.conflicting_accuracy = t.conflicting_accuracy;
    }
    // Maps of the images the model calls screen recordings: where its evidence for an attack
    // lies. Bona-fide ("direct") maps explain an absence of artifacts and light up the card's
    // sharpest, most saturated edges (the flag) whatever the model learnt, so they would blur
    // the comparison; the gallery shows both.
    if let Some(regions) = attack_regions(&summary.attention) {
        if let Some(f) = regions.get("flag") {
            v.flag_mass = Some(f.mass);
            v.flag_lift = Some(f.lift);
        }
        v.face_lift = regions.get("face").map(|f| f.lift);
        v.artifact_lift = ARTIFACT_REGIONS
            .iter()
            .filter_map(|r| regions.get(*r).map(|s| (r.to_string(), s.lift)))
            .filter(|(_, l)| l.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1));
    }
    Ok(v)
}

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// The verdict table and sentences.
pub fn render(shortcut: &Verdict, fixed: &Verdict) -> String {
    let mut out = format!(
        "{:<16}{:>10}{:>10}{:>16}{:>10}{:>13}{:>17}\n",
        "run",
        "flag mass",
        "flag lift",
        "artifact lift",
        "test acc",
        "aligned acc",
        "conflicting acc"
    );
    for v in [shortcut, fixed] {
        let art = v
            .artifact_lift
            .as_ref()
            .map(|(r, l)| format!("{l:.2} ({r})"))
            .unwrap_or_else(|| "n/a".into());
        out.push_str(&format!(
            "{:<16}{:>10}{:>10}{:>16}{:>10}{:>13}{:>17}\n",
            v.name,
            f(v.flag_mass),
            f(v.flag_lift),
            art,
            f(v.test_accuracy),
            f(v.aligned_accuracy),
            f(v.conflicting_accuracy)
        ));
    }
    let took_shortcut = shortcut.flag_lift.is_some_and(|l| l >= 10.0)
        && matches!((shortcut.aligned_accuracy, shortcut.conflicting_accuracy), (Some(a), Some(c)) if a - c >= 0.2);
    let fixed_ok = fixed.flag_lift.is_some_and(|l| l <= 1.5)
        && fixed.artifact_lift.as_ref().is_some_and(|(_, l)| *l > 1.0)
        && fixed.conflicting_accuracy.is_some_and(|c| c >= 0.9);
    out.push_str(&format!(
        "\n{}: {}\n{}: {}\n",
        shortcut.name,
        if took_shortcut {
            format!(
                "took the flag shortcut — its Grad-CAM puts {} of the mass on the flag ({}x its area share) and it gets {} on flag-conflicting test images vs {} on aligned ones.",
                f(shortcut.flag_mass), f(shortcut.flag_lift), f(shortcut.conflicting_accuracy), f(shortcut.aligned_accuracy)
            )
        } else {
            "did NOT show the expected shortcut (flag lift >= 10 and a conflicting-group gap >= 0.2); see the gallery.".to_string()
        },
        fixed.name,
        if fixed_ok {
            format!(
                "looks past the flag (lift {}) at the screen artifacts (lift {}) and gets {} on flag-conflicting test images.",
                f(fixed.flag_lift),
                fixed.artifact_lift.as_ref().map(|(_, l)| format!("{l:.2}")).unwrap_or_default(),
                f(fixed.conflicting_accuracy)
            )
        } else {
            "did NOT reach the fixed-run targets (flag lift <= 1.5, artifact lift > 1, conflicting acc >= 0.9); see the gallery.".to_string()
        }
    ));
    out
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let s = stop.clone();
        let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
    }
    let t0 = Instant::now();
    let mut runs: Vec<PathBuf> = Vec::new();
    for (cfg, name) in [(&a.shallow, "demo-shallow"), (&a.fixed, "demo-fixed")] {
        if !cfg.is_file() {
            bail!(
                "{}: config file not found (run the demo from the repository root)",
                cfg.display()
            );
        }
        eprintln!("== training {name} from {}", cfg.display());
        let (dir, outcome) = train_from_config(cfg, &a.sets, Some(name), Some(&a.out), &stop)?;
        if let Outcome::Interrupted { .. } = outcome {
            eprintln!(
                "interrupted; resume with: moirelab train --resume {}",
                dir.display()
            );
            return Ok(ExitCode::from(130));
        }
        runs.push(dir);
    }
    let compare_dir = a.out.join("demo-compare");
    let page = moirelab_report::write_compare(&runs, &compare_dir)?;
    let v0 = verdict(&runs[0])?;
    let v1 = verdict(&runs[1])?;
    println!("{}", render(&v0, &v1));
    println!("galleries:");
    for r in &runs {
        println!("  {}", r.join("report").join("index.html").display());
    }
    println!("compare:  {}", page.display());
    println!("demo took {:.0} s", t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, lift: f64, art: f64, al: f64, co: f64) -> Verdict {
        Verdict {
            name: name.into(),
            flag_mass: Some(lift * 0.02),
            flag_lift: Some(lift),
            face_lift: None,
            artifact_lift: Some(("moire".into(), art)),
            test_accuracy: Some((al + co) / 2.0),
            aligned_accuracy: Some(al),
            conflicting_accuracy: Some(co),
        }
    }

    #[test]
    fn verdict_reads_the_attack_class_maps_and_falls_back_to_all_probes() {
        let stats = |lift: f64| runfmt::RegionStats {
            lift,
            ..Default::default()
        };
        let table = |lift: f64| -> Regions { [("flag".to_string(), stats(lift))].into() };
        let mut att: BTreeMap<String, Regions> = BTreeMap::new();
        att.insert("gradcam/pred".into(), table(9.0));
        assert_eq!(attack_regions(&att).unwrap()["flag"].lift, 9.0);
        att.insert("gradcam/pred/screen".into(), table(0.2));
        att.insert("gradcam/pred/direct".into(), table(15.0));
        assert_eq!(attack_regions(&att).unwrap()["flag"].lift, 0.2);
        // Another method when the run did not compute Grad-CAM.
        let other: BTreeMap<String, Regions> = [("hirescam/pred".to_string(), table(3.0))].into();
        assert_eq!(attack_regions(&other).unwrap()["flag"].lift, 3.0);
    }

    #[test]
    fn verdict_sentences_follow_the_targets() {
        let text = render(&v("s", 12.0, 0.5, 0.98, 0.3), &v("f", 1.2, 2.0, 0.95, 0.93));
        assert!(text.contains("s: took the flag shortcut"), "{text}");
        assert!(text.contains("f: looks past the flag"), "{text}");
        let text = render(&v("s", 3.0, 0.5, 0.9, 0.85), &v("f", 4.0, 0.9, 0.9, 0.5));
        assert!(text.contains("s: did NOT show"), "{text}");
        assert!(text.contains("f: did NOT reach"), "{text}");
    }
}
