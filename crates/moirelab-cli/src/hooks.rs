//! Glue between the trainer's epoch hooks and the Grad-CAM and report crates. The trainer
//! knows nothing about either; they know nothing about the trainer.

use crate::config::ReportConfig;
use anyhow::Result;
use moirelab_core::run::{self as runfmt, MetricsLine};
use moirelab_data::Dataset;
use moirelab_gradcam::{Dumper, GradcamConfig, ProbeInput};
use moirelab_models::CamNet;
use moirelab_train::{EpochContext, EpochHook, HookError};
use std::collections::BTreeSet;
use std::path::Path;

/// The split probes come from: test (what the story is about), else val, else train.
pub fn probe_split(ds: &Dataset) -> Option<&'static str> {
    ["test", "val", "train"]
        .into_iter()
        .find(|s| !ds.split(s).is_empty())
}

/// Build probe inputs for data-set indices (eval view, no augmentation, masks if any).
pub fn probe_inputs(ds: &Dataset, indices: &[usize]) -> Result<Vec<ProbeInput>> {
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let rec = ds.record(i);
        out.push(ProbeInput {
            id: rec.path.clone(),
            image_hash: Some(ds.content_hash(i)?),
            image: ds.eval_image(i)?,
            input: ds.eval_batch(&[i])?.squeeze_dim(0),
            true_class: ds.label(i),
            groups: rec.groups.clone(),
            aligned: ds.alignment(i),
            masks: ds.region_masks(i)?,
        });
    }
    Ok(out)
}

/// Choose the run's fixed probe set: balanced over classes and groups, seeded.
pub fn choose_probes(ds: &Dataset, n: usize, seed: u64) -> Result<Vec<usize>> {
    let Some(split) = probe_split(ds) else {
        return Ok(Vec::new());
    };
    let idx = ds.split(split);
    let labels: Vec<usize> = idx.iter().map(|&i| ds.label(i)).collect();
    let groups: Vec<String> = idx.iter().map(|&i| ds.group_key(i)).collect();
    Ok(moirelab_gradcam::select_probes(&labels, &groups, n, seed)?
        .into_iter()
        .map(|j| idx[j])
        .collect())
}

/// Per-epoch Grad-CAM dump of a fixed probe set.
pub struct GradcamHook {
    dumper: Option<Dumper>,
    keep: Option<moirelab_gradcam::KeepPolicy>,
}

impl GradcamHook {
    pub fn new(
        cfg: &GradcamConfig,
        ds: &Dataset,
        net: &dyn CamNet,
        run_dir: &Path,
    ) -> Result<Self> {
        if cfg.probes == 0 || cfg.methods.is_empty() {
            return Ok(GradcamHook {
                dumper: None,
                keep: None,
            });
        }
        // The probe seed is fixed, not the training seed: runs that differ only in their
        // seed (or in anything else) show the same images side by side in `compare`.
        let chosen = choose_probes(ds, cfg.probes, cfg.seed)?;
        let probes = probe_inputs(ds, &chosen)?;
        let dumper = Dumper::new(cfg, ds.classes().to_vec(), probes, net)?;
        dumper.write_probe_inputs(run_dir)?;
        Ok(GradcamHook {
            dumper: Some(dumper),
            keep: cfg.keep,
        })
    }
}

impl EpochHook for GradcamHook {
    fn name(&self) -> &str {
        "gradcam"
    }

    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        let Some(d) = self.dumper.as_mut() else {
            return Ok(Vec::new());
        };
        if !d.due(ctx.epoch, ctx.epochs) {
            return Ok(Vec::new());
        }
        // The probes are decoded on the CPU; the model may live on a GPU (a no-op otherwise).
        d.to_device(ctx.device);
        let lines = d.dump(ctx.net, ctx.run_dir, ctx.epoch)?;
        Ok(lines.into_iter().map(MetricsLine::Cam).collect())
    }

    /// `gradcam.keep`: thin out the epoch dumps once the best and last epochs are known.
    fn on_run_end(&mut self, run_dir: &Path) -> Result<(), HookError> {
        let Some(policy) = &self.keep else {
            return Ok(());
        };
        let summary: runfmt::RunSummary =
            moirelab_core::fsio::read_json(&run_dir.join(runfmt::SUMMARY_JSON))?;
        moirelab_gradcam::prune_epochs(run_dir, policy, Some(summary.best_epoch), summary.epochs)?;
        Ok(())
    }
}

/// TensorBoard events, plots and the HTML gallery, refreshed after each epoch. Nothing it
/// writes matters to the training: a page, plot, GIF or event file it cannot write is a
/// warning ([`EpochHook::take_warnings`], each said once per run), never an error that would
/// stop the run or mark a finished one failed.
pub struct ReportHook {
    cfg: ReportConfig,
    tb: Option<moirelab_report::tb::EventWriter>,
    /// Not yet taken by the trainer.
    warnings: Vec<String>,
    /// Every warning given this run (a page that cannot be written fails every epoch alike).
    said: BTreeSet<String>,
}

