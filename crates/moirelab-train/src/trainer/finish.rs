//! The end of a run and the evaluations the epoch loop shares: [`Trainer::finish`] reloads the
//! best weights, fixes the threshold on val, applies it to test and writes `summary.json`.

use super::{evaluate, EvalOptions, Event, Reporter, Trainer};
use crate::checkpoint::{self, BEST, CKPT_DIR};
use crate::metrics::{ThresholdFrom, ThresholdRule};
use crate::summary::{self, FinalEval};
use crate::TrainError;
use moirelab_core::fsio;
use moirelab_core::run::{self as runfmt, EpochMetrics, MetricsLine, RunSummary, ThresholdSource};

impl Trainer {
    /// Final evaluation with the best weights: val fixes the threshold (EER point), test
    /// applies it. Writes `summary.json`; the model is left holding the best weights.
    pub(super) fn finish(&mut self, reporter: &mut dyn Reporter) -> Result<RunSummary, TrainError> {
        let best = self.run_dir.join(CKPT_DIR).join(BEST);
        if best.is_file() {
            checkpoint::load_weights(&mut self.vs, &best)?;
        }
        let epoch = self.state.best_epoch;
        let val = self.evaluate_split(epoch, "val", None)?;
        // Val's metrics were computed at the threshold its rule fixes, when it could.
        let fixed = val
            .as_ref()
            .and_then(|m| m.pad.as_ref())
            .map(|p| p.threshold);
        let (threshold, threshold_source) = match (fixed, self.setup.train.threshold_rule()) {
            (Some(t), ThresholdRule::Eer) => (t, ThresholdSource::ValEer),
            (Some(t), ThresholdRule::Bpcer(b)) => (t, ThresholdSource::ValBpcer { max_bpcer: b }),
            (None, _) => (0.5, ThresholdSource::Default),
        };
        let test = self.final_test(epoch, threshold)?;
        let fin = FinalEval {
            name: self.meta.name.clone(),
            monitor: self.setup.train.monitor.clone(),
            threshold,
            threshold_source,
            val,
            test,
        };
        let summary = summary::run_summary(&self.run_dir, &self.dataset, &self.state, fin)?;
        fsio::write_json_atomic(&self.run_dir.join(runfmt::SUMMARY_JSON), &summary)?;
        self.state.finished = true;
        self.state.threshold = Some(threshold);
        checkpoint::write_state(&self.run_dir, &self.state)?;
        self.set_status("finished")?;
        self.emit(
            reporter,
            Event::Message(format!(
                "finished: best {} = {:.4} at epoch {}, threshold {:.4}",
                summary.best_metric, summary.best_value, summary.best_epoch, threshold
            )),
        );
        Ok(summary)
    }

    /// Test metrics at the val `threshold`, appended to `metrics.jsonl`; `None` when
    /// `train.test` is off or the data set has no test split.
    fn final_test(&self, epoch: u32, threshold: f64) -> Result<Option<EpochMetrics>, TrainError> {
        let test_idx = self.dataset.split("test").to_vec();
        if !self.setup.train.test || test_idx.is_empty() {
            return Ok(None);
        }
        let m = evaluate(
            self.net.as_ref(),
            &self.dataset,
            &test_idx,
            &self.eval_options(epoch, "test", Some(threshold)),
        )?;
        fsio::append_jsonl(
            &self.run_dir.join(runfmt::METRICS_JSONL),
            &MetricsLine::Epoch(m.clone()),
        )?;
        Ok(Some(m))
    }

    /// Metrics of a whole split in eval mode, `None` when the data set has no such split.
    pub(super) fn evaluate_split(
        &self,
        epoch: u32,
        split: &str,
        threshold: Option<f64>,
    ) -> Result<Option<EpochMetrics>, TrainError> {
        let idx = self.dataset.split(split);
        if idx.is_empty() {
            return Ok(None);
        }
        let opts = self.eval_options(epoch, split, threshold);
        evaluate(self.net.as_ref(), &self.dataset, idx, &opts).map(Some)
    }

    pub(super) fn eval_options(
        &self,
        epoch: u32,
        split: &str,
        threshold: Option<f64>,
    ) -> EvalOptions {
        EvalOptions {
            // Evaluation holds no activations for backward, so larger batches are cheap.
            batch_size: self.setup.train.batch_size.max(64),
            device: self.device,
            epoch,
            split: split.to_string(),
            threshold: ThresholdFrom::given_or(threshold, self.setup.train.threshold_rule()),
            perturbation: None,
        }
    }
}
