//! The epoch loop over one run folder: [`TrainSetup`], and [`Trainer`], which creates or
//! resumes a run, trains it epoch by epoch and finishes it with `summary.json`.
//!
//! What it leans on lives beside it: progress events and hooks in [`crate::events`], the
//! checkpoint format in `checkpoint.rs`, evaluation in [`crate::eval`], the summary in
//! `summary.rs` (and the end of a run in `trainer/finish.rs`), the device in
//! [`crate::device`], building the model, optimizer and schedule
//! in `build.rs`, the train metrics, the best epoch and the early stop in `monitor.rs`.
//!
//! Determinism: the data loader derives its permutation and augmentation from
//! (seed, epoch, position), and every batch re-seeds libtorch's generator from
//! (seed, epoch, batch) before its forward pass (dropout). Together with the saved optimizer
//! state this makes a resumed run bitwise equal to an uninterrupted one on CPU.

use crate::build::{
    build_model, build_optimizer, class_weight_tensor, record_start, schedule_for, BuiltModel,
};
use crate::checkpoint::{self, ckpt_err, RunningTrain, TrainState};
use crate::device::{device_name, thread_count};
use crate::ema::WeightAverage;
use crate::monitor::{early_stop_reason, record_best, running_metrics};
use crate::optim::Optimizer;
use crate::schedule::Schedule;
use crate::TrainError;
use moirelab_core::fsio;
use moirelab_core::rng::Rng;
use moirelab_core::run::{self as runfmt, MetricsLine, RunMeta};
use moirelab_data::{Batch, Dataset, Loader, LoaderOptions};
use moirelab_models::CamNet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn, Device, Tensor};

mod finish;

// Where these lived before the split into modules; `moirelab_train::trainer::…` paths keep
// working.
pub use crate::build::TrainSetup;
pub use crate::device::choose_device;
pub use crate::eval::{evaluate, load_run, EvalOptions, LoadedRun};
pub use crate::events::{EpochContext, EpochHook, Event, HookError, Outcome, Reporter};
pub use crate::summary::now_rfc3339;

/// The training loop over one run folder.
pub struct Trainer {
    setup: TrainSetup,
    run_dir: PathBuf,
    dataset: Arc<Dataset>,
    vs: nn::VarStore,
    net: Box<dyn CamNet>,
    opt: Optimizer,
    /// `train.ema-decay`: the averaged weights that val, the hooks and `best.safetensors` use.
    ema: Option<WeightAverage>,
    schedule: Schedule,
    total_steps: u64,
    loader: Loader,
    device: Device,
    state: TrainState,
    class_weights: Option<Tensor>,
    log: std::fs::File,
    meta: RunMeta,
    /// What building the model did (`model.init`, `model.freeze`), reported when `run` starts.
    notes: Vec<String>,
    /// This process's exclusive lock on the run folder ([`checkpoint::lock_run`]).
    _run_lock: checkpoint::RunLock,
}

/// How the batches of one epoch ended.
enum EpochRun {
    /// All batches trained: the epoch's running train numbers and the images this call saw.
    Completed { running: RunningTrain, images: u64 },
    /// `stop` was set; a mid-epoch checkpoint is saved and `next_batch` is where to go on.
    Interrupted { next_batch: usize },
}

/// Wall time of a run over all calls to [`Trainer::run`]: the seconds saved before plus
/// this call's.
struct WallClock {
    started: Instant,
    before: f64,
}

impl WallClock {
    fn total(&self) -> f64 {
        self.before + self.started.elapsed().as_secs_f64()
    }
}

impl Trainer {
    /// Open the data set (validated), build the model and a fresh run folder
    /// `<runs_root>/<name>` (a clash gets `-2`, `-3`, … — never an overwrite) holding the
    /// resolved config text, the training data's hashes and `meta.json`, all written before
    /// the first step.
    pub fn create(
        setup: TrainSetup,
        resolved_config_toml: &str,
        runs_root: &Path,
        name: &str,
        meta: RunMeta,
    ) -> Result<Trainer, TrainError> {
        Self::create_stoppable(setup, resolved_config_toml, runs_root, name, meta, None)
    }

