//! An exponential moving average of the weights (`train.ema-decay`): the weights a run
//! evaluates, explains and keeps as `best.safetensors` when the key is set.
//!
//! After every optimizer step each variable of the model (parameters and BatchNorm running
//! statistics alike, as timm's `ModelEmaV2` does) moves its shadow copy toward it:
//! `shadow += (1 − d)·(w − shadow)`, with `d = min(decay, (1 + t)/(10 + t))` at step `t`
//! (TensorFlow's `ExponentialMovingAverage` with `num_updates`), so that the shadow of the
//! first steps is not held near the random initialisation. Non-float variables are copied.
//! The update is a `lerp`, so a variable that does not change (a frozen layer) keeps its
//! shadow bit for bit.
//!
//! The trainer swaps the shadow into the model for val, the epoch hooks and
//! `best.safetensors`, and back before `last.safetensors` is written: training itself goes
//! on with the live weights. The shadow is checkpointed under `ema/<name>` in
//! `state.safetensors`, beside the optimizer's `optim/` keys, so a resumed run continues
//! bit for bit.

use crate::checkpoint::ckpt_err;
use crate::TrainError;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Device, Tensor};

const PREFIX: &str = "ema/";

/// The shadow weights, one per variable of the model, in name order.
#[derive(Debug)]
pub(crate) struct WeightAverage {
    decay: f64,
    /// (name, variable of the model, shadow)
    slots: Vec<(String, Tensor, Tensor)>,
}

impl WeightAverage {
    /// A shadow equal to the model's current weights.
    pub(crate) fn new(decay: f64, vs: &nn::VarStore) -> WeightAverage {
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        let slots = tch::no_grad(|| {
            vars.into_iter()
                .map(|(name, var)| {
                    let shadow = var.detach().copy();
                    (name, var, shadow)
                })
                .collect()
        });
        WeightAverage { decay, slots }
    }

    /// The decay applied at optimizer step `step` (1 for the first step).
    pub(crate) fn decay_at(&self, step: u64) -> f64 {
        let t = step as f64;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    /// Move the shadow toward the model's weights after optimizer step `step`.
    pub(crate) fn update(&mut self, step: u64) {
        let w = 1.0 - self.decay_at(step);
        tch::no_grad(|| {
            for (_, var, shadow) in &mut self.slots {
                if shadow.is_floating_point() {
                    let _ = shadow.lerp_(&var.detach(), w);
                } else {
                    shadow.copy_(var);
                }
            }
        });
    }

    /// Exchange the model's weights and the shadow: after one call the model holds the
    /// average, after a second it holds its own weights again, exactly.
    pub(crate) fn swap(&mut self) {
        tch::no_grad(|| {
            for (_, var, shadow) in &mut self.slots {
                let live = var.detach().copy();
                var.copy_(shadow);
                shadow.copy_(&live);
            }
        });
    }

    /// The shadow as `ema/<name>` tensors on the CPU, for `state.safetensors`.
    pub(crate) fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .map(|(name, _, shadow)| (format!("{PREFIX}{name}"), shadow.to_device(Device::Cpu)))
            .collect()
    }

    /// Write the shadow as a weights file with the model's own names (what `vs.load` reads).
    pub(crate) fn write_weights(&self, path: &Path) -> Result<(), tch::TchError> {
        let named: Vec<(&str, Tensor)> = self
            .slots
            .iter()
            .map(|(name, _, shadow)| (name.as_str(), shadow.to_device(Device::Cpu)))
            .collect();
        Tensor::write_safetensors(&named, path)
    }

