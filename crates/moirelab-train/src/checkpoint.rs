//! The checkpoint format of a run folder (`checkpoints/`): `state.json` ([`TrainState`]),
//! the weights and optimizer state it commits, how a set is saved so that kill -9 at any point
//! resumes ([`save`], [`settle_checkpoint`]), and the checks and clean-up of a resume
//! ([`restore`], [`check_progress`], [`truncate_metrics`]). A change of the format goes here.

use crate::ema::WeightAverage;
use crate::optim::Optimizer;
use crate::TrainError;
use moirelab_core::fsio;
use moirelab_core::run::{self as runfmt, MetricsLine};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Tensor};

/// Running train-split numbers of the current epoch (saved so a mid-epoch resume keeps them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunningTrain {
    pub(crate) loss_sum: f64,
    pub(crate) n: u64,
    /// confusion[true][pred]
    pub(crate) confusion: Vec<Vec<u64>>,
    pub(crate) seconds: f64,
}

/// `checkpoints/state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrainState {
    /// Epochs fully completed.
    pub(crate) epochs_done: u32,
    /// Batches of epoch `epochs_done + 1` already trained (mid-epoch interrupt), else 0.
    pub(crate) next_batch: usize,
    pub(crate) step: u64,
    pub(crate) best_value: Option<f64>,
    pub(crate) best_epoch: u32,
    pub(crate) epochs_since_best: u32,
    pub(crate) threshold: Option<f64>,
    pub(crate) running: Option<RunningTrain>,
    pub(crate) wall_s: f64,
    /// FNV-1a of `last.safetensors` and `state.safetensors`: a crash between the renames of
    /// the three files is detected at resume instead of silently mixing steps.
    pub(crate) weights_hash: String,
    pub(crate) optim_hash: String,
    pub(crate) finished: bool,
}

pub(crate) const CKPT_DIR: &str = "checkpoints";
const LAST: &str = "last.safetensors";
pub(crate) const BEST: &str = "best.safetensors";
const OPTIM: &str = "state.safetensors";
/// Pending halves of a checkpoint being saved (see [`save`]).
const LAST_NEXT: &str = "last.next.safetensors";
const OPTIM_NEXT: &str = "state.next.safetensors";
pub(crate) const STATE: &str = "state.json";

fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// An error about a checkpoint file. A libtorch error keeps its first line only
/// ([`moirelab_models::torch_error_line`]): the C++ stack frames after it are noise.
pub(crate) fn ckpt_err(path: &Path, msg: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        msg: moirelab_models::torch_error_line(&msg),
    }
}

/// Load a run's weights file (`best` or `last.safetensors`) into `vs`, the model built from
/// the run's `config.toml`, with [`moirelab_models::load_weights`]'s checks: the model's
/// names and shapes exactly, floating point of another precision converted to f32, integer
/// tensors refused, every value finite. A file of other names or shapes says that the config
/// and the checkpoint disagree, the usual cause.
pub(crate) fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), TrainError> {
    moirelab_models::load_weights(vs, path)
        .map(|_| ())
        .map_err(|e| {
            let hint = if e.is_structural() {
                "; the run's config.toml does not match this checkpoint (edited, or the file comes from another run?)"
            } else {
                ""
            };
            ckpt_err(path, format!("{e}{hint}"))
        })
}

/// One checkpoint, committed as a set. The weights and the optimizer state are written
/// (each atomically) as `last.next.safetensors` / `state.next.safetensors`; `state.json`,
/// carrying their hashes, is the commit point; the pending files are then renamed into
/// place. A kill at any point leaves either the previous set or a committed set that
/// [`settle_checkpoint`] finishes on resume.
///
/// `vs` holds the live weights. With weight averaging (`ema`) its shadow goes into
/// `state.safetensors` as `ema/` keys, and `best.safetensors` is the shadow, not `vs`.
pub(crate) fn save(
    run_dir: &Path,
    vs: &nn::VarStore,
    opt: &Optimizer,
    ema: Option<&WeightAverage>,
    state: &mut TrainState,
    best: bool,
) -> Result<(), TrainError> {
    let dir = run_dir.join(CKPT_DIR);
    let last_next = dir.join(LAST_NEXT);
    fsio::write_atomic_with(&last_next, |tmp| vs.save(tmp)).map_err(|e| ckpt_err(&last_next, e))?;
    let optim_next = dir.join(OPTIM_NEXT);
    let mut tensors = opt.state_tensors()?;
    if let Some(ema) = ema {
        tensors.extend(ema.state_tensors());
    }
    let named: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_device(Device::Cpu)))
        .collect();
    fsio::write_atomic_with(&optim_next, |tmp| Tensor::write_safetensors(&named, tmp))
        .map_err(|e| ckpt_err(&optim_next, e))?;
    let wb = std::fs::read(&last_next).map_err(|e| ckpt_err(&last_next, e))?;
    let ob = std::fs::read(&optim_next).map_err(|e| ckpt_err(&optim_next, e))?;
    state.weights_hash = fnv1a(&wb);
    state.optim_hash = fnv1a(&ob);
    if best {
        // Before the commit: a state file never names a best epoch whose weights are
        // missing. A kill before the commit re-runs the epoch, which rewrites the same bytes.
        let best_path = dir.join(BEST);
        match ema {
            Some(ema) => fsio::write_atomic_with(&best_path, |tmp| ema.write_weights(tmp))
                .map_err(|e| ckpt_err(&best_path, e))?,
            None => fsio::write_atomic(&best_path, &wb)?,
        }
    }
    fsio::write_json_atomic(&dir.join(STATE), &*state)?;
    settle_checkpoint(&dir, state)
}