    /// [`Trainer::create`] that a set `stop` (Ctrl-C) ends with [`TrainError::Stopped`]: it is
    /// checked after the data set is opened (before the run folder exists) and after the
    /// model is built (the new folder is deleted).
    pub fn create_stoppable(
        mut setup: TrainSetup,
        resolved_config_toml: &str,
        runs_root: &Path,
        name: &str,
        mut meta: RunMeta,
        stop: Option<&AtomicBool>,
    ) -> Result<Trainer, TrainError> {
        let stopped = || stop.is_some_and(|s| s.load(Ordering::SeqCst));
        setup.train.validate()?;
        moirelab_core::run::check_run_name(name)?;
        meta.format_version = runfmt::RUN_FORMAT_VERSION;
        let dataset = Arc::new(Dataset::open(&setup.data, &setup.base_dir)?);
        if stopped() {
            return Err(TrainError::Stopped);
        }
        setup.model.classes = dataset.classes().len() as i64;
        let n_train = dataset.split("train").len();
        if n_train == 0 {
            return Err(TrainError::Config(format!(
                "data.root = {}: the data set has no train images",
                setup.data.root.display()
            )));
        }
        if setup.train.batch_size > n_train {
            return Err(TrainError::Config(format!(
                "train.batch-size = {} is larger than the training split ({n_train} images); lower it",
                setup.train.batch_size
            )));
        }
        let run_dir = fsio::create_unique_dir(&runs_root.join(name))?;
        let lock = checkpoint::lock_run(&run_dir)?;
        // A run that fails before its first step leaves no folder behind.
        // The hashes of what it trains on, for the copy check of data evaluated later.
        let built = fsio::write_atomic(
            &run_dir.join(runfmt::CONFIG_TOML),
            resolved_config_toml.as_bytes(),
        )
        .and_then(|()| {
            let hashes = dataset.hash_list(&["train", "val"]);
            fsio::write_json_atomic(&run_dir.join(runfmt::DATA_HASHES_JSON), &hashes)
        })
        .map_err(TrainError::from)
        .and_then(|()| {
            Self::build(
                setup,
                run_dir.clone(),
                dataset,
                meta,
                (TrainState::default(), lock),
                true,
            )
        })
        .and_then(|t| {
            if stopped() {
                Err(TrainError::Stopped)
            } else {
                Ok(t)
            }
        });
        if built.is_err() {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        built
    }

    /// Reopen an interrupted run. `setup` must come from the run's own `config.toml`.
    pub fn resume(setup: TrainSetup, run_dir: &Path) -> Result<Trainer, TrainError> {
        setup.train.validate()?;
        let lock = checkpoint::lock_run(run_dir)?;
        let state = checkpoint::read_state(run_dir)?;
        let mut meta: RunMeta = runfmt::read_meta(run_dir)?;
        meta.resumed.push(now_rfc3339());
        let dataset = Arc::new(Dataset::open(&setup.data, &setup.base_dir)?);
        let mut setup = setup;
        setup.model.classes = dataset.classes().len() as i64;
        let state = (state, lock);
        Self::build(setup, run_dir.to_path_buf(), dataset, meta, state, false)
    }

    fn build(
        setup: TrainSetup,
        run_dir: PathBuf,
        dataset: Arc<Dataset>,
        mut meta: RunMeta,
        (state, run_lock): (TrainState, checkpoint::RunLock),
        fresh: bool,
    ) -> Result<Trainer, TrainError> {
        let t = &setup.train;
        let device = choose_device(t.device)?;
        let threads = thread_count(t.threads);
        tch::set_num_threads(threads as i32);
        let BuiltModel {
            mut vs,
            net,
            mut ema,
            notes,
        } = build_model(&setup, device, fresh)?;
        let loader = Loader::new(
            dataset.clone(),
            "train",
            t.batch_size,
            LoaderOptions {
                balanced: t.balanced_sampling,
                ..LoaderOptions::train(t.seed, setup.data.workers)
            },
        )?;
        let mut opt = build_optimizer(t, &vs)?;
        let bpe = loader.batches_per_epoch() as u64;
        if !fresh {
            checkpoint::restore(
                &run_dir,
                &state,
                &mut vs,
                &mut opt,
                ema.as_mut(),
                device,
                bpe,
                t.epochs,
            )?;
        }
        let class_weights = class_weight_tensor(&t.class_weights, &dataset, device)?;
        let schedule = schedule_for(t, bpe);
        schedule.validate()?;
        let total_steps = t.epochs as u64 * bpe;
        record_start(&mut meta, &run_dir, &dataset, device, threads, t.seed);
        fsio::write_json_atomic(&run_dir.join(runfmt::META_JSON), &meta)?;
        let log_path = run_dir.join(runfmt::TRAIN_LOG);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| ckpt_err(&log_path, e))?;
        Ok(Trainer {
            setup,
            run_dir,
            dataset,
            vs,
            net,
            opt,
            ema,
            schedule,
            total_steps,
            loader,
            device,
            state,
            class_weights,
            log,
            meta,
            notes,
            _run_lock: run_lock,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    pub fn net(&self) -> &dyn CamNet {
        self.net.as_ref()
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Epochs already completed (non-zero after a resume).
    pub fn epochs_done(&self) -> u32 {
        self.state.epochs_done
    }

    fn emit(&mut self, reporter: &mut dyn Reporter, ev: Event) {
        if let Some(line) = ev.plain_line(self.setup.train.log_every) {
            // The log is best effort: a full disk must not kill a two-hour run here; the
            // checkpoint writes below report their own errors.
            let _ = writeln!(self.log, "{line}");
        }
        reporter.event(&ev);
    }

    /// Train until the configured epochs, early stopping, or `stop` (checked after every
    /// batch: the batch finishes, a checkpoint is saved, and [`Outcome::Interrupted`] returns).
    ///
    /// Per epoch, in private methods of this file: `train_epoch` (the batches),
    /// `evaluate_epoch` (val, best epoch, `metrics.jsonl`), `run_hooks`, `commit_epoch`
    /// (checkpoint), `early_stop`; then `finish` and each hook's `on_run_end`.
    pub fn run(
        &mut self,
        reporter: &mut dyn Reporter,
        hooks: &mut [&mut dyn EpochHook],
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        let result = self.run_epochs(reporter, hooks, stop);
        if let Err(e) = &result {
            // `meta.json` says why the run stopped; the error itself is what the caller
            // reports, so a failure to record it is not a second error.
            let reason = e.to_string().replace('\n', " ");
            let _ = self.set_status(&format!("failed: {reason}"));
        }
        result
    }

    fn run_epochs(
        &mut self,
        reporter: &mut dyn Reporter,
        hooks: &mut [&mut dyn EpochHook],
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        let epochs = self.setup.train.epochs;
        let clock = WallClock {
            started: Instant::now(),
            before: self.state.wall_s,
        };
        self.emit(
            reporter,
            Event::RunStart {
                run_dir: self.run_dir.clone(),
                device: device_name(self.device),
                epochs,
                start_epoch: self.state.epochs_done + 1,
                batches_per_epoch: self.loader.batches_per_epoch(),
                train_images: self.dataset.split("train").len(),
            },
        );
        for note in std::mem::take(&mut self.notes) {
            self.emit(reporter, Event::Message(note));
        }
        let mut early = false;
        while self.state.epochs_done < epochs && !early {
            let epoch = self.state.epochs_done + 1;
            let (running, images) = match self.train_epoch(reporter, epoch, stop, &clock)? {
                EpochRun::Completed { running, images } => (running, images),
                EpochRun::Interrupted { next_batch } => {
                    return Ok(Outcome::Interrupted { epoch, next_batch })
                }
            };
            // Val and the hooks see the averaged weights when there are any; the checkpoint
            // keeps the live ones to train on.
            self.swap_average();
            let judged = self
                .evaluate_epoch(reporter, epoch, running, images)
                .and_then(|(lines, improved)| {
                    self.run_hooks(reporter, hooks, epoch, lines)?;
                    Ok(improved)
                });
            self.swap_average();
            let improved = judged?;
            self.commit_epoch(epoch, improved, &clock)?;
            early = self.early_stop(reporter, epoch);
        }
        let summary = self.finish(reporter)?;
        for hook in hooks.iter_mut() {
            let done = hook.on_run_end(&self.run_dir);
            self.emit_warnings(reporter, &mut **hook);
            done.map_err(|e| TrainError::RunEndHook {
                hook: hook.name().to_string(),
                source: e.into(),
            })?;
        }
        Ok(if early {
            Outcome::EarlyStopped(summary)
        } else {
            Outcome::Finished(summary)
        })
    }

    /// The batches of `epoch` from `state.next_batch` on (non-zero after a mid-epoch
    /// interrupt). With `stop` set after a batch that is not the last, saves a mid-epoch
    /// checkpoint, marks the run interrupted and returns [`EpochRun::Interrupted`].
    fn train_epoch(
        &mut self,
        reporter: &mut dyn Reporter,
        epoch: u32,
        stop: &AtomicBool,
        clock: &WallClock,
    ) -> Result<EpochRun, TrainError> {
        let epochs = self.setup.train.epochs;
        let k = self.dataset.classes().len();
        let batches = self.loader.batches_per_epoch();
        let skip = self.state.next_batch;
        let mut running = self.state.running.take().unwrap_or_else(|| RunningTrain {
            confusion: vec![vec![0; k]; k],
            ..Default::default()
        });
        self.emit(
            reporter,
            Event::EpochStart {
                epoch,
                epochs,
                batches,
                skip,
            },
        );
        let epoch_start = Instant::now();
        let mut images_this_call = 0u64;
        let mut batch_idx = skip;
        for batch in self.loader.epoch(epoch, skip) {
            let batch = batch?;
            let (loss, lr) = self.train_step(epoch, batch_idx, &batch, &mut running)?;
            images_this_call += batch.indices.len() as u64;
            batch_idx += 1;
            let secs = epoch_start.elapsed().as_secs_f64();
            self.emit(
                reporter,
                Event::Batch {
                    epoch,
                    batch: batch_idx - 1,
                    batches,
                    loss,
                    lr,
                    images_per_sec: images_this_call as f64 / secs.max(1e-9),
                },
            );
            if stop.load(Ordering::SeqCst) && batch_idx < batches {
                running.seconds += epoch_start.elapsed().as_secs_f64();
                self.state.next_batch = batch_idx;
                self.state.running = Some(running);
                self.state.wall_s = clock.total();
                self.save_checkpoint(false)?;
                self.set_status("interrupted")?;
                return Ok(EpochRun::Interrupted {
                    next_batch: batch_idx,
                });
            }
        }
        running.seconds += epoch_start.elapsed().as_secs_f64();
        Ok(EpochRun::Completed {
            running,
            images: images_this_call,
        })
    }

    /// One optimizer step on `batch`, batch `batch_idx` of `epoch`, with libtorch's generator
    /// re-seeded from (seed, epoch, batch) first. Adds the batch to the running train
    /// numbers. Returns the loss and the learning rate of the step.
    fn train_step(
        &mut self,
        epoch: u32,
        batch_idx: usize,
        batch: &Batch,
        running: &mut RunningTrain,
    ) -> Result<(f64, f64), TrainError> {
        let t = &self.setup.train;
        let lr = self.schedule.lr_at(t.lr, self.state.step, self.total_steps);
        let xs = batch.images.to_device(self.device);
        let ys = batch.labels.to_device(self.device);
        tch::manual_seed(
            Rng::derive(t.seed, &[epoch as u64, batch_idx as u64]).next_u64() as i64 & i64::MAX,
        );
        let logits = self.net.forward_t(&xs, true)?;
        let loss = logits.cross_entropy_loss::<&Tensor>(
            &ys,
            self.class_weights.as_ref(),
            tch::Reduction::Mean,
            -100,
            t.label_smoothing,
        );
        let loss_v = f64::try_from(&loss)?;
        if !loss_v.is_finite() {
            return Err(TrainError::NonFinite {
                epoch,
                batch: batch_idx,
                value: loss_v,
            });
        }
        self.opt.zero_grad()?;
        loss.backward();
        if t.grad_clip > 0.0 {
            self.opt.clip_grad_norm(t.grad_clip)?;
        }
        self.opt.step(lr)?;
        self.state.step += 1;
        if let Some(ema) = &mut self.ema {
            ema.update(self.state.step);
        }
        // Running train metrics from the same forward pass (train mode), like
        // PyTorch/Lightning logs do.
        let preds = Vec::<i64>::try_from(logits.argmax(-1, false).to_device(Device::Cpu))?;
        let labels = Vec::<i64>::try_from(batch.labels.shallow_clone())?;
        running.add_batch(&labels, &preds, loss_v);
        Ok((loss_v, lr))
    }

    /// The numbers of a trained epoch: train (running) and val metrics, the monitor and the
    /// best epoch. Reports them and appends them to `metrics.jsonl`. Returns the lines (what
    /// the hooks see) and whether this epoch is the new best.
    fn evaluate_epoch(
        &mut self,
        reporter: &mut dyn Reporter,
        epoch: u32,
        running: RunningTrain,
        images: u64,
    ) -> Result<(Vec<MetricsLine>, bool), TrainError> {
        let train_m = running_metrics(&running, epoch, self.state.step, images);
        let val_m = self.evaluate_split(epoch, "val", None)?;
        let mut train_m = train_m;
        train_m.lr = Some(self.schedule.lr_at(
            self.setup.train.lr,
            self.state.step.saturating_sub(1),
            self.total_steps,
        ));
        let improved = record_best(
            &mut self.state,
            &self.setup.train,
            epoch,
            &train_m,
            val_m.as_ref(),
        );
        let mut lines = vec![MetricsLine::Epoch(train_m.clone())];
        if let Some(v) = &val_m {
            lines.push(MetricsLine::Epoch(v.clone()));
        }
        self.emit(
            reporter,
            Event::EpochEnd {
                epoch,
                epochs: self.setup.train.epochs,
                train: Box::new(train_m),
                val: val_m.map(Box::new),
                improved,
            },
        );
        let metrics_path = self.run_dir.join(runfmt::METRICS_JSONL);
        for l in &lines {
            fsio::append_jsonl(&metrics_path, l)?;
        }
        Ok((lines, improved))
    }

    /// Each hook in order, seeing the epoch's lines so far; the lines a hook returns are
    /// appended to `metrics.jsonl` and passed on to the hooks after it.
    fn run_hooks(
        &mut self,
        reporter: &mut dyn Reporter,
        hooks: &mut [&mut dyn EpochHook],
        epoch: u32,
        mut lines: Vec<MetricsLine>,
    ) -> Result<(), TrainError> {
        let metrics_path = self.run_dir.join(runfmt::METRICS_JSONL);
        for hook in hooks.iter_mut() {
            let t0 = Instant::now();
            let ctx = EpochContext {
                epoch,
                epochs: self.setup.train.epochs,
                run_dir: &self.run_dir,
                net: self.net.as_ref(),
                vs: &self.vs,
                dataset: &self.dataset,
                device: self.device,
                metrics: &lines,
            };
            let extra = hook.on_epoch_end(&ctx);
            self.emit_warnings(reporter, &mut **hook);
            let extra = extra.map_err(|e| TrainError::Hook {
                hook: hook.name().to_string(),
                epoch,
                source: e.into(),
            })?;
            for l in &extra {
                fsio::append_jsonl(&metrics_path, l)?;
            }
            lines.extend(extra);
            let name = hook.name().to_string();
            self.emit(
                reporter,
                Event::Hook {
                    epoch,
                    hook: name,
                    seconds: t0.elapsed().as_secs_f64(),
                },
            );
        }
        Ok(())
    }

    /// Send the warnings `hook` kept since its last call.
    fn emit_warnings(&mut self, reporter: &mut dyn Reporter, hook: &mut dyn EpochHook) {
        for text in hook.take_warnings() {
            let hook = hook.name().to_string();
            self.emit(reporter, Event::Warning { hook, text });
        }
    }

    /// `epoch` is complete: commit its checkpoint (and `best.safetensors` if it improved).
    fn commit_epoch(
        &mut self,
        epoch: u32,
        improved: bool,
        clock: &WallClock,
    ) -> Result<(), TrainError> {
        self.state.epochs_done = epoch;
        self.state.next_batch = 0;
        self.state.running = None;
        self.state.wall_s = clock.total();
        self.save_checkpoint(improved)
    }

    /// Whether the run stops early after `epoch` ([`early_stop_reason`]); says why to the
    /// reporter.
    fn early_stop(&mut self, reporter: &mut dyn Reporter, epoch: u32) -> bool {
        match early_stop_reason(&self.state, &self.setup.train, epoch) {
            Some(reason) => {
                self.emit(reporter, Event::Message(reason));
                true
            }
            None => false,
        }
    }

    fn set_status(&mut self, status: &str) -> Result<(), TrainError> {
        self.meta.status = status.to_string();
        self.meta.finished = Some(now_rfc3339());
        fsio::write_json_atomic(&self.run_dir.join(runfmt::META_JSON), &self.meta)?;
        Ok(())
    }

    /// One checkpoint, committed as a set (see [`checkpoint::save`]).
    fn save_checkpoint(&mut self, best: bool) -> Result<(), TrainError> {
        checkpoint::save(
            &self.run_dir,
            &self.vs,
            &self.opt,
            self.ema.as_ref(),
            &mut self.state,
            best,
        )
    }

    /// Exchange the model's weights with the averaged ones (`train.ema-decay`); a second
    /// call puts the live weights back exactly. Without averaging, nothing.
    fn swap_average(&mut self) {
        if let Some(ema) = &mut self.ema {
            ema.swap();
        }
    }
}
