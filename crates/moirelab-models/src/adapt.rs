//! BatchNorm statistics re-estimated on other images (test-time adaptation, "AdaBN": Li et
//! al. 2016, *Revisiting Batch Normalization for Practical Domain Adaptation*).
//!
//! A BatchNorm layer normalises with the mean and variance of its input over the training
//! images. On photos of another camera or card population those statistics shift, and with
//! them every logit: the ranking of photos often survives while the decision threshold does
//! not. [`BnReestimate`] replaces the running statistics of every BatchNorm layer with their
//! average over a set of unlabelled images, as PyTorch does for `momentum=None`: each batch's
//! statistics are weighted by its size, so the result is the same however the images are
//! split into batches of at least two. The learnt scale and shift (γ, β) and every other
//! parameter stay as trained.

use crate::{CamNet, ModelError};
use tch::{nn, Tensor};

/// Which running statistics take the re-estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnAdapt {
    /// Means and variances (AdaBN as published).
    All,
    /// Variances only; the means stay as trained. A camera or card population that puts more
    /// or less energy into a feature changes its spread; the offset of a feature is where a
    /// trained network keeps much of its class evidence, and re-centring it on a set whose
    /// classes are mixed differently moves that evidence too.
    Scale,
}

impl BnAdapt {
    pub fn as_str(self) -> &'static str {
        match self {
            BnAdapt::All => "all",
            BnAdapt::Scale => "scale",
        }
    }
}

impl std::str::FromStr for BnAdapt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(BnAdapt::All),
            "scale" => Ok(BnAdapt::Scale),
            _ => Err(format!("'{s}': valid values are scale, all")),
        }
    }
}

/// A running-statistics re-estimate in progress: [`BnReestimate::start`] resets the
/// statistics, [`BnReestimate::update`] folds in one batch (forward passes without grad),
/// [`BnReestimate::finish`] puts back what [`BnAdapt`] keeps.
pub struct BnReestimate<'a> {
    net: &'a dyn CamNet,
    layers: usize,
    seen: i64,
    /// The trained statistics that are kept ([`BnAdapt::Scale`]: the means).
    kept: Option<BnSnapshot>,
}

impl<'a> BnReestimate<'a> {
    /// Reset every BatchNorm layer's running mean to 0 and variance to 1 (the state of a new
    /// layer). An error when the model has none (`batch-norm = false`).
    pub fn start(
        vs: &nn::VarStore,
        net: &'a dyn CamNet,
        adapt: BnAdapt,
    ) -> Result<Self, ModelError> {
        let mut layers = 0;
        let kept =
            (adapt == BnAdapt::Scale).then(|| BnSnapshot::of(vs, |n| n.ends_with(".running_mean")));
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.ends_with(".running_mean") {
                    let _ = t.fill_(0.0);
                    layers += 1;
                } else if name.ends_with(".running_var") {
                    let _ = t.fill_(1.0);
                }
            }
        });
        if layers == 0 {
            return Err(ModelError::Config(format!(
                "model '{}' has no BatchNorm layers whose statistics could be re-estimated \
                 (model.norm = \"{}\")",
                net.config().arch.as_str(),
                net.config().norm_in_force()
            )));
        }
        Ok(BnReestimate {
            net,
            layers,
            seen: 0,
            kept,
        })
    }

    /// Put back the trained statistics that [`BnAdapt`] keeps; returns the number of
    /// BatchNorm layers re-estimated.
    pub fn finish(self) -> usize {
        if let Some(kept) = self.kept {
            kept.restore();
        }
        self.layers
    }

    /// Fold one batch `[N, C, H, W]` (N ≥ 2) into the statistics. Within the batch every layer
    /// normalises with the batch's own statistics, as in training.
    pub fn update(&mut self, xs: &Tensor) -> Result<(), ModelError> {
        let n = xs.size().first().copied().unwrap_or(0);
        if n < 2 {
            return Err(ModelError::Config(format!(
                "BatchNorm statistics need batches of at least 2 images, got {n}"
            )));
        }
        let momentum = n as f64 / (self.seen + n) as f64;
        // The logits are not needed: the forward pass updates the statistics.
        let _logits = crate::norm::with_reestimate_momentum(momentum, || {
            tch::no_grad(|| self.net.forward_t(xs, false))
        })?;
        self.seen += n;
        Ok(())
    }

    /// Images folded in so far.
    pub fn images(&self) -> i64 {
        self.seen
    }
}

