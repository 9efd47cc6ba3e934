//! The epoch loop, the run folder, checkpoints and exact resume.
//!
//! Determinism: the data loader derives its permutation and augmentation from
//! (seed, epoch, position), and every batch re-seeds libtorch's generator from
//! (seed, epoch, batch) before its forward pass (dropout). Together with the saved optimizer
//! state this makes a resumed run bitwise equal to an uninterrupted one on CPU.

use crate::config::{ClassWeights, DeviceChoice, TrainConfig};
use crate::metrics::{ClassificationAccumulator, GroupTag};
use crate::optim::{OptimConfig, Optimizer, OptimizerKind};
use crate::schedule::Schedule;
use crate::TrainError;
use moirelab_core::fsio;
use moirelab_core::rng::Rng;
use moirelab_core::run::{self as runfmt, EpochMetrics, MetricsLine, RunMeta, RunSummary};
use moirelab_data::{DataConfig, Dataset, Loader, LoaderOptions};
use moirelab_models::{CamNet, ModelConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Everything needed to build a run: the nested config sections the trainer consumes.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Folder that relative paths in the config resolve against (the config file's folder or
    /// the working directory).
    pub base_dir: PathBuf,
}

/// Progress events. The CLI turns them into bars or plain lines; `plain_line` is what goes to
/// `train.log` (and to stderr when it is not a terminal).
#[derive(Debug, Clone)]
pub enum Event {
    RunStart {
        run_dir: PathBuf,
        device: String,
        epochs: u32,
        start_epoch: u32,
        batches_per_epoch: usize,
        train_images: usize,
    },
    EpochStart {
        epoch: u32,
        epochs: u32,
        batches: usize,
        skip: usize,
    },
    Batch {
        epoch: u32,
        batch: usize,
        batches: usize,
        loss: f64,
        lr: f64,
        images_per_sec: f64,
    },
    EpochEnd {
        epoch: u32,
        epochs: u32,
        train: Box<EpochMetrics>,
        val: Option<Box<EpochMetrics>>,
        improved: bool,
    },
    Hook {
        epoch: u32,
        hook: String,
        seconds: f64,
    },
    Message(String),
}

impl Event {
    /// One `key=value` line, or `None` for events that only feed bars.
    pub fn plain_line(&self, log_every: usize) -> Option<String> {
        match self {
            Event::RunStart {
                run_dir,
                device,
                epochs,
                start_epoch,
                batches_per_epoch,
                train_images,
            } => Some(format!(
                "event=start run={} device={device} epochs={epochs} start-epoch={start_epoch} batches-per-epoch={batches_per_epoch} train-images={train_images}",
                run_dir.display()
            )),
            Event::EpochStart { .. } => None,
            Event::Batch {
                epoch,
                batch,
                batches,
                loss,
                lr,
                images_per_sec,
            } => (log_every > 0 && (batch + 1) % log_every == 0).then(|| {
                format!(
                    "event=batch epoch={epoch} batch={}/{batches} loss={loss:.4} lr={lr:.3e} img/s={images_per_sec:.0}",
                    batch + 1
                )
            }),
            Event::EpochEnd {
                epoch,
                epochs,
                train,
                val,
                improved,
            } => {
                let mut s = format!(
                    "event=epoch epoch={epoch}/{epochs} train.loss={:.4} train.acc={:.4} img/s={:.0}",
                    train.loss,
                    train.accuracy,
                    train.images_per_sec.unwrap_or(0.0)
                );
                if let Some(v) = val {
                    s.push_str(&format!(
                        " val.loss={:.4} val.acc={:.4} val.bacc={:.4}",
                        v.loss, v.accuracy, v.balanced_accuracy
                    ));
                    if let Some(p) = &v.pad {
                        s.push_str(&format!(" val.eer={:.4} val.auc={:.4}", p.eer, p.auc));
                    }
                    if let (Some(a), Some(c)) = (v.aligned_accuracy, v.conflicting_accuracy) {
                        s.push_str(&format!(" val.aligned-acc={a:.4} val.conflicting-acc={c:.4}"));
                    }
                }
                if *improved {
                    s.push_str(" best=yes");
                }
                s.push_str(&format!(" wall={:.1}s", train.wall_s));
                Some(s)
            }
            Event::Hook {
                epoch,
                hook,
                seconds,
            } => Some(format!("event=hook epoch={epoch} hook={hook} seconds={seconds:.2}")),
            Event::Message(m) => Some(format!("event=message text={m:?}")),
        }
    }
}

/// Receives progress. Implemented by the CLI (bars on a terminal, plain lines otherwise).
pub trait Reporter {
    fn event(&mut self, event: &Event);
}

/// What a hook sees at the end of an epoch.
pub struct EpochContext<'a> {
    pub epoch: u32,
    pub epochs: u32,
    pub run_dir: &'a Path,
    pub net: &'a dyn CamNet,
    pub dataset: &'a Dataset,
    pub device: Device,
    /// The metrics lines written for this epoch so far.
    pub metrics: &'a [MetricsLine],
}

