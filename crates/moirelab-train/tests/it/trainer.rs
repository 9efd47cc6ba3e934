//! End-to-end trainer tests on a tiny generated data set.

use moirelab_core::fsio;
use moirelab_core::run::{MetricsLine, RunMeta, RunSummary, ThresholdSource};
use moirelab_data::DataConfig;
use moirelab_models::ModelConfig;
use moirelab_train::{
    EpochContext, EpochHook, Event, HookError, Outcome, Reporter, TrainConfig, TrainError,
    TrainSetup, Trainer,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// libtorch has one global random generator, and the trainer seeds it; tests of this binary
/// run on parallel threads, so each trainer test holds this lock.
pub(crate) fn torch_rng_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One tiny data set shared by the tests of this binary (generated once), in Cargo's folder
/// for test files under `target/`. A static is never dropped, so each process deletes the
/// folders of earlier ones that have ended instead of leaving one behind per test run.
pub(crate) fn tiny_data() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            moirelab_testkit::process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "train-it-tiny-");
        let mut cfg = moirelab_synth::GenConfig::preset("tiny").unwrap();
        cfg.size = 64;
        moirelab_synth::generate(&cfg, &dir, true, &|_, _| {}).unwrap();
        dir
    })
    .clone()
}

fn setup(epochs: u32) -> TrainSetup {
    let mut data = DataConfig::for_root(tiny_data());
    data.image_size = 64;
    data.cache = moirelab_data::CacheMode::Memory;
    TrainSetup {
        data,
        model: ModelConfig {
            width: 4,
            ..Default::default()
        },
        train: TrainConfig {
            epochs,
            batch_size: 8,
            threads: 1,
            device: moirelab_train::DeviceChoice::Cpu,
            seed: 7,
            ..Default::default()
        },
        base_dir: PathBuf::from("."),
    }
}

struct Quiet;
impl Reporter for Quiet {
    fn event(&mut self, _: &Event) {}
}

