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

/// The generator's attack class (presentation attack = screen recording), for runs whose
/// `meta.json` predates recording it.
const ATTACK_CLASS: &str = "screen";

/// The attack class a run recorded in its `meta.json` (the class whose probability it scored),
/// else the generator's.
pub fn run_attack_class(run: &Path) -> String {
    fsio::read_json::<runfmt::RunMeta>(&run.join(runfmt::META_JSON))
        .ok()
        .and_then(|m| m.attack_class)
        .unwrap_or_else(|| ATTACK_CLASS.to_string())
}

/// One planted shortcut the demo tells a story about: the group attribute that carries it
/// and the mask region in which a model that uses it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Story {
    /// Group attribute in the data set (`flag`, `hair`).
    pub attr: &'static str,
    /// Region of the maps (`flag`, `face`).
    pub region: &'static str,
}

pub const FLAG: Story = Story {
    attr: "flag",
    region: "flag",
};
pub const FACE: Story = Story {
    attr: "hair",
    region: "face",
};

/// The numbers one story is told with, for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub name: String,
    /// CAM mass share and lift of the story's region.
    pub mass: Option<f64>,
    pub lift: Option<f64>,
    /// Best lift over the artifact regions, with the region's name.
    pub artifact_lift: Option<(String, f64)>,
    pub test_accuracy: Option<f64>,
    /// Test accuracy on images whose story attribute follows / contradicts the training
    /// correlation of the shortcut data.
    pub aligned_accuracy: Option<f64>,
    pub conflicting_accuracy: Option<f64>,
    /// Accuracy and AUC on each `[eval] extra` data set (`summary.json` "extra", at the best
    /// epoch): data the generator did not make, or physics it held out.
    pub extra: Vec<(String, f64, Option<f64>)>,
}

type Regions = BTreeMap<String, runfmt::RegionStats>;

/// Region stats of the predicted-class Grad-CAM maps (method `gradcam` preferred) of the
/// probes the model calls `attack` (screen recordings), from `summary.json`'s attention (the
/// best epoch's dump, keyed `method/pred/class`); all probes' maps when the run predates the
/// per-class split.
fn attack_regions<'a>(
    attention: &'a BTreeMap<String, Regions>,
    attack: &str,
) -> Option<&'a Regions> {
    let methods = std::iter::once("gradcam").chain(
        attention
            .keys()
            .filter_map(|k| k.strip_suffix("/pred"))
            .filter(|m| !m.contains('/')),
    );
    methods
        .clone()
        .find_map(|m| attention.get(&format!("{m}/pred/{attack}")))
        .or_else(|| {
            methods
                .clone()
                .find_map(|m| attention.get(&format!("{m}/pred")))
        })
}

/// Read a finished run's numbers for `story` from its files.
pub fn verdict(run: &Path, story: Story) -> Result<Verdict> {
    let summary: RunSummary = fsio::read_json(&run.join(runfmt::SUMMARY_JSON))?;
    let name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(verdict_of(&summary, &run_attack_class(run), name, story))
}