/// Whether a variable of a [`nn::VarStore`] is a BatchNorm running statistic.
fn is_running_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// The number of BatchNorm layers whose running statistics a [`BnReestimate`] would take
/// (0 for a model built with `batch-norm = false`).
pub fn batch_norm_layers(vs: &nn::VarStore) -> usize {
    vs.variables()
        .keys()
        .filter(|n| n.ends_with(".running_mean"))
        .count()
}

/// A copy of every BatchNorm running statistic of a [`nn::VarStore`], to put back after a
/// re-estimate on images that are not the training ones (the per-epoch evaluation of an
/// adapted extra data set while training goes on).
pub struct BnSnapshot {
    saved: Vec<(Tensor, Tensor)>,
}

impl BnSnapshot {
    pub fn take(vs: &nn::VarStore) -> BnSnapshot {
        BnSnapshot::of(vs, is_running_stat)
    }

    /// A copy of the variables whose names `keep` accepts.
    fn of(vs: &nn::VarStore, keep: impl Fn(&str) -> bool) -> BnSnapshot {
        let saved = tch::no_grad(|| {
            vs.variables()
                .into_iter()
                .filter(|(n, _)| keep(n))
                .map(|(_, t)| {
                    let copy = t.copy();
                    (t, copy)
                })
                .collect()
        });
        BnSnapshot { saved }
    }

    /// Put every statistic back, bit for bit.
    pub fn restore(self) {
        tch::no_grad(|| {
            for (mut buffer, saved) in self.saved {
                buffer.copy_(&saved);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build, Arch, ModelConfig};
    use tch::{Device, Kind};

    /// A small VGG (4 BatchNorm layers with `batch_norm`).
    fn vgg_with(vs: &nn::VarStore, batch_norm: bool) -> Box<dyn CamNet> {
        let cfg = ModelConfig {
            arch: Arch::Vgg,
            width: 4,
            depth: 2,
            batch_norm,
            ..ModelConfig::default()
        };
        build(&vs.root(), &cfg).unwrap()
    }

    fn vgg(vs: &nn::VarStore) -> Box<dyn CamNet> {
        vgg_with(vs, true)
    }

    /// Re-estimate on one batch; the number of layers.
    fn reestimate(vs: &nn::VarStore, net: &dyn CamNet, adapt: BnAdapt, xs: &Tensor) -> usize {
        let mut r = BnReestimate::start(vs, net, adapt).unwrap();
        r.update(xs).unwrap();
        r.finish()
    }

    /// A small VGG whose "trained" statistics are those of a batch of 8 random images, and
    /// that batch.
    fn trained(seed: i64) -> (nn::VarStore, Box<dyn CamNet>, Tensor) {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = vgg(&vs);
        let xs = Tensor::randn([8, 3, 16, 16], (Kind::Float, Device::Cpu));
        reestimate(&vs, net.as_ref(), BnAdapt::All, &xs);
        (vs, net, xs)
    }

    fn running(vs: &nn::VarStore, suffix: &str) -> Vec<Tensor> {
        let mut v: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(n, _)| n.ends_with(suffix))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, t)| t.copy()).collect()
    }