/// Sets the stop flag after `after` batches (a simulated Ctrl-C).
struct StopAfter<'a> {
    after: usize,
    seen: usize,
    flag: &'a AtomicBool,
}
impl Reporter for StopAfter<'_> {
    fn event(&mut self, e: &Event) {
        if let Event::Batch { .. } = e {
            self.seen += 1;
            if self.seen == self.after {
                self.flag.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Run `t` until a simulated Ctrl-C after `after` batches; returns its run folder.
fn interrupt_after(mut t: Trainer, after: usize) -> PathBuf {
    let flag = AtomicBool::new(false);
    let mut rep = StopAfter {
        after,
        seen: 0,
        flag: &flag,
    };
    let out = t.run(&mut rep, &mut [], &flag).unwrap();
    assert!(matches!(out, Outcome::Interrupted { .. }), "{out:?}");
    t.run_dir().to_path_buf()
}

fn create(runs: &Path, name: &str, epochs: u32) -> Trainer {
    Trainer::create(setup(epochs), "# test\n", runs, name, RunMeta::default()).unwrap()
}

#[test]
fn two_tiny_epochs_write_the_whole_run_folder() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut t = create(runs.path(), "r", 2);
    let out = t.run(&mut Quiet, &mut [], &AtomicBool::new(false)).unwrap();
    assert!(matches!(out, Outcome::Finished(_)));
    let dir = runs.path().join("r");
    for f in [
        "config.toml",
        "meta.json",
        "metrics.jsonl",
        "summary.json",
        "train.log",
        "checkpoints/last.safetensors",
        "checkpoints/best.safetensors",
        "checkpoints/state.json",
        "checkpoints/state.safetensors",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let lines: Vec<MetricsLine> = fsio::read_jsonl(&dir.join("metrics.jsonl")).unwrap();
    let epochs: Vec<(u32, String)> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Epoch(m) => Some((m.epoch, m.split.clone())),
            _ => None,
        })
        .collect();
    assert!(epochs.contains(&(1, "train".into())) && epochs.contains(&(2, "val".into())));
    assert!(epochs.iter().any(|(_, s)| s == "test"), "{epochs:?}");
    let s: RunSummary = fsio::read_json(&dir.join("summary.json")).unwrap();
    assert_eq!(s.epochs, 2);
    assert!(s.test.is_some() && s.threshold.is_finite());
    assert_eq!(s.threshold_source, Some(ThresholdSource::ValEer));
    let meta: RunMeta = fsio::read_json(&dir.join("meta.json")).unwrap();
    assert_eq!(meta.status, "finished");
    let log = std::fs::read_to_string(dir.join("train.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("event=epoch")).count(),
        2,
        "{log}"
    );
}

#[test]
fn a_name_clash_gets_a_suffix_never_an_overwrite() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let a = create(runs.path(), "same", 1);
    let b = create(runs.path(), "same", 1);
    assert!(a.run_dir().ends_with("same"));
    assert!(b.run_dir().ends_with("same-2"));
}

#[test]
fn interrupted_then_resumed_equals_uninterrupted_bitwise() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut full = create(runs.path(), "full", 2);
    full.run(&mut Quiet, &mut [], &AtomicBool::new(false))
        .unwrap();
    drop(full);

    // Stop after the second batch: mid-epoch or at an epoch boundary, both must resume.
    let dir = interrupt_after(create(runs.path(), "part", 2), 2);
    // A torn weights file with no committed twin is refused; a save killed after its
    // commit point (pending twin present, temp file left over) is finished on resume.
    let ck = dir.join("checkpoints");
    let good = std::fs::read(ck.join("last.safetensors")).unwrap();
    std::fs::write(ck.join("last.safetensors"), b"torn").unwrap();
    match Trainer::resume(setup(2), &dir) {
        Err(e) => assert!(
            e.to_string()
                .contains("last.safetensors does not match state.json"),
            "{e}"
        ),
        Ok(_) => panic!("resumed from a torn checkpoint"),
    }
    std::fs::write(ck.join("last.next.safetensors"), &good).unwrap();
    std::fs::write(ck.join(".tmp999.state.safetensors"), b"partial").unwrap();
    // And a metrics line torn by the kill is dropped, not glued to the next one.
    let mut m = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    m.extend_from_slice(br#"{"kind":"ep"#);
    std::fs::write(dir.join("metrics.jsonl"), m).unwrap();
    let mut resumed = Trainer::resume(setup(2), &dir).unwrap();
    assert!(!ck.join("last.next.safetensors").exists());
    assert!(!ck.join(".tmp999.state.safetensors").exists());
    resumed
        .run(&mut Quiet, &mut [], &AtomicBool::new(false))
        .unwrap();
    drop(resumed);

    assert_same_tensors(
        &read_weights(&runs.path().join("full/checkpoints/last.safetensors")),
        &read_weights(&dir.join("checkpoints/last.safetensors")),
    );
    assert_eq!(epoch_losses(&runs.path().join("full")), epoch_losses(&dir));
}

/// The tensors of a safetensors file, sorted by name (the file's order follows a hash map,
/// not the model).
fn read_weights(path: &Path) -> BTreeMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn assert_same_tensors(a: &BTreeMap<String, tch::Tensor>, b: &BTreeMap<String, tch::Tensor>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, ta) in a {
        assert!(ta.equal(&b[k]), "weights differ at {k}");
    }
}

/// (epoch, split, loss bits) of every epoch line of a run's `metrics.jsonl`.
fn epoch_losses(run: &Path) -> Vec<(u32, String, u64)> {
    let lines: Vec<MetricsLine> = fsio::read_jsonl(&run.join("metrics.jsonl")).unwrap();
    lines
        .iter()
        .filter_map(|x| match x {
            MetricsLine::Epoch(m) => Some((m.epoch, m.split.clone(), m.loss.to_bits())),
            _ => None,
        })
        .collect()
}

/// Keeps a copy of the weights the hooks see at every epoch.
#[derive(Default)]
struct SeenWeights(Vec<BTreeMap<String, tch::Tensor>>);
impl EpochHook for SeenWeights {
    fn name(&self) -> &str {
        "seen-weights"
    }
    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        self.0.push(
            ctx.vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.detach().copy()))
                .collect(),
        );
        Ok(Vec::new())
    }
}