/// [`verdict`] of an already loaded `summary.json` (one read serves several stories) of a run
/// whose attack class is `attack` ([`run_attack_class`]).
pub fn verdict_of(summary: &RunSummary, attack: &str, name: String, story: Story) -> Verdict {
    let mut v = Verdict {
        name,
        ..Default::default()
    };
    if let Some(t) = &summary.test {
        v.test_accuracy = Some(t.accuracy);
    }
    v.extra = summary
        .extra
        .iter()
        .map(|(n, m)| (n.clone(), m.accuracy, m.pad.as_ref().map(|p| p.auc)))
        .collect();
    match summary.shortcuts.get(story.attr) {
        Some(s) => {
            v.aligned_accuracy = s.aligned_accuracy;
            v.conflicting_accuracy = s.conflicting_accuracy;
        }
        // Runs from before per-attribute accuracies: only the flag was tracked.
        None if story.attr == FLAG.attr => {
            v.aligned_accuracy = summary.test.as_ref().and_then(|t| t.aligned_accuracy);
            v.conflicting_accuracy = summary.test.as_ref().and_then(|t| t.conflicting_accuracy);
        }
        None => {}
    }
    // Maps of the images the model calls screen recordings: where its evidence for an attack
    // lies. Bona-fide ("direct") maps explain an absence of artifacts and light up the card's
    // sharpest, most saturated edges (the flag) whatever the model learnt, so they would blur
    // the comparison; the gallery shows both.
    if let Some(regions) = attack_regions(&summary.attention, attack) {
        if let Some(r) = regions.get(story.region) {
            v.mass = Some(r.mass);
            v.lift = Some(r.lift);
        }
        v.artifact_lift = moirelab_core::dataset_format::ARTIFACT_REGIONS
            .iter()
            .filter_map(|r| regions.get(*r).map(|s| (r.to_string(), s.lift)))
            .filter(|(_, l)| l.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1));
    }
    v
}

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// The verdict table and sentences of one story: the run that should take the shortcut and
/// the fixed run that should not.
pub fn render(story: Story, shortcut: &Verdict, fixed: &Verdict) -> String {
    let r = story.region;
    let mut out = format!(
        "{:<16}{:>10}{:>10}{:>16}{:>10}{:>13}{:>17}\n",
        "run",
        format!("{r} mass"),
        format!("{r} lift"),
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
            f(v.mass),
            f(v.lift),
            art,
            f(v.test_accuracy),
            f(v.aligned_accuracy),
            f(v.conflicting_accuracy)
        ));
    }
    let took_shortcut = shortcut.lift.is_some_and(|l| l >= 10.0)
        && matches!((shortcut.aligned_accuracy, shortcut.conflicting_accuracy), (Some(a), Some(c)) if a - c >= 0.2);
    let fixed_ok = fixed.lift.is_some_and(|l| l <= 1.5)
        && fixed.artifact_lift.as_ref().is_some_and(|(_, l)| *l > 1.0)
        && fixed.conflicting_accuracy.is_some_and(|c| c >= 0.9);
    let attr = story.attr;
    out.push_str(&format!(
        "\n{}: {}\n{}: {}\n",
        shortcut.name,
        if took_shortcut {
            format!(
                "took the {r} shortcut — its Grad-CAM puts {} of the mass on the {r} ({}x its area share) and it gets {} on {attr}-conflicting test images vs {} on aligned ones.",
                f(shortcut.mass), f(shortcut.lift), f(shortcut.conflicting_accuracy), f(shortcut.aligned_accuracy)
            )
        } else {
            format!("did NOT show the expected {r} shortcut ({r} lift >= 10 and a {attr}-conflicting gap >= 0.2); see the gallery.")
        },
        fixed.name,
        if fixed_ok {
            format!(
                "looks past the {r} (lift {}) at the screen artifacts (lift {}) and gets {} on {attr}-conflicting test images.",
                f(fixed.lift),
                fixed.artifact_lift.as_ref().map(|(_, l)| format!("{l:.2}")).unwrap_or_default(),
                f(fixed.conflicting_accuracy)
            )
        } else {
            format!("did NOT reach the fixed-run targets ({r} lift <= 1.5, artifact lift > 1, {attr}-conflicting acc >= 0.9); see the gallery.")
        }
    ));
    out.push_str(&transfer_line(fixed));
    out
}