/// Per-epoch extension point (Grad-CAM dumps, reports, TensorBoard). The trainer knows
/// nothing about them; lines a hook returns are appended to `metrics.jsonl`.
pub trait EpochHook {
    fn name(&self) -> &str;
    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, String>;
    /// Called once after the final test evaluation (summary.json exists).
    fn on_run_end(&mut self, _run_dir: &Path) -> Result<(), String> {
        Ok(())
    }
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Finished(RunSummary),
    EarlyStopped(RunSummary),
    /// Stopped on request after a batch; resumable.
    Interrupted {
        epoch: u32,
        next_batch: usize,
    },
}

/// Running train-split numbers of the current epoch (saved so a mid-epoch resume keeps them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RunningTrain {
    loss_sum: f64,
    n: u64,
    /// confusion[true][pred]
    confusion: Vec<Vec<u64>>,
    seconds: f64,
}

/// `checkpoints/state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TrainState {
    /// Epochs fully completed.
    epochs_done: u32,
    /// Batches of epoch `epochs_done + 1` already trained (mid-epoch interrupt), else 0.
    next_batch: usize,
    step: u64,
    best_value: Option<f64>,
    best_epoch: u32,
    epochs_since_best: u32,
    threshold: Option<f64>,
    running: Option<RunningTrain>,
    wall_s: f64,
    /// FNV-1a of `last.safetensors` and `state.safetensors`: a crash between the renames of
    /// the three files is detected at resume instead of silently mixing steps.
    weights_hash: String,
    optim_hash: String,
    finished: bool,
}

const CKPT_DIR: &str = "checkpoints";
const LAST: &str = "last.safetensors";
const BEST: &str = "best.safetensors";
const OPTIM: &str = "state.safetensors";
/// Pending halves of a checkpoint being saved (see `save_checkpoint`).
const LAST_NEXT: &str = "last.next.safetensors";
const OPTIM_NEXT: &str = "state.next.safetensors";
const STATE: &str = "state.json";

fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn ckpt_err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Pick the device the config asks for.
pub fn choose_device(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(TrainError::Device(
                    "train.device = \"cuda\" but no CUDA device is available (use \"auto\" or \"cpu\")".into(),
                ))
            }
        }
    }
}

fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A model built from a run's config with its weights loaded (eval, predict, explain).
pub struct LoadedRun {
    pub vs: nn::VarStore,
    pub net: Box<dyn CamNet>,
    pub device: Device,
    /// Threshold fixed on val (from `summary.json` or `state.json`), if the run has one.
    pub threshold: Option<f64>,
}

/// Build the model of a run and load `checkpoints/<which>.safetensors` (`best` or `last`).
pub fn load_run(
    run_dir: &Path,
    model: &ModelConfig,
    device: Device,
    which: &str,
) -> Result<LoadedRun, TrainError> {
    let path = run_dir.join(CKPT_DIR).join(format!("{which}.safetensors"));
    if !path.is_file() {
        return Err(ckpt_err(
            &path,
            "no such checkpoint (has the run finished an epoch?)",
        ));
    }
    let mut vs = nn::VarStore::new(device);
    let net = moirelab_models::build(&vs.root(), model)?;
    vs.load(&path).map_err(|e| ckpt_err(&path, e))?;
    let threshold = fsio::read_json::<RunSummary>(&run_dir.join(runfmt::SUMMARY_JSON))
        .ok()
        .map(|s| s.threshold)
        .or_else(|| {
            fsio::read_json::<TrainState>(&run_dir.join(CKPT_DIR).join(STATE))
                .ok()
                .and_then(|s| s.threshold)
        });
    Ok(LoadedRun {
        vs,
        net,
        device,
        threshold,
    })
}

/// How [`evaluate`] runs and labels its result.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub batch_size: usize,
    pub device: Device,
    /// Epoch recorded in the metrics.
    pub epoch: u32,
    /// Split name recorded in the metrics.
    pub split: String,
    /// `None` fixes the threshold at this split's EER point (val); `Some` applies it (test).
    pub threshold: Option<f64>,
}