#[test]
fn weight_averaging_evaluates_the_average_keeps_it_as_best_and_resumes_bitwise() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let averaged = |epochs| {
        let mut s = setup(epochs);
        s.train.ema_decay = Some(0.8);
        s
    };
    let mut t =
        Trainer::create(averaged(3), "# t\n", runs.path(), "ema", RunMeta::default()).unwrap();
    let mut seen = SeenWeights::default();
    let mut hooks: [&mut dyn EpochHook; 1] = [&mut seen];
    t.run(&mut Quiet, &mut hooks, &AtomicBool::new(false))
        .unwrap();
    drop(t);
    let ck = runs.path().join("ema/checkpoints");
    let last = read_weights(&ck.join("last.safetensors"));
    // The hooks saw the average: the shadow in state.safetensors after the last epoch, not
    // the last step's weights.
    let state = read_weights(&ck.join("state.safetensors"));
    let shadow: BTreeMap<String, tch::Tensor> = state
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("ema/").map(|n| (n.to_string(), v.copy())))
        .collect();
    assert!(state.keys().any(|k| k.starts_with("optim/")));
    assert_same_tensors(&seen.0[2], &shadow);
    assert!(
        last.iter().any(|(k, w)| !w.equal(&shadow[k])),
        "the average equals the last weights"
    );
    // best.safetensors is the average of the best epoch.
    let summary: RunSummary = fsio::read_json(&runs.path().join("ema/summary.json")).unwrap();
    assert_same_tensors(
        &read_weights(&ck.join("best.safetensors")),
        &seen.0[summary.best_epoch as usize - 1],
    );

    // Interrupted mid-epoch and resumed: the same weights, average and numbers.
    let part = Trainer::create(
        averaged(3),
        "# t\n",
        runs.path(),
        "part",
        RunMeta::default(),
    )
    .unwrap();
    let dir = interrupt_after(part, 5);
    let mut resumed = Trainer::resume(averaged(3), &dir).unwrap();
    resumed
        .run(&mut Quiet, &mut [], &AtomicBool::new(false))
        .unwrap();
    drop(resumed);
    for f in ["last.safetensors", "best.safetensors", "state.safetensors"] {
        assert_same_tensors(
            &read_weights(&ck.join(f)),
            &read_weights(&dir.join("checkpoints").join(f)),
        );
    }
    assert_eq!(epoch_losses(&runs.path().join("ema")), epoch_losses(&dir));
}

#[test]
fn a_bad_config_value_is_an_error_naming_the_key() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut s = setup(1);
    s.train.lr = -1.0;
    let err = Trainer::create(s, "", runs.path(), "bad", RunMeta::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("train.lr"), "{err}");
    assert!(
        std::fs::read_dir(runs.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

/// A hook whose `on_epoch_end` fails at one epoch with an I/O error, through `?`.
struct FailAt(u32);
impl EpochHook for FailAt {
    fn name(&self) -> &str {
        "fail-at"
    }
    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        if ctx.epoch == self.0 {
            std::fs::read(ctx.run_dir.join("no-such-file"))?;
        }
        Ok(Vec::new())
    }
}

#[test]
fn a_failing_hook_stops_the_run_with_one_line_naming_hook_and_epoch() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut t = create(runs.path(), "hook", 2);
    let mut hook = FailAt(1);
    let mut hooks: [&mut dyn EpochHook; 1] = [&mut hook];
    let err = t
        .run(&mut Quiet, &mut hooks, &AtomicBool::new(false))
        .unwrap_err();
    assert!(matches!(&err, TrainError::Hook { hook, epoch: 1, .. } if hook == "fail-at"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("epoch hook 'fail-at' at epoch 1: "),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    let source = std::error::Error::source(&err).expect("the hook's error is the source");
    assert!(
        source.downcast_ref::<std::io::Error>().is_some(),
        "{source:?}"
    );
    // meta.json records the failure, not "running".
    let meta: RunMeta = fsio::read_json(&t.run_dir().join("meta.json")).unwrap();
    assert_eq!(meta.status, format!("failed: {msg}"));
    assert!(meta.finished.is_some());
}

/// A hook with a warning after every epoch, whose `on_run_end` fails when `fail_at_end`.
struct Warns {
    fail_at_end: bool,
    pending: Vec<String>,
}
impl EpochHook for Warns {
    fn name(&self) -> &str {
        "warns"
    }
    fn on_epoch_end(&mut self, ctx: &EpochContext<'_>) -> Result<Vec<MetricsLine>, HookError> {
        self.pending
            .push(format!("x.png: not written at epoch {}", ctx.epoch));
        Ok(Vec::new())
    }
    fn on_run_end(&mut self, run_dir: &Path) -> Result<(), HookError> {
        self.pending.push("y.gif: left out".into());
        if self.fail_at_end {
            std::fs::read(run_dir.join("no-such-file"))?;
        }
        Ok(())
    }
    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending)
    }
}