    /// Restore the shadow from the `ema/` tensors of a checkpoint (`path` names it in
    /// errors): every variable must have its shadow, of its shape and dtype.
    pub(crate) fn load_state_tensors(
        &mut self,
        tensors: &[(String, Tensor)],
        path: &Path,
    ) -> Result<(), TrainError> {
        let by_key: BTreeMap<&str, &Tensor> = tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(PREFIX).map(|n| (n, t)))
            .collect();
        if by_key.is_empty() {
            return Err(ckpt_err(
                path,
                "holds no averaged weights (ema/…), but train.ema-decay is set: the run was started without it; resume with its own config.toml",
            ));
        }
        let mut loaded = Vec::with_capacity(self.slots.len());
        for (name, var, _) in &self.slots {
            let t = by_key.get(name.as_str()).ok_or_else(|| {
                ckpt_err(path, format!("averaged weights: missing key 'ema/{name}'"))
            })?;
            if t.size() != var.size() || t.kind() != var.kind() {
                return Err(ckpt_err(
                    path,
                    format!(
                        "averaged weights: 'ema/{name}' is {:?} {:?}, the model's is {:?} {:?}",
                        t.kind(),
                        t.size(),
                        var.kind(),
                        var.size()
                    ),
                ));
            }
            loaded.push(t.to_device(var.device()));
        }
        if by_key.len() != self.slots.len() {
            let known: std::collections::BTreeSet<&str> =
                self.slots.iter().map(|(n, _, _)| n.as_str()).collect();
            if let Some(extra) = by_key.keys().find(|k| !known.contains(*k)) {
                return Err(ckpt_err(
                    path,
                    format!("averaged weights: 'ema/{extra}' is not a variable of this model"),
                ));
            }
        }
        for ((_, _, shadow), t) in self.slots.iter_mut().zip(loaded) {
            *shadow = t;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn store(values: &[f32]) -> (nn::VarStore, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().zeros("w", &[values.len() as i64]);
        set(&w, values);
        (vs, w)
    }

    fn set(w: &Tensor, values: &[f32]) {
        tch::no_grad(|| w.shallow_clone().copy_(&Tensor::from_slice(values)));
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.to_kind(Kind::Float)).unwrap()
    }

    #[test]
    fn the_shadow_follows_the_tf_schedule_and_a_double_swap_is_exact() {
        let (vs, w) = store(&[0.0, 1.0]);
        let mut ema = WeightAverage::new(0.9, &vs);
        // Step 1: d = min(0.9, 2/11) = 2/11; step 100: d = min(0.9, 101/110) = 0.9.
        assert!((ema.decay_at(1) - 2.0 / 11.0).abs() < 1e-12);
        assert!((ema.decay_at(100) - 0.9).abs() < 1e-12);
        set(&w, &[1.0f32, 1.0]);
        ema.update(1);
        let s1 = 0.0 + (1.0 - 2.0 / 11.0) * (1.0 - 0.0);
        ema.update(100);
        let s2 = s1 + 0.1 * (1.0 - s1);
        ema.swap();
        let got = values(&w);
        assert!((got[0] as f64 - s2).abs() < 1e-6, "{got:?} vs {s2}");
        // An unchanged variable keeps its value exactly.
        assert_eq!(got[1], 1.0);
        ema.swap();
        assert_eq!(values(&w), vec![1.0, 1.0]);
    }

    #[test]
    fn state_round_trips_and_a_foreign_checkpoint_is_named() {
        let (vs, w) = store(&[2.0, 4.0]);
        let mut ema = WeightAverage::new(0.5, &vs);
        set(&w, &[0.0f32, 0.0]);
        ema.update(100);
        let saved = ema.state_tensors();
        assert_eq!(saved[0].0, "ema/w");
        let mut other = WeightAverage::new(0.5, &vs);
        let path = Path::new("run/checkpoints/state.safetensors");
        other.load_state_tensors(&saved, path).unwrap();
        other.swap();
        assert_eq!(values(&w), vec![1.0, 2.0]);
        let e = other.load_state_tensors(&[], path).unwrap_err().to_string();
        assert!(
            e.contains("state.safetensors") && e.contains("ema-decay"),
            "{e}"
        );
        let wrong = vec![(
            "ema/w".to_string(),
            Tensor::zeros([3], (Kind::Float, Device::Cpu)),
        )];
        let e = other
            .load_state_tensors(&wrong, path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'ema/w'"), "{e}");
    }
}