/// What the fixed run's numbers say beyond the generator's own screens: its `[eval] extra`
/// data sets when it has them, else where transfer is measured.
fn transfer_line(fixed: &Verdict) -> String {
    if fixed.extra.is_empty() {
        return format!(
            "{}: all numbers above are on the generator's own screens; transfer to screen physics \
             it never saw is measured by scripts/bench/transfer.sh, and to a simulation written \
             apart from the generator by scripts/bench/indep.sh --run <its run folder> (tables \
             in BENCHMARKS.md; configs/transfer.toml is the detector that transfers best), and \
             [eval] extra puts your own data set in this verdict.\n",
            fixed.name
        );
    }
    let sets: Vec<String> = fixed
        .extra
        .iter()
        .map(|(n, acc, auc)| match auc {
            Some(a) => format!("{n} {acc:.3} (AUC {a:.3})"),
            None => format!("{n} {acc:.3}"),
        })
        .collect();
    format!(
        "{} on data beyond its training distribution ([eval] extra, accuracy at its val threshold): {}.\n",
        fixed.name,
        sets.join(", ")
    )
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    // Named as the demo's flag: train's own check would blame a --runs-dir it does not have.
    crate::commands::check_out_folder("--out", &a.out)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let s = stop.clone();
        let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
    }
    let t0 = Instant::now();
    let mut plan = vec![(&a.shallow, "demo-shallow"), (&a.fixed, "demo-fixed")];
    if !a.no_face {
        plan.push((&a.face, "demo-face"));
    }
    // Every config is checked before the first run starts: no half-told story.
    for (cfg, _) in &plan {
        if !cfg.is_file() {
            bail!(
                "{}: config file not found (run the demo from the repository root)",
                cfg.display()
            );
        }
    }
    let mut runs: Vec<PathBuf> = Vec::new();
    for (cfg, name) in plan {
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
    // The compare page aligns the runs probe by probe: the three data sets share their test
    // split's cards, so each row shows one image as each model sees it.
    let compare_dir = a.out.join("demo-compare");
    let written = moirelab_report::write_compare(&runs, &compare_dir)?;
    crate::commands::print_warnings(&written.warnings);
    let page = written.page;
    println!("== the flag story");
    println!(
        "{}",
        render(FLAG, &verdict(&runs[0], FLAG)?, &verdict(&runs[1], FLAG)?)
    );
    if let Some(face_run) = runs.get(2) {
        println!("== the face story");
        println!(
            "{}",
            render(FACE, &verdict(face_run, FACE)?, &verdict(&runs[1], FACE)?)
        );
    }
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
            mass: Some(lift * 0.02),
            lift: Some(lift),
            artifact_lift: Some(("moire".into(), art)),
            test_accuracy: Some((al + co) / 2.0),
            aligned_accuracy: Some(al),
            conflicting_accuracy: Some(co),
            extra: Vec::new(),
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
        assert_eq!(attack_regions(&att, "screen").unwrap()["flag"].lift, 9.0);
        att.insert("gradcam/pred/screen".into(), table(0.2));
        att.insert("gradcam/pred/direct".into(), table(15.0));
        assert_eq!(attack_regions(&att, "screen").unwrap()["flag"].lift, 0.2);
        // A run whose attack class is another one reads that class's maps.
        assert_eq!(attack_regions(&att, "direct").unwrap()["flag"].lift, 15.0);
        // Another method when the run did not compute Grad-CAM.
        let other: BTreeMap<String, Regions> = [("hirescam/pred".to_string(), table(3.0))].into();
        assert_eq!(attack_regions(&other, "screen").unwrap()["flag"].lift, 3.0);
    }

    #[test]
    fn verdict_sentences_follow_the_targets() {
        let text = render(
            FLAG,
            &v("s", 12.0, 0.5, 0.98, 0.3),
            &v("f", 1.2, 2.0, 0.95, 0.93),
        );
        assert!(text.contains("s: took the flag shortcut"), "{text}");
        assert!(text.contains("f: looks past the flag"), "{text}");
        let text = render(
            FLAG,
            &v("s", 3.0, 0.5, 0.9, 0.85),
            &v("f", 4.0, 0.9, 0.9, 0.5),
        );
        assert!(text.contains("s: did NOT show"), "{text}");
        assert!(text.contains("f: did NOT reach"), "{text}");
        let text = render(
            FACE,
            &v("s", 11.0, 0.5, 0.98, 0.3),
            &v("f", 1.0, 2.0, 0.95, 0.93),
        );
        assert!(
            text.contains("face lift") && text.contains("took the face shortcut"),
            "{text}"
        );
        assert!(text.contains("hair-conflicting test images"), "{text}");
    }

    #[test]
    fn verdict_states_transfer_from_extra_data_sets_or_says_where_it_is_measured() {
        let text = render(
            FLAG,
            &v("s", 12.0, 0.5, 0.98, 0.3),
            &v("f", 1.2, 2.0, 0.9, 0.9),
        );
        assert!(
            text.contains("f: all numbers above are on the generator's own screens")
                && text.contains("scripts/bench/transfer.sh")
                && text.contains("scripts/bench/indep.sh"),
            "{text}"
        );
        let mut fixed = v("f", 1.2, 2.0, 0.9, 0.9);
        fixed.extra = vec![
            ("indep".into(), 0.565, Some(0.56)),
            ("phone".into(), 0.8, None),
        ];
        let text = render(FLAG, &v("s", 12.0, 0.5, 0.98, 0.3), &fixed);
        assert!(
            text.contains("f on data beyond its training distribution")
                && text.contains("indep 0.565 (AUC 0.560), phone 0.800."),
            "{text}"
        );
    }

    #[test]
    fn verdict_reads_the_story_attribute_from_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let stats = |lift: f64| runfmt::RegionStats {
            lift,
            mass: lift / 10.0,
            ..Default::default()
        };
        let s = RunSummary {
            test: Some(runfmt::EpochMetrics {
                accuracy: 0.7,
                aligned_accuracy: Some(0.99),
                conflicting_accuracy: Some(0.4),
                ..Default::default()
            }),
            attention: [(
                "gradcam/pred/screen".to_string(),
                [
                    ("flag".to_string(), stats(1.1)),
                    ("face".to_string(), stats(9.0)),
                ]
                .into(),
            )]
            .into(),
            shortcut: Some("hair".into()),
            shortcuts: [
                (
                    "flag".to_string(),
                    runfmt::ShortcutStats {
                        region: Some("flag".into()),
                        aligned_accuracy: Some(0.72),
                        conflicting_accuracy: Some(0.69),
                    },
                ),
                (
                    "hair".to_string(),
                    runfmt::ShortcutStats {
                        region: Some("face".into()),
                        aligned_accuracy: Some(0.99),
                        conflicting_accuracy: Some(0.4),
                    },
                ),
            ]
            .into(),
            ..Default::default()
        };
        fsio::write_json_atomic(&dir.path().join(runfmt::SUMMARY_JSON), &s).unwrap();
        let face = verdict(dir.path(), FACE).unwrap();
        assert_eq!(
            (face.lift, face.conflicting_accuracy),
            (Some(9.0), Some(0.4))
        );
        let flag = verdict(dir.path(), FLAG).unwrap();
        assert_eq!(
            (flag.lift, flag.conflicting_accuracy),
            (Some(1.1), Some(0.69))
        );
    }
}