    #[test]
    fn first_layer_gets_the_exact_pooled_mean_of_any_batching() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = vgg(&vs);
        let xs = Tensor::randn([12, 3, 16, 16], (Kind::Float, Device::Cpu)) * 2.0 + 0.7;
        let mut by = Vec::new();
        for split in [vec![12], vec![4, 8], vec![2, 3, 7]] {
            let mut r = BnReestimate::start(&vs, net.as_ref(), BnAdapt::All).unwrap();
            let mut at = 0;
            for n in split {
                r.update(&xs.narrow(0, at, n)).unwrap();
                at += n;
            }
            assert_eq!(r.images(), 12);
            by.push(running(&vs, ".running_mean"));
        }
        // The first BatchNorm sees the first conv's output, which does not depend on the
        // batching: its running mean is that output's mean over all images and pixels.
        let weight = vs
            .variables()
            .remove("stage1.conv1.conv.weight")
            .expect("vgg's first conv");
        let want = xs
            .conv2d(&weight, None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1)
            .mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
        for v in &by {
            let d = f64::try_from((&v[0] - &want).abs().max()).unwrap();
            assert!(d < 1e-5, "first layer's mean is off the pooled mean by {d}");
        }
    }

    #[test]
    fn statistics_follow_the_images_and_logits_change() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = vgg(&vs);
        let xs = Tensor::randn([8, 3, 16, 16], (Kind::Float, Device::Cpu));
        let before = running(&vs, ".running_mean");
        assert!(before
            .iter()
            .all(|t| f64::try_from(t.abs().max()).unwrap() == 0.0));
        let plain = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        assert_eq!(
            reestimate(&vs, net.as_ref(), BnAdapt::All, &(&xs * 3.0 + 5.0)),
            4
        );
        let after = running(&vs, ".running_mean");
        assert!(after
            .iter()
            .any(|t| f64::try_from(t.abs().max()).unwrap() > 1e-3));
        let adapted = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        assert!(f64::try_from((adapted - plain).abs().max()).unwrap() > 1e-4);
        // Eval forward passes afterwards leave the statistics alone.
        let again = running(&vs, ".running_mean");
        for (a, b) in after.iter().zip(&again) {
            assert_eq!(f64::try_from((a - b).abs().max()).unwrap(), 0.0);
        }
    }

    #[test]
    fn scale_keeps_the_trained_means_and_takes_the_variances() {
        let (vs, net, xs) = trained(5);
        let (means, vars) = (running(&vs, ".running_mean"), running(&vs, ".running_var"));
        let plain = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        assert_eq!(
            reestimate(&vs, net.as_ref(), BnAdapt::Scale, &(&xs * 4.0)),
            4
        );
        for (a, b) in running(&vs, ".running_mean").iter().zip(&means) {
            assert_eq!(f64::try_from((a - b).abs().max()).unwrap(), 0.0);
        }
        // Four times the input spreads the first layer's output 16 times as wide.
        let first = &running(&vs, ".running_var")[0];
        let ratio = f64::try_from((first / &vars[0]).mean(Kind::Float)).unwrap();
        assert!((ratio - 16.0).abs() < 0.5, "variance ratio {ratio}");
        let adapted = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        assert!(f64::try_from((adapted - plain).abs().max()).unwrap() > 1e-4);
        assert_eq!("scale".parse::<BnAdapt>(), Ok(BnAdapt::Scale));
        assert!("mean"
            .parse::<BnAdapt>()
            .unwrap_err()
            .contains("scale, all"));
    }

    #[test]
    fn a_snapshot_puts_the_trained_statistics_back_bit_for_bit() {
        let (vs, net, xs) = trained(6);
        assert_eq!(batch_norm_layers(&vs), 4);
        let (means, vars) = (running(&vs, ".running_mean"), running(&vs, ".running_var"));
        let plain = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        let snapshot = BnSnapshot::take(&vs);
        reestimate(&vs, net.as_ref(), BnAdapt::All, &(&xs * 2.0 - 1.0));
        assert!(running(&vs, ".running_var")
            .iter()
            .zip(&vars)
            .any(|(a, b)| f64::try_from((a - b).abs().max()).unwrap() > 1e-3));
        snapshot.restore();
        for (now, before) in [
            (running(&vs, ".running_mean"), means),
            (running(&vs, ".running_var"), vars),
        ] {
            for (a, b) in now.iter().zip(&before) {
                assert!(a.equal(b));
            }
        }
        let again = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        assert!(again.equal(&plain));
    }

    #[test]
    fn refuses_tiny_batches_and_models_without_batch_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = vgg(&vs);
        let mut r = BnReestimate::start(&vs, net.as_ref(), BnAdapt::All).unwrap();
        let one = Tensor::zeros([1, 3, 16, 16], (Kind::Float, Device::Cpu));
        let e = r.update(&one).unwrap_err().to_string();
        assert!(e.contains("at least 2 images"), "{e}");

        let vs = nn::VarStore::new(Device::Cpu);
        let net = vgg_with(&vs, false);
        assert_eq!(batch_norm_layers(&vs), 0);
        let e = BnReestimate::start(&vs, net.as_ref(), BnAdapt::Scale)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no BatchNorm layers"), "{e}");
    }
}