/// Read `checkpoints/state.json` of a run to resume.
pub(crate) fn read_state(run_dir: &Path) -> Result<TrainState, TrainError> {
    let state_path = run_dir.join(CKPT_DIR).join(STATE);
    if !state_path.is_file() {
        // Killed while its first checkpoint was being written, a run can hold epoch lines
        // without one; either way there is nothing to continue from.
        return Err(ckpt_err(
            &state_path,
            "no checkpoint to resume from (the run stopped before its first checkpoint was \
             written); start it again",
        ));
    }
    Ok(fsio::read_json(&state_path)?)
}

/// Write `checkpoints/state.json` alone (the final state of a finished run).
pub(crate) fn write_state(run_dir: &Path, state: &TrainState) -> Result<(), TrainError> {
    let state_path = run_dir.join(CKPT_DIR).join(STATE);
    fsio::write_json_atomic(&state_path, state)?;
    Ok(())
}

/// Resume from the committed checkpoint `state`: finish a save that was killed after its
/// commit point, load the weights into `vs`, the optimizer state into `opt` and the averaged
/// weights into `ema`, check that the state agrees with them, and drop `metrics.jsonl` lines
/// the checkpoint does not cover.
#[allow(clippy::too_many_arguments)]
pub(crate) fn restore(
    run_dir: &Path,
    state: &TrainState,
    vs: &mut nn::VarStore,
    opt: &mut Optimizer,
    ema: Option<&mut WeightAverage>,
    device: Device,
    batches_per_epoch: u64,
    epochs: u32,
) -> Result<(), TrainError> {
    let ckpt = run_dir.join(CKPT_DIR);
    settle_checkpoint(&ckpt, state)?;
    let weights = ckpt.join(LAST);
    let optim = ckpt.join(OPTIM);
    load_weights(vs, &weights)?;
    let tensors = Tensor::read_safetensors(&optim).map_err(|e| ckpt_err(&optim, e))?;
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_device(device)))
        .collect();
    opt.load_state_tensors(&tensors)?;
    if let Some(ema) = ema {
        ema.load_state_tensors(&tensors, &optim)?;
    }
    check_progress(state, opt.steps(), batches_per_epoch, epochs)
        .map_err(|msg| ckpt_err(&ckpt.join(STATE), msg))?;
    // Lines of an epoch the checkpoint does not cover were written by the killed
    // process after its last save; drop them so the re-run epoch is not counted twice.
    truncate_metrics(&run_dir.join(runfmt::METRICS_JSONL), state.epochs_done)
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

/// How long [`lock_run`] waits for readers of the run folder to let go (a sweep's `--cell`
/// reservation waits as long).
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A trainer's lock on its run folder; `None` where the file system has no locks.
pub(crate) type RunLock = Option<moirelab_core::dirlock::ExclusiveGuard>;

/// Takes this process's exclusive lock on the run folder `run_dir`, held as long as its
/// trainer lives, so that no second process trains it at the same time (a second `train
/// --resume`, a sweep cell started twice): their epochs would both be appended to
/// `metrics.jsonl`. A resume also deletes the temp files that a killed process left in the
/// folder, now that no other writer can be in it. `None` where the file system has no locks.
/// A reader's brief shared lock (a report, a sweep's check for a live training) is waited out
/// for up to [`READER_WAIT`]; a training that holds the folder is refused at once.
pub(crate) fn lock_run(run_dir: &Path) -> Result<RunLock, TrainError> {
    let lock = moirelab_core::dirlock::exclusive_guard_after_readers(run_dir, READER_WAIT)
        .map_err(|busy| {
        ckpt_err(
            run_dir,
            format!(
                "being trained by {}; not started a second time (wait for it to finish, or stop it first)",
                busy.holders_text()
            ),
        )
    })?;
    // epochs/NNNN/maps and report/gifs are the deepest folders a run writes.
    fsio::remove_abandoned_temps(run_dir, 3);
    Ok(lock)
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

/// Drop the `metrics.jsonl` lines of epochs the checkpoint does not cover (and a torn last
/// line) before a resumed run appends.
fn truncate_metrics(path: &Path, epochs_done: u32) -> Result<(), TrainError> {
    if !path.is_file() {
        return Ok(());
    }
    let text = fsio::read_text_capped(path, "a JSON-lines log", fsio::MANIFEST_MAX_BYTES)?;
    let lines: Vec<MetricsLine> = fsio::parse_jsonl(&text, path)?;
    let keep: Vec<&MetricsLine> = lines
        .iter()
        .filter(|l| match l {
            MetricsLine::Epoch(m) => m.epoch <= epochs_done && m.split != "test",
            MetricsLine::Cam(c) => c.epoch <= epochs_done,
        })
        .collect();
    // A torn final line (killed mid-append) must go too, or the next append would glue a
    // complete line onto it.
    let torn = !text.is_empty() && !text.ends_with('\n');
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A report's or a sweep's brief shared lock on the run folder does not refuse a resume;
    /// a training's exclusive one does, at once.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_resume_waits_out_a_reader_but_not_a_training() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().to_path_buf();
        let reader = moirelab_core::dirlock::read_guard(&run)
            .unwrap()
            .expect("a lock on a local folder");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(reader);
        });
        let lock = lock_run(&run).unwrap();
        assert!(lock.is_some());
        release.join().unwrap();
        let t0 = Instant::now();
        let e = lock_run(&run).unwrap_err().to_string();
        assert!(t0.elapsed() < READER_WAIT, "{:?}", t0.elapsed());
        assert!(e.contains("being trained by this process"), "{e}");
    }
}