/// An error as one line.
fn line(e: impl std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

impl ReportHook {
    pub fn new(cfg: &ReportConfig, run_dir: &Path) -> Result<Self> {
        let tb = if cfg.tensorboard {
            Some(moirelab_report::tb::EventWriter::create(run_dir)?)
        } else {
            None
        };
        Ok(ReportHook {
            cfg: cfg.clone(),
            tb,
            warnings: Vec::new(),
            said: BTreeSet::new(),
        })
    }

    fn warn(&mut self, text: String) {
        if self.said.insert(text.clone()) {
            self.warnings.push(text);
        }
    }

    /// Per epoch: curves and the page only (cheap); at the end: everything, GIFs included.
    fn refresh(&mut self, run_dir: &Path, end: bool) {
        let mut warnings = Vec::new();
        let written = if end {
            moirelab_report::write_run_report_into(run_dir, false, &mut warnings)
        } else {
            if let Err(e) = moirelab_report::plots::write_curves(run_dir) {
                warnings.push(format!("plots: {}", line(e)));
            }
            moirelab_report::write_run_page_into(run_dir, false, &mut warnings)
        };
        if let Err(e) = written {
            warnings.push(format!("report page not written: {}", line(e)));
        }
        warnings.into_iter().for_each(|w| self.warn(w));
    }

    /// Log `lines` and, after an epoch, its images to TensorBoard.
    fn log_tb(
        &mut self,
        lines: &[MetricsLine],
        images: Option<(&Path, u32)>,
    ) -> Result<(), moirelab_report::ReportError> {
        let Some(tb) = self.tb.as_mut() else {
            return Ok(());
        };
        for line in lines {
            moirelab_report::tb::log_metrics_line(tb, line)?;
        }
        if let Some((run_dir, epoch)) = images {
            moirelab_report::tb::log_epoch_images(tb, run_dir, epoch)?;
        }
        tb.flush()
    }
}

impl EpochHook for ReportHook {
    fn name(&self) -> &str {
        "report"
    }

    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        if let Err(e) = self.log_tb(ctx.metrics, Some((ctx.run_dir, ctx.epoch))) {
            self.warn(format!("TensorBoard: {}", line(e)));
        }
        if self.cfg.every_epoch {
            self.refresh(ctx.run_dir, false);
        }
        Ok(Vec::new())
    }

    fn on_run_end(&mut self, run_dir: &Path) -> Result<(), HookError> {
        if self.tb.is_some() {
            let path = run_dir.join(runfmt::METRICS_JSONL);
            if let Ok(lines) = moirelab_core::fsio::read_jsonl::<MetricsLine>(&path) {
                let test: Vec<MetricsLine> = lines
                    .into_iter()
                    .filter(|l| matches!(l, MetricsLine::Epoch(m) if m.split == "test"))
                    .collect();
                if let Err(e) = self.log_tb(&test, None) {
                    self.warn(format!("TensorBoard: {}", line(e)));
                }
            }
        }
        self.refresh(run_dir, true);
        Ok(())
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moirelab_core::run::EpochMetrics;

    /// A run folder the report cannot finish: one epoch line, and `report/index.html` a folder.
    fn run_whose_page_cannot_be_written() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let line = MetricsLine::Epoch(EpochMetrics {
            epoch: 1,
            split: "train".into(),
            loss: 0.5,
            ..Default::default()
        });
        let metrics = dir.path().join(runfmt::METRICS_JSONL);
        moirelab_core::fsio::append_jsonl(&metrics, &line).unwrap();
        std::fs::create_dir_all(dir.path().join("report/index.html/x")).unwrap();
        dir
    }

    #[test]
    fn a_report_that_cannot_be_written_is_a_warning_said_once_not_an_error() {
        let dir = run_whose_page_cannot_be_written();
        let cfg = ReportConfig {
            every_epoch: true,
            tensorboard: false,
        };
        let mut hook = ReportHook::new(&cfg, dir.path()).unwrap();
        assert!(hook.on_run_end(dir.path()).is_ok());
        let w = hook.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        let page = dir.path().join("report").join("index.html");
        assert!(
            w[0].starts_with("report page not written: ")
                && w[0].contains(&*page.to_string_lossy()),
            "{}",
            w[0]
        );
        assert!(!w[0].contains('\n'));
        // The same failure again is not said again; the plots were still written.
        assert!(hook.on_run_end(dir.path()).is_ok());
        assert!(hook.take_warnings().is_empty());
        assert!(dir.path().join("plots/loss.png").is_file());
    }
}