/// Evaluate `net` on a list of data-set indices (eval mode, no augmentation, no grad).
pub fn evaluate(
    net: &dyn CamNet,
    dataset: &Dataset,
    indices: &[usize],
    opts: &EvalOptions,
) -> Result<EpochMetrics, TrainError> {
    let start = Instant::now();
    let (batch_size, device) = (opts.batch_size, opts.device);
    let mut acc =
        ClassificationAccumulator::new(dataset.classes().len(), Some(dataset.attack_index()))
            .map_err(|e| TrainError::Config(e.to_string()))?;
    let has_groups = indices
        .iter()
        .any(|&i| !dataset.record(i).groups.is_empty());
    for chunk in indices.chunks(batch_size.max(1)) {
        let xs = dataset.eval_batch(chunk)?.to_device(device);
        let labels: Vec<i64> = chunk.iter().map(|&i| dataset.label(i) as i64).collect();
        let ys = Tensor::from_slice(&labels).to_device(device);
        let (loss, probs) = tch::no_grad(|| -> Result<(Tensor, Tensor), TrainError> {
            let logits = net.forward_t(&xs, false)?;
            let loss = logits.cross_entropy_for_logits(&ys) * chunk.len() as f64;
            Ok((loss, logits.softmax(-1, Kind::Float)))
        })?;
        let probs = probs.to_device(Device::Cpu).to_kind(Kind::Double);
        let probs: Vec<f64> = Vec::<f64>::try_from(probs.flatten(0, -1))?;
        let targets: Vec<usize> = chunk.iter().map(|&i| dataset.label(i)).collect();
        let tags: Vec<GroupTag> = chunk
            .iter()
            .map(|&i| GroupTag {
                name: dataset.group_key(i),
                aligned: dataset.alignment(i),
            })
            .collect();
        acc.update(
            f64::try_from(loss)?,
            &targets,
            &probs,
            has_groups.then_some(tags.as_slice()),
        )
        .map_err(|e| TrainError::Config(e.to_string()))?;
    }
    let mut m = acc.compute(opts.epoch, &opts.split, opts.threshold);
    m.wall_s = start.elapsed().as_secs_f64();
    Ok(m)
}

/// The training loop over one run folder.
pub struct Trainer {
    setup: TrainSetup,
    run_dir: PathBuf,
    dataset: Arc<Dataset>,
    vs: nn::VarStore,
    net: Box<dyn CamNet>,
    opt: Optimizer,
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
}