/// Keeps the warning events.
#[derive(Default)]
struct Warnings(Vec<(String, String)>);
impl Reporter for Warnings {
    fn event(&mut self, e: &Event) {
        if let Event::Warning { hook, text } = e {
            self.0.push((hook.clone(), text.clone()));
        }
    }
}

#[test]
fn hook_warnings_reach_the_reporter_and_the_log_and_leave_the_run_finished() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut t = create(runs.path(), "warns", 2);
    let mut hook = Warns {
        fail_at_end: false,
        pending: Vec::new(),
    };
    let mut hooks: [&mut dyn EpochHook; 1] = [&mut hook];
    let mut seen = Warnings::default();
    let outcome = t
        .run(&mut seen, &mut hooks, &AtomicBool::new(false))
        .unwrap();
    assert!(matches!(outcome, Outcome::Finished(_)), "{outcome:?}");
    let texts: Vec<&str> = seen.0.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "x.png: not written at epoch 1",
            "x.png: not written at epoch 2",
            "y.gif: left out"
        ]
    );
    assert!(seen.0.iter().all(|(h, _)| h == "warns"));
    let log = std::fs::read_to_string(t.run_dir().join("train.log")).unwrap();
    assert!(
        log.contains("event=warning hook=warns text=\"y.gif: left out\""),
        "{log}"
    );
    let meta: RunMeta = fsio::read_json(&t.run_dir().join("meta.json")).unwrap();
    assert_eq!(meta.status, "finished");
}

#[test]
fn a_failing_end_of_run_hook_is_named_as_such_not_by_an_epoch() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut t = create(runs.path(), "end", 1);
    let mut hook = Warns {
        fail_at_end: true,
        pending: Vec::new(),
    };
    let mut hooks: [&mut dyn EpochHook; 1] = [&mut hook];
    let mut seen = Warnings::default();
    let err = t
        .run(&mut seen, &mut hooks, &AtomicBool::new(false))
        .unwrap_err();
    assert!(matches!(&err, TrainError::RunEndHook { hook, .. } if hook == "warns"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("end-of-run hook 'warns' (after summary.json was written): "),
        "{msg}"
    );
    assert!(!msg.contains("at epoch"), "{msg}");
    // Its warnings still went out before the error.
    assert_eq!(seen.0.last().map(|w| w.1.as_str()), Some("y.gif: left out"));
    assert!(t.run_dir().join("summary.json").is_file());
}

#[test]
fn summary_records_a_bpcer_threshold_as_such() {
    let _rng = torch_rng_lock();
    let runs = tempfile::tempdir().unwrap();
    let mut s = setup(1);
    s.train.threshold_bpcer = Some(0.2);
    let mut t = Trainer::create(s, "", runs.path(), "bpcer", RunMeta::default()).unwrap();
    t.run(&mut Quiet, &mut [], &AtomicBool::new(false)).unwrap();
    let s: RunSummary = fsio::read_json(&t.run_dir().join("summary.json")).unwrap();
    assert_eq!(
        s.threshold_source,
        Some(ThresholdSource::ValBpcer { max_bpcer: 0.2 })
    );
    let val_tau = s.val.and_then(|v| v.pad).map(|p| p.threshold);
    assert_eq!(val_tau, Some(s.threshold));
}
