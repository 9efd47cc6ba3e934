//! Glue between the trainer's epoch hooks and the Grad-CAM and report crates. The trainer
//! knows nothing about either; they know nothing about the trainer.

use crate::config::ReportConfig;
use anyhow::Result;
use moirelab_core::run::{self as runfmt, MetricsLine};
use moirelab_data::Dataset;
use moirelab_gradcam::{Dumper, GradcamConfig, ProbeInput};
use moirelab_models::CamNet;
use moirelab_train::{EpochContext, EpochHook, HookError};
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

/// TensorBoard events, plots and the HTML gallery, refreshed after each epoch.
pub struct ReportHook {
    cfg: ReportConfig,
    tb: Option<moirelab_report::tb::EventWriter>,
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
        })
    }

    /// Per epoch: curves and the page only (cheap); at the end: everything, GIFs included.
    fn refresh(&self, run_dir: &Path, end: bool) -> Result<(), HookError> {
        if end {
            moirelab_report::write_run_report(run_dir)?;
        } else {
            moirelab_report::plots::write_curves(run_dir)?;
            moirelab_report::write_run_page(run_dir)?;
        }
        Ok(())
    }
}

impl EpochHook for ReportHook {
    fn name(&self) -> &str {
        "report"
    }

    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        if let Some(tb) = self.tb.as_mut() {
            for line in ctx.metrics {
                moirelab_report::tb::log_metrics_line(tb, line)?;
            }
            moirelab_report::tb::log_epoch_images(tb, ctx.run_dir, ctx.epoch)?;
            tb.flush()?;
        }
        if self.cfg.every_epoch {
            self.refresh(ctx.run_dir, false)?;
        }
        Ok(Vec::new())
    }

    fn on_run_end(&mut self, run_dir: &Path) -> Result<(), HookError> {
        if let (Some(tb), Ok(lines)) = (
            self.tb.as_mut(),
            moirelab_core::fsio::read_jsonl::<MetricsLine>(&run_dir.join(runfmt::METRICS_JSONL)),
        ) {
            for line in lines
                .iter()
                .filter(|l| matches!(l, MetricsLine::Epoch(m) if m.split == "test"))
            {
                moirelab_report::tb::log_metrics_line(tb, line)?;
            }
            tb.flush()?;
        }
        self.refresh(run_dir, true)
    }
}