impl Trainer {
    /// Open the data set (validated), build the model and a fresh run folder
    /// `<runs_root>/<name>` (a clash gets `-2`, `-3`, … — never an overwrite) holding the
    /// resolved config text and `meta.json`, both written before the first step.
    pub fn create(
        mut setup: TrainSetup,
        resolved_config_toml: &str,
        runs_root: &Path,
        name: &str,
        meta: RunMeta,
    ) -> Result<Trainer, TrainError> {
        setup.train.validate().map_err(TrainError::Config)?;
        moirelab_core::run::check_run_name(name).map_err(TrainError::Config)?;
        let dataset = Arc::new(Dataset::open(&setup.data, &setup.base_dir)?);
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
        // A run that fails before its first step leaves no folder behind.
        let built = fsio::write_atomic(
            &run_dir.join(runfmt::CONFIG_TOML),
            resolved_config_toml.as_bytes(),
        )
        .map_err(TrainError::from)
        .and_then(|()| {
            Self::build(
                setup,
                run_dir.clone(),
                dataset,
                meta,
                TrainState::default(),
                true,
            )
        });
        if built.is_err() {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        built
    }

    /// Reopen an interrupted run. `setup` must come from the run's own `config.toml`.
    pub fn resume(setup: TrainSetup, run_dir: &Path) -> Result<Trainer, TrainError> {
        setup.train.validate().map_err(TrainError::Config)?;
        let ckpt = run_dir.join(CKPT_DIR);
        let state_path = ckpt.join(STATE);
        if !state_path.is_file() {
            return Err(ckpt_err(
                &state_path,
                "no checkpoint to resume from (the run never finished a batch it could save)",
            ));
        }
        let state: TrainState = fsio::read_json(&state_path)?;
        let mut meta: RunMeta = fsio::read_json(&run_dir.join(runfmt::META_JSON))?;
        meta.resumed.push(now_rfc3339());
        let dataset = Arc::new(Dataset::open(&setup.data, &setup.base_dir)?);
        let mut setup = setup;
        setup.model.classes = dataset.classes().len() as i64;
        Self::build(setup, run_dir.to_path_buf(), dataset, meta, state, false)
    }

    fn build(
        setup: TrainSetup,
        run_dir: PathBuf,
        dataset: Arc<Dataset>,
        mut meta: RunMeta,
        state: TrainState,
        fresh: bool,
    ) -> Result<Trainer, TrainError> {
        let t = &setup.train;
        let device = choose_device(t.device)?;
        let threads = if t.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            t.threads
        };
        tch::set_num_threads(threads as i32);
        // Initialisation is seeded: same config + seed -> same initial weights.
        tch::manual_seed(t.seed as i64);
        let mut vs = nn::VarStore::new(device);
        let net = moirelab_models::build(&vs.root(), &setup.model)?;
        let mut notes = Vec::new();
        if let (true, Some(init)) = (fresh, &setup.model.init) {
            let path = setup.base_dir.join(init);
            let r = moirelab_models::load_pretrained(&mut vs, &setup.model, &path)?;
            notes.push(format!("model.init {}: {r}", init.display()));
        }
        // Before the optimizer collects the trainable parameters (also on resume).
        let frozen = moirelab_models::apply_freeze(&vs, &setup.model)?;
        if frozen > 0 {
            notes.push(format!(
                "model.freeze = {}: {frozen} tensors frozen",
                setup.model.freeze.as_deref().unwrap_or_default()
            ));
        }
        let ckpt = run_dir.join(CKPT_DIR);
        let loader = Loader::new(
            dataset.clone(),
            "train",
            t.batch_size,
            LoaderOptions {
                balanced: t.balanced_sampling,
                ..LoaderOptions::train(t.seed, setup.data.workers)
            },
        )?;
        // Trainable parameters by name (BatchNorm running statistics do not require grad).
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let kind = match t.optimizer.as_str() {
            "sgd" => OptimizerKind::Sgd,
            "adamw" => OptimizerKind::Adamw,
            _ => OptimizerKind::Adam,
        };
        let mut opt = Optimizer::new(
            &OptimConfig {
                kind,
                lr: t.lr,
                momentum: t.momentum,
                nesterov: t.nesterov,
                weight_decay: t.weight_decay,
                betas: (t.betas[0], t.betas[1]),
                eps: t.eps,
            },
            params,
        )?;
        if !fresh {
            settle_checkpoint(&ckpt, &state)?;
            let weights = ckpt.join(LAST);
            let optim = ckpt.join(OPTIM);
            vs.load(&weights).map_err(|e| ckpt_err(&weights, e))?;
            let tensors = Tensor::read_safetensors(&optim).map_err(|e| ckpt_err(&optim, e))?;
            let tensors: Vec<(String, Tensor)> = tensors
                .into_iter()
                .map(|(k, v)| (k, v.to_device(device)))
                .collect();
            opt.load_state_tensors(&tensors)?;
            check_progress(
                &state,
                opt.steps(),
                loader.batches_per_epoch() as u64,
                t.epochs,
            )
            .map_err(|msg| ckpt_err(&ckpt.join(STATE), msg))?;
            // Lines of an epoch the checkpoint does not cover were written by the killed
            // process after its last save; drop them so the re-run epoch is not counted twice.
            truncate_metrics(&run_dir.join(runfmt::METRICS_JSONL), state.epochs_done)?;
        }
        let class_weights = class_weight_tensor(&t.class_weights, &dataset, device)?;
        let bpe = loader.batches_per_epoch() as u64;
        let schedule = schedule_for(t, bpe);
        schedule.validate()?;
        let total_steps = t.epochs as u64 * bpe;
        meta.device = device_name(device);
        meta.threads = threads;
        meta.seed = t.seed;
        meta.classes = dataset.classes().to_vec();
        meta.attack_class = dataset.classes().get(dataset.attack_index()).cloned();
        meta.status = "running".into();
        meta.name = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
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
            schedule,
            total_steps,
            loader,
            device,
            state,
            class_weights,
            log,
            meta,
            notes,
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
    pub fn run(
        &mut self,
        reporter: &mut dyn Reporter,
        hooks: &mut [&mut dyn EpochHook],
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        let epochs = self.setup.train.epochs;
        let k = self.dataset.classes().len();
        let batches = self.loader.batches_per_epoch();
        let started = Instant::now();
        let wall_before = self.state.wall_s;
        self.emit(
            reporter,
            Event::RunStart {
                run_dir: self.run_dir.clone(),
                device: device_name(self.device),
                epochs,
                start_epoch: self.state.epochs_done + 1,
                batches_per_epoch: batches,
                train_images: self.dataset.split("train").len(),
            },
        );
        for note in std::mem::take(&mut self.notes) {
            self.emit(reporter, Event::Message(note));
        }
        let mut early = false;
        while self.state.epochs_done < epochs && !early {
            let epoch = self.state.epochs_done + 1;
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
                let lr =
                    self.schedule
                        .lr_at(self.setup.train.lr, self.state.step, self.total_steps);
                let n = batch.indices.len();
                let xs = batch.images.to_device(self.device);
                let ys = batch.labels.to_device(self.device);
                tch::manual_seed(
                    Rng::derive(self.setup.train.seed, &[epoch as u64, batch_idx as u64]).next_u64()
                        as i64
                        & i64::MAX,
                );
                let logits = self.net.forward_t(&xs, true)?;
                let loss = logits.cross_entropy_loss::<&Tensor>(
                    &ys,
                    self.class_weights.as_ref(),
                    tch::Reduction::Mean,
                    -100,
                    self.setup.train.label_smoothing,
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
                if self.setup.train.grad_clip > 0.0 {
                    self.opt.clip_grad_norm(self.setup.train.grad_clip)?;
                }
                self.opt.step(lr)?;
                self.state.step += 1;
                // Running train metrics from the same forward pass (train mode), like
                // PyTorch/Lightning logs do.
                let preds = Vec::<i64>::try_from(logits.argmax(-1, false).to_device(Device::Cpu))?;
                let labels = Vec::<i64>::try_from(batch.labels.shallow_clone())?;
                for (t, p) in labels.iter().zip(&preds) {
                    running.confusion[*t as usize][*p as usize] += 1;
                }
                running.loss_sum += loss_v * n as f64;
                running.n += n as u64;
                images_this_call += n as u64;
                batch_idx += 1;
                let secs = epoch_start.elapsed().as_secs_f64();
                self.emit(
                    reporter,
                    Event::Batch {
                        epoch,
                        batch: batch_idx - 1,
                        batches,
                        loss: loss_v,
                        lr,
                        images_per_sec: images_this_call as f64 / secs.max(1e-9),
                    },
                );
                if stop.load(Ordering::SeqCst) && batch_idx < batches {
                    running.seconds += epoch_start.elapsed().as_secs_f64();
                    self.state.next_batch = batch_idx;
                    self.state.running = Some(running);
                    self.state.wall_s = wall_before + started.elapsed().as_secs_f64();
                    self.save_checkpoint(false)?;
                    self.set_status("interrupted")?;
                    return Ok(Outcome::Interrupted {
                        epoch,
                        next_batch: batch_idx,
                    });
                }
            }
            running.seconds += epoch_start.elapsed().as_secs_f64();
            let train_m = running_metrics(&running, epoch, self.state.step, images_this_call);
            let val_m = self.evaluate_split(epoch, "val", None)?;
            let mut train_m = train_m;
            train_m.lr = Some(self.schedule.lr_at(
                self.setup.train.lr,
                self.state.step.saturating_sub(1),
                self.total_steps,
            ));
            let monitor = monitor_value(&self.setup.train.monitor, val_m.as_ref(), &train_m);
            let higher = self.setup.train.monitor_higher_is_better();
            let improved = match (monitor, self.state.best_value) {
                (Some(v), Some(b)) => {
                    if higher {
                        v > b
                    } else {
                        v < b
                    }
                }
                (Some(_), None) => true,
                (None, _) => self.state.best_value.is_none(),
            };
            if improved {
                self.state.best_value = monitor.or(self.state.best_value);
                self.state.best_epoch = epoch;
                self.state.epochs_since_best = 0;
                self.state.threshold = val_m
                    .as_ref()
                    .and_then(|m| m.pad.as_ref())
                    .map(|p| p.threshold);
            } else {
                self.state.epochs_since_best += 1;
            }
            let mut lines = vec![MetricsLine::Epoch(train_m.clone())];
            if let Some(v) = &val_m {
                lines.push(MetricsLine::Epoch(v.clone()));
            }
            self.emit(
                reporter,
                Event::EpochEnd {
                    epoch,
                    epochs,
                    train: Box::new(train_m),
                    val: val_m.map(Box::new),
                    improved,
                },
            );
            let metrics_path = self.run_dir.join(runfmt::METRICS_JSONL);
            for l in &lines {
                fsio::append_jsonl(&metrics_path, l)?;
            }
            for hook in hooks.iter_mut() {
                let t0 = Instant::now();
                let ctx = EpochContext {
                    epoch,
                    epochs,
                    run_dir: &self.run_dir,
                    net: self.net.as_ref(),
                    dataset: &self.dataset,
                    device: self.device,
                    metrics: &lines,
                };
                let extra = hook.on_epoch_end(&ctx).map_err(|msg| TrainError::Hook {
                    hook: hook.name().to_string(),
                    epoch,
                    msg,
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
            self.state.epochs_done = epoch;
            self.state.next_batch = 0;
            self.state.running = None;
            self.state.wall_s = wall_before + started.elapsed().as_secs_f64();
            self.save_checkpoint(improved)?;
            let patience = self.setup.train.early_stop_patience;
            if patience > 0 && self.state.epochs_since_best >= patience && epoch < epochs {
                self.emit(
                    reporter,
                    Event::Message(format!(
                        "early stop: {} did not improve for {patience} epochs (best {:.4} at epoch {})",
                        self.setup.train.monitor,
                        self.state.best_value.unwrap_or(f64::NAN),
                        self.state.best_epoch
                    )),
                );
                early = true;
            }
        }
        let summary = self.finish(reporter)?;
        for hook in hooks.iter_mut() {
            hook.on_run_end(&self.run_dir)
                .map_err(|msg| TrainError::Hook {
                    hook: hook.name().to_string(),
                    epoch: self.state.epochs_done,
                    msg,
                })?;
        }
        Ok(if early {
            Outcome::EarlyStopped(summary)
        } else {
            Outcome::Finished(summary)
        })
    }

    /// Final evaluation with the best weights: val fixes the threshold (EER point), test
    /// applies it. Writes `summary.json`; the model is left holding the best weights.
    fn finish(&mut self, reporter: &mut dyn Reporter) -> Result<RunSummary, TrainError> {
        let best = self.run_dir.join(CKPT_DIR).join(BEST);
        if best.is_file() {
            self.vs.load(&best).map_err(|e| ckpt_err(&best, e))?;
        }
        let epoch = self.state.best_epoch;
        let val = self.evaluate_split(epoch, "val", None)?;
        let threshold = val
            .as_ref()
            .and_then(|m| m.pad.as_ref())
            .map(|p| p.threshold)
            .unwrap_or(0.5);
        let test_idx = self.dataset.split("test").to_vec();
        let test = if self.setup.train.test && !test_idx.is_empty() {
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
            Some(m)
        } else {
            None
        };
        let meta = self.dataset.meta();
        let shortcuts = meta
            .shortcuts
            .iter()
            .map(|(attr, pairs)| {
                let (aligned, conflicting) = test
                    .as_ref()
                    .map(|t| runfmt::shortcut_accuracy(&t.groups, attr, pairs))
                    .unwrap_or_default();
                let stats = runfmt::ShortcutStats {
                    region: meta.shortcut_region(attr).map(str::to_string),
                    aligned_accuracy: aligned,
                    conflicting_accuracy: conflicting,
                };
                (attr.clone(), stats)
            })
            .collect();
        let summary = RunSummary {
            shortcut: self.dataset.primary_shortcut().map(str::to_string),
            shortcuts,
            name: self.meta.name.clone(),
            epochs: self.state.epochs_done,
            best_metric: self.setup.train.monitor.clone(),
            best_epoch: self.state.best_epoch,
            best_value: self.state.best_value.unwrap_or(f64::NAN),
            threshold,
            val,
            test,
            attention: attention_at(
                &self.run_dir.join(runfmt::METRICS_JSONL),
                self.state.best_epoch,
            )?,
            extra: extra_at(
                &self.run_dir.join(runfmt::METRICS_JSONL),
                self.state.best_epoch,
            )?,
            wall_s: self.state.wall_s,
        };
        fsio::write_json_atomic(&self.run_dir.join(runfmt::SUMMARY_JSON), &summary)?;
        self.state.finished = true;
        self.state.threshold = Some(threshold);
        let state_path = self.run_dir.join(CKPT_DIR).join(STATE);
        fsio::write_json_atomic(&state_path, &self.state)?;
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

    /// Metrics of a whole split in eval mode, `None` when the data set has no such split.
    fn evaluate_split(
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

    fn eval_options(&self, epoch: u32, split: &str, threshold: Option<f64>) -> EvalOptions {
        EvalOptions {
            // Evaluation holds no activations for backward, so larger batches are cheap.
            batch_size: self.setup.train.batch_size.max(64),
            device: self.device,
            epoch,
            split: split.to_string(),
            threshold,
        }
    }

    fn set_status(&mut self, status: &str) -> Result<(), TrainError> {
        self.meta.status = status.to_string();
        self.meta.finished = Some(now_rfc3339());
        fsio::write_json_atomic(&self.run_dir.join(runfmt::META_JSON), &self.meta)?;
        Ok(())
    }

    /// One checkpoint, committed as a set. The weights and the optimizer state are written
    /// (each atomically) as `last.next.safetensors` / `state.next.safetensors`; `state.json`,
    /// carrying their hashes, is the commit point; the pending files are then renamed into
    /// place. A kill at any point leaves either the previous set or a committed set that
    /// [`settle_checkpoint`] finishes on resume.
    fn save_checkpoint(&mut self, best: bool) -> Result<(), TrainError> {
        let dir = self.run_dir.join(CKPT_DIR);
        let last_next = dir.join(LAST_NEXT);
        fsio::write_atomic_with(&last_next, |tmp| self.vs.save(tmp))
            .map_err(|e| ckpt_err(&last_next, e))?;
        let optim_next = dir.join(OPTIM_NEXT);
        let tensors = self.opt.state_tensors()?;
        let named: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_device(Device::Cpu)))
            .collect();
        fsio::write_atomic_with(&optim_next, |tmp| Tensor::write_safetensors(&named, tmp))
            .map_err(|e| ckpt_err(&optim_next, e))?;
        let wb = std::fs::read(&last_next).map_err(|e| ckpt_err(&last_next, e))?;
        let ob = std::fs::read(&optim_next).map_err(|e| ckpt_err(&optim_next, e))?;
        self.state.weights_hash = fnv1a(&wb);
        self.state.optim_hash = fnv1a(&ob);
        if best {
            // Before the commit: a state file never names a best epoch whose weights are
            // missing. A kill before the commit re-runs the epoch, which rewrites the same bytes.
            fsio::write_atomic(&dir.join(BEST), &wb)?;
        }
        fsio::write_json_atomic(&dir.join(STATE), &self.state)?;
        settle_checkpoint(&dir, &self.state)
    }
}

/// Bring `last.safetensors` and `state.safetensors` in line with the committed `state.json`:
/// a file whose hash already matches stays; otherwise its pending `*.next.safetensors` twin
/// must match and is renamed into place (a save killed after its commit point). Anything
/// else is a checkpoint that cannot be trusted. Leftover temp files of killed writes go.
fn settle_checkpoint(dir: &Path, state: &TrainState) -> Result<(), TrainError> {
    for (file, next, want) in [
        (LAST, LAST_NEXT, &state.weights_hash),
        (OPTIM, OPTIM_NEXT, &state.optim_hash),
    ] {
        let (path, next) = (dir.join(file), dir.join(next));
        let hash_of = |p: &Path| std::fs::read(p).ok().map(|b| fnv1a(&b));
        if hash_of(&path).as_ref() == Some(want) {
            if next.exists() {
                std::fs::remove_file(&next).map_err(|e| ckpt_err(&next, e))?;
            }
        } else if hash_of(&next).as_ref() == Some(want) {
            std::fs::rename(&next, &path).map_err(|e| ckpt_err(&path, e))?;
        } else {
            return Err(ckpt_err(
                dir,
                format!("{file} does not match state.json (edited or damaged?); copy best.safetensors aside and start a new run"),
            ));
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// A state file must agree with the checkpoint it commits: the optimizer's step count
/// (inside the hashed `state.safetensors`) equals `step`, which equals the batches of the
/// epochs and partial epoch it claims. A hand-edited `epochs_done` would otherwise mark
/// unfinished training finished.
fn check_progress(
    state: &TrainState,
    optim_steps: u64,
    batches_per_epoch: u64,
    epochs: u32,
) -> Result<(), String> {
    let claimed = state.epochs_done as u64 * batches_per_epoch + state.next_batch as u64;
    let why = if optim_steps != state.step {
        format!(
            "says {} steps, but the optimizer checkpoint holds {optim_steps}",
            state.step
        )
    } else if claimed != state.step {
        format!(
            "says {} epoch(s) and {} batch(es) done ({claimed} steps at {batches_per_epoch} a epoch), but the checkpoint holds {} steps",
            state.epochs_done, state.next_batch, state.step
        )
    } else if state.next_batch as u64 >= batches_per_epoch.max(1) && state.next_batch > 0 {
        format!(
            "says {} batches of an epoch of {batches_per_epoch} done",
            state.next_batch
        )
    } else if state.epochs_done > epochs {
        format!(
            "says {} epochs done, more than train.epochs = {epochs}",
            state.epochs_done
        )
    } else {
        return Ok(());
    };
    Err(format!(
        "{why}; the state file does not belong to these checkpoints (edited by hand?): restore it, or start a new run"
    ))
}

/// The LR schedule the `[train]` keys describe, in optimizer steps.
fn schedule_for(t: &TrainConfig, batches_per_epoch: u64) -> Schedule {
    let warmup_steps = (t.warmup_epochs * batches_per_epoch as f64).round() as u64;
    match t.schedule.as_str() {
        "step" => Schedule::Step {
            step_size: t.step_epochs as u64 * batches_per_epoch.max(1),
            gamma: t.gamma,
            warmup_steps,
        },
        "cosine" => Schedule::Cosine {
            min_lr: t.min_lr,
            warmup_steps,
        },
        _ => Schedule::Constant { warmup_steps },
    }
}

fn running_metrics(r: &RunningTrain, epoch: u32, step: u64, images: u64) -> EpochMetrics {
    let n = r.n.max(1);
    let correct: u64 = (0..r.confusion.len()).map(|i| r.confusion[i][i]).sum();
    let recalls: Vec<f64> = r
        .confusion
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let tot: u64 = row.iter().sum();
            (tot > 0).then(|| row[i] as f64 / tot as f64)
        })
        .collect();
    EpochMetrics {
        epoch,
        split: "train".into(),
        step,
        n: r.n,
        loss: r.loss_sum / n as f64,
        accuracy: correct as f64 / n as f64,
        balanced_accuracy: if recalls.is_empty() {
            0.0
        } else {
            recalls.iter().sum::<f64>() / recalls.len() as f64
        },
        confusion: r.confusion.clone(),
        images_per_sec: Some(images as f64 / r.seconds.max(1e-9)),
        wall_s: r.seconds,
        ..Default::default()
    }
}

fn monitor_value(monitor: &str, val: Option<&EpochMetrics>, train: &EpochMetrics) -> Option<f64> {
    // Without a val split the train numbers stand in (documented in the README).
    let m = val.unwrap_or(train);
    match monitor {
        "val.loss" => Some(m.loss),
        "val.accuracy" => Some(m.accuracy),
        "val.balanced-accuracy" => Some(m.balanced_accuracy),
        "val.eer" => m.pad.as_ref().map(|p| p.eer),
        "val.auc" => m.pad.as_ref().map(|p| p.auc),
        "val.worst-group-accuracy" => m.worst_group_accuracy,
        _ => None,
    }
    .filter(|v| v.is_finite())
}

fn class_weight_tensor(
    cw: &ClassWeights,
    ds: &Dataset,
    device: Device,
) -> Result<Option<Tensor>, TrainError> {
    let k = ds.classes().len();
    let w: Vec<f64> = match cw {
        ClassWeights::Named(n) if n == "balanced" => {
            let mut counts = vec![0usize; k];
            for &i in ds.split("train") {
                counts[ds.label(i)] += 1;
            }
            let total: usize = counts.iter().sum();
            counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        total as f64 / (k * c) as f64
                    }
                })
                .collect()
        }
        ClassWeights::Named(_) => return Ok(None),
        ClassWeights::Explicit(w) => {
            if w.len() != k {
                return Err(TrainError::Config(format!(
                    "train.class-weights has {} values but the data set has {k} classes ({})",
                    w.len(),
                    ds.classes().join(", ")
                )));
            }
            w.clone()
        }
    };
    let w: Vec<f32> = w.iter().map(|&x| x as f32).collect();
    Ok(Some(Tensor::from_slice(&w).to_device(device)))
}

fn truncate_metrics(path: &Path, epochs_done: u32) -> Result<(), TrainError> {
    if !path.is_file() {
        return Ok(());
    }
    let lines: Vec<MetricsLine> = fsio::read_jsonl(path)?;
    let keep: Vec<&MetricsLine> = lines
        .iter()
        .filter(|l| match l {
            MetricsLine::Epoch(m) => m.epoch <= epochs_done && m.split != "test",
            MetricsLine::Cam(c) => c.epoch <= epochs_done,
        })
        .collect();
    // A torn final line (killed mid-append) must go too, or the next append would glue a
    // complete line onto it.
    let torn = std::fs::read(path)
        .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
        .unwrap_or(false);
    if keep.len() == lines.len() && !torn {
        return Ok(());
    }
    let mut out = Vec::new();
    for l in keep {
        let s = serde_json::to_string(l).map_err(|e| ckpt_err(path, e))?;
        out.extend_from_slice(s.as_bytes());
        out.push(b'\n');
    }
    fsio::write_atomic(path, &out)?;
    Ok(())
}

/// Current UTC time as RFC 3339 (no external time crate: civil-from-days, Hinnant).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Region stats of the CAM dump of epoch `at` (the best epoch, whose weights the test
/// metrics come from; the last dump when that epoch has none) in `metrics.jsonl` (written by
/// a hook), keyed `method/target` and, split by the class each map explains,
/// `method/target/class`.
fn attention_at(
    metrics: &Path,
    at: u32,
) -> Result<BTreeMap<String, BTreeMap<String, runfmt::RegionStats>>, TrainError> {
    let lines: Vec<MetricsLine> = if metrics.is_file() {
        fsio::read_jsonl(metrics)?
    } else {
        Vec::new()
    };
    let cams: Vec<&runfmt::CamMetrics> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Cam(c) => Some(c),
            MetricsLine::Epoch(_) => None,
        })
        .collect();
    let last = if cams.iter().any(|c| c.epoch == at) {
        at
    } else {
        match cams.iter().map(|c| c.epoch).max() {
            Some(e) => e,
            None => return Ok(BTreeMap::new()),
        }
    };
    let mut out = BTreeMap::new();
    for c in cams.into_iter().filter(|c| c.epoch == last) {
        let key = format!("{}/{}", c.method, c.target.as_str());
        for (class, regions) in &c.per_class {
            out.insert(format!("{key}/{class}"), regions.clone());
        }
        out.insert(key, c.regions.clone());
    }
    Ok(out)
}

/// The `[eval] extra` lines (split `extra/<name>`) of epoch `at` in `metrics.jsonl`, by name.
fn extra_at(metrics: &Path, at: u32) -> Result<BTreeMap<String, EpochMetrics>, TrainError> {
    if !metrics.is_file() {
        return Ok(BTreeMap::new());
    }
    let lines: Vec<MetricsLine> = fsio::read_jsonl(metrics)?;
    Ok(lines
        .into_iter()
        .filter_map(|l| match l {
            MetricsLine::Epoch(m) if m.epoch == at => m
                .split
                .strip_prefix(runfmt::EXTRA_PREFIX)
                .map(|name| (name.to_string(), m.clone())),
            _ => None,
        })
        .collect())
}
