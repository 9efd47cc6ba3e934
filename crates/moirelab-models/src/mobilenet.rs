//! MobileNetV2-style network (Sandler et al. 2018): 3×3/2 conv stem, inverted residual blocks
//! (1×1 expand → [BN] → ReLU6 → 3×3 depthwise → [BN] → ReLU6 → 1×1 linear projection → [BN],
//! plus the identity when shapes allow), a final 1×1 conv → ReLU6, then GAP → [dropout] →
//! linear. `width` is the stem's channel count: 32 is the paper's width multiplier 1.0 and
//! every channel count scales with width / 32 (rounded to multiples of 8, as in torchvision).
//! `depth` keeps the first `depth` of the paper's seven stages (7 = full MobileNetV2).
//!
//! Parameter names follow torchvision (`features.<i>.…`, `classifier.1`).
//!
//! CAM layers: `features.0` … `features.<last>` (every block output, the module
//! pytorch-grad-cam users hook as `model.features[i]`). Default: the final 1×1 conv block.

use crate::layers::{impl_camnet, Act, ConvArgs, ConvBnAct, Head, Node, Op, Sequence};
use crate::norm::NormLayer;
use crate::{Arch, ModelConfig, ModelError};
use tch::{nn, Tensor};

/// (expansion t, channels c at width multiplier 1, repeats n, stride s of the first repeat):
/// table 2 of the paper.
const STAGES: [(i64, i64, i64, i64); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Round a scaled channel count to a multiple of 8, never more than 10 % below the exact value
/// (torchvision's `_make_divisible`; the Python twin uses the same rule).
pub(crate) fn make_divisible(v: f64) -> i64 {
    let d = 8i64;
    // `as` truncates toward zero like Python's int() for these positive values.
    let mut n = (((v + (d / 2) as f64) as i64) / d * d).max(d);
    if (n as f64) < 0.9 * v {
        n += d;
    }
    n
}

/// torchvision's `Conv2dNormActivation`: parameters `<p>.0` (conv) and `<p>.1` (the norm).
fn conv_norm_act(p: &nn::Path, a: ConvArgs, norm: NormLayer) -> ConvBnAct {
    ConvBnAct::new(p / "0", p / "1", a, norm, Act::Relu6)
}

#[derive(Debug)]
struct ConvBlock(ConvBnAct);

impl Node for ConvBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward(xs, train)
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        (self.0.ops(), vec![])
    }
}

#[derive(Debug)]
struct InvertedResidual {
    units: Vec<ConvBnAct>,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, expand: i64, norm: NormLayer) -> Self {
        let hidden = c_in * expand;
        let p = p / "conv";
        let mut units = Vec::new();
        let mut i = 0;
        let mut next = || {
            i += 1;
            (i - 1).to_string()
        };
        if expand != 1 {
            let a = ConvArgs {
                c_in,
                c_out: hidden,
                kernel: 1,
                stride: 1,
                groups: 1,
            };
            units.push(conv_norm_act(&(&p / next()), a, norm));
        }
        let dw = ConvArgs {
            c_in: hidden,
            c_out: hidden,
            kernel: 3,
            stride,
            groups: hidden,
        };
        units.push(conv_norm_act(&(&p / next()), dw, norm));
        // The linear bottleneck: conv and BN are siblings (`conv.<k>`, `conv.<k+1>`), and no
        // activation follows (section 3.2 of the paper).
        let conv_path = &p / next();
        let bn_path = &p / next();
        let pw = ConvArgs {
            c_in: hidden,
            c_out,
            kernel: 1,
            stride: 1,
            groups: 1,
        };
        units.push(ConvBnAct::new(conv_path, bn_path, pw, norm, Act::None));
        InvertedResidual {
            units,
            residual: stride == 1 && c_in == c_out,
        }
    }
}

impl Node for InvertedResidual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.shallow_clone();
        for u in &self.units {
            ys = u.forward(&ys, train);
        }
        if self.residual {
            xs + ys
        } else {
            ys
        }
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        (self.units.iter().flat_map(|u| u.ops()).collect(), vec![])
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct MobileNet {
    seq: Sequence,
    default_layer: String,
}

impl MobileNet {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        if cfg.arch != Arch::Mobilenet {
            return Err(ModelError::Config(format!(
                "MobileNet::new called with model.arch = '{}'",
                cfg.arch
            )));
        }
        let alpha = cfg.width as f64 / 32.0;
        let features = vs / "features";
        let mut c_in = make_divisible(32.0 * alpha);
        let last = make_divisible(1280.0 * alpha.max(1.0));
        let stem = ConvArgs {
            c_in: cfg.first_layer_channels(),
            c_out: c_in,
            kernel: 3,
            stride: 2,
            groups: 1,
        };
        let mut nodes: Vec<(String, Box<dyn Node>)> = vec![(
            "features.0".into(),
            Box::new(ConvBlock(conv_norm_act(
                &(&features / "0"),
                stem,
                cfg.norm_layer(),
            ))),
        )];
        for &(t, c, n, s) in &STAGES[..cfg.depth as usize] {
            let c_out = make_divisible(c as f64 * alpha);
            for r in 0..n {
                let i = nodes.len();
                let stride = if r == 0 { s } else { 1 };
                let block = InvertedResidual::new(
                    &(&features / i),
                    c_in,
                    c_out,
                    stride,
                    t,
                    cfg.norm_layer(),
                );
                nodes.push((format!("features.{i}"), Box::new(block)));
                c_in = c_out;
            }
        }
        let i = nodes.len();
        let final_conv = ConvArgs {
            c_in,
            c_out: last,
            kernel: 1,
            stride: 1,
            groups: 1,
        };
        nodes.push((
            format!("features.{i}"),
            Box::new(ConvBlock(conv_norm_act(
                &(&features / i),
                final_conv,
                cfg.norm_layer(),
            ))),
        ));
        let head = Head::new(vs / "classifier" / "1", last, cfg);
        Ok(MobileNet {
            seq: Sequence::new(cfg, nodes, head),
            default_layer: format!("features.{i}"),
        })
    }
}

impl_camnet!(MobileNet);

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn make_divisible_matches_torchvision() {
        // Values from torchvision's _make_divisible.
        assert_eq!(make_divisible(32.0), 32);
        assert_eq!(make_divisible(16.0 * 0.5), 8);
        assert_eq!(make_divisible(24.0 * 0.5), 16);
        assert_eq!(make_divisible(1280.0), 1280);
        assert_eq!(make_divisible(32.0 * 0.35), 16);
        assert_eq!(make_divisible(96.0 * 0.75), 72);
        assert_eq!(make_divisible(3.0), 8);
    }
}
