//! Normalisation layers after a convolution: BatchNorm (PyTorch's conventions, and the
//! running-statistics re-estimation of [`crate::BnReestimate`]) and GroupNorm
//! (`model.norm = "group"`), chosen per model by [`NormLayer`].

use crate::layers::Op;
use tch::{nn, Tensor};

/// The normalisation a model's conv units get (from `model.norm`, `model.norm-groups` and the
/// older `model.batch-norm`; [`crate::ModelConfig::norm_layer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormLayer {
    /// No normalisation: the convolutions get a bias.
    None,
    /// BatchNorm: each channel normalised with the statistics of the batch in training and
    /// with running statistics in evaluation.
    Batch,
    /// GroupNorm with at most this many groups: each image normalised with its own statistics
    /// over groups of channels, in training and evaluation alike (Wu & He 2018). A layer of
    /// `C` channels gets the largest divisor of `C` not above the number.
    Group(i64),
}

impl NormLayer {
    /// Whether the convolution before it needs a bias (only without normalisation).
    pub(crate) fn conv_bias(self) -> bool {
        self == NormLayer::None
    }

    /// The layer at `vs` for `channels` channels (`None` without normalisation). Both kinds
    /// name their affine parameters `weight` and `bias`, as PyTorch does.
    pub(crate) fn build(self, vs: nn::Path, channels: i64) -> Option<NormModule> {
        match self {
            NormLayer::None => None,
            NormLayer::Batch => Some(NormModule::Batch(Bn::new(vs, channels))),
            NormLayer::Group(max) => Some(NormModule::Group(nn::group_norm(
                vs,
                groups_for(channels, max),
                channels,
                Default::default(),
            ))),
        }
    }
}

/// The number of groups a layer of `channels` channels gets under `model.norm-groups = max`:
/// the largest divisor of `channels` not above `max`.
pub(crate) fn groups_for(channels: i64, max: i64) -> i64 {
    (1..=max.min(channels).max(1))
        .rev()
        .find(|g| channels % g == 0)
        .unwrap_or(1)
}

/// One normalisation layer; GroupNorm is tch's as it is (PyTorch's `nn.GroupNorm` defaults:
/// γ = 1, β = 0, eps 1e-5, affine).
#[derive(Debug)]
pub(crate) enum NormModule {
    Batch(Bn),
    Group(nn::GroupNorm),
}

impl NormModule {
    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            NormModule::Batch(bn) => bn.forward(xs, train),
            NormModule::Group(gn) => xs.apply(gn),
        }
    }

    pub(crate) fn op(&self) -> Op {
        match self {
            NormModule::Batch(bn) => bn.op(),
            NormModule::Group(gn) => Op::GroupNorm2d {
                channels: gn.num_channels,
                groups: gn.num_groups,
            },
        }
    }
}

/// BatchNorm with PyTorch's conventions: γ = 1, β = 0, eps 1e-5, momentum 0.1 (tch's default
/// γ init is U(0, 1), which PyTorch users would not expect).
#[derive(Debug)]
pub(crate) struct Bn {
    bn: nn::BatchNorm,
    eps: f64,
    op: Op,
}

thread_local! {
    /// The momentum of a running-statistics update in progress ([`crate::BnReestimate`]):
    /// while set, every BatchNorm layer normalises with its batch's statistics and folds them
    /// into its running ones at this momentum, whatever `train` says (dropout stays off).
    static REESTIMATE_MOMENTUM: std::cell::Cell<Option<f64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every BatchNorm layer of this thread updating its running statistics at
/// `momentum` (restored afterwards, also when `f` fails).
pub(crate) fn with_reestimate_momentum<R>(momentum: f64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<f64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            REESTIMATE_MOMENTUM.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(REESTIMATE_MOMENTUM.with(|m| m.replace(Some(momentum))));
    f()
}

impl Bn {
    pub(crate) fn new(vs: nn::Path, channels: i64) -> Bn {
        Bn::with(vs, channels, 1e-5, 0.1)
    }

    /// Other `eps` and `momentum` (MobileNetV3: 1e-3 and 0.01).
    pub(crate) fn with(vs: nn::Path, channels: i64, eps: f64, momentum: f64) -> Bn {
        let cfg = nn::BatchNormConfig {
            eps,
            momentum,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        Bn {
            bn: nn::batch_norm2d(vs, channels, cfg),
            eps,
            op: Op::BatchNorm2d { channels },
        }
    }

    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        match REESTIMATE_MOMENTUM.with(std::cell::Cell::get) {
            None => xs.apply_t(&self.bn, train),
            Some(momentum) => Tensor::batch_norm(
                xs,
                self.bn.ws.as_ref(),
                self.bn.bs.as_ref(),
                Some(&self.bn.running_mean),
                Some(&self.bn.running_var),
                true,
                momentum,
                self.eps,
                true,
            ),
        }
    }

    pub(crate) fn op(&self) -> Op {
        self.op
    }
}

#[cfg(test)]
mod tests {
    use super::groups_for;

    #[test]
    fn groups_are_the_largest_divisor_not_above_the_maximum() {
        assert_eq!(groups_for(16, 8), 8);
        assert_eq!(groups_for(128, 8), 8);
        assert_eq!(groups_for(24, 16), 12);
        assert_eq!(groups_for(12, 8), 6);
        assert_eq!(groups_for(7, 8), 7);
        assert_eq!(groups_for(7, 4), 1);
        assert_eq!(groups_for(16, 1), 1);
        assert_eq!(groups_for(16, 1024), 16);
    }
}
