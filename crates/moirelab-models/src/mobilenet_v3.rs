//! torchvision's `mobilenet_v3_small` (Howard et al. 2019), layer for layer: a 3×3/2 conv
//! stem with hard-swish, eleven inverted-residual blocks (optional 1×1 expansion, k×k
//! depthwise, optional squeeze-excitation, 1×1 linear projection, identity when shapes allow;
//! ReLU or hard-swish), a 1×1 conv to 576 channels with hard-swish, then GAP → linear 1024 →
//! hard-swish → dropout → linear. BatchNorm uses eps 1e-3 and momentum 0.01 as there.
//! `width`, `depth` and `batch-norm` do not apply; `dropout` is the classifier's (torchvision
//! uses 0.2).
//!
//! Parameter names are torchvision's (`features.<i>.block.<j>.0|1`, `….fc1|fc2`,
//! `classifier.0|3`), so its state dicts load key for key.
//!
//! CAM layers: `features.0` … `features.12` (the modules pytorch-grad-cam users hook as
//! `model.features[i]`). Default: `features.12`.

use crate::layers::{impl_camnet, Act, Conv, Head, Node, Op, Sequence};
use crate::mobilenet::make_divisible;
use crate::norm::Bn;
use crate::{Arch, ModelConfig, ModelError};
use tch::{nn, Tensor};

const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;

/// torchvision's `_mobilenet_v3_conf("mobilenet_v3_small")`: (input channels, kernel,
/// expanded channels, output channels, squeeze-excitation, hard-swish, stride).
const BLOCKS: [(i64, i64, i64, i64, bool, bool, i64); 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];
const LAST_CONV: i64 = 576;
const HIDDEN: i64 = 1024;

/// torchvision's `Conv2dNormActivation`: conv `<p>.0` (no bias), BN `<p>.1`, activation.
#[derive(Debug)]
struct ConvNormAct {
    conv: Conv,
    bn: Bn,
    act: Act,
}

impl ConvNormAct {
    fn new(
        p: &nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
        act: Act,
    ) -> Self {
        ConvNormAct {
            conv: Conv::new(p / "0", c_in, c_out, kernel, stride, groups, false),
            bn: Bn::with(p / "1", c_out, BN_EPS, BN_MOMENTUM),
            act,
        }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        self.act
            .apply(self.bn.forward(&self.conv.forward(xs), train))
    }

    fn ops(&self) -> Vec<Op> {
        vec![self.conv.op(), self.bn.op()]
    }
}

impl Node for ConvNormAct {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward(xs, train)
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        (self.ops(), vec![])
    }
}

/// torchvision's `SqueezeExcitation`: GAP → `fc1` 1×1 conv → ReLU → `fc2` 1×1 conv →
/// hard-sigmoid, scaling the input channels.
#[derive(Debug)]
struct SqueezeExcite {
    fc1: Conv,
    fc2: Conv,
}

impl SqueezeExcite {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let s = xs.mean_dim(&[2i64, 3][..], true, tch::Kind::Float);
        let s = self.fc2.forward(&self.fc1.forward(&s).relu()).hardsigmoid();
        xs * s
    }
}

#[derive(Debug)]
struct InvertedResidual {
    expand: Option<ConvNormAct>,
    depthwise: ConvNormAct,
    se: Option<SqueezeExcite>,
    project: ConvNormAct,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: &nn::Path, spec: (i64, i64, i64, i64, bool, bool, i64)) -> Self {
        let (c_in, kernel, expanded, c_out, use_se, hs, stride) = spec;
        let act = if hs { Act::Hardswish } else { Act::Relu };
        let p = p / "block";
        let mut j = 0;
        let mut next = || {
            j += 1;
            (j - 1).to_string()
        };
        let expand = (expanded != c_in)
            .then(|| ConvNormAct::new(&(&p / next()), c_in, expanded, 1, 1, 1, act));
        let depthwise = ConvNormAct::new(
            &(&p / next()),
            expanded,
            expanded,
            kernel,
            stride,
            expanded,
            act,
        );
        let se = use_se.then(|| {
            let q = &p / next();
            let squeeze = make_divisible((expanded / 4) as f64);
            SqueezeExcite {
                fc1: Conv::new(&q / "fc1", expanded, squeeze, 1, 1, 1, true),
                fc2: Conv::new(&q / "fc2", squeeze, expanded, 1, 1, 1, true),
            }
        });
        let project = ConvNormAct::new(&(&p / next()), expanded, c_out, 1, 1, 1, Act::None);
        InvertedResidual {
            expand,
            depthwise,
            se,
            project,
            residual: stride == 1 && c_in == c_out,
        }
    }
}

impl Node for InvertedResidual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = match &self.expand {
            Some(e) => e.forward(xs, train),
            None => xs.shallow_clone(),
        };
        ys = self.depthwise.forward(&ys, train);
        if let Some(se) = &self.se {
            ys = se.forward(&ys);
        }
        ys = self.project.forward(&ys, train);
        if self.residual {
            ys + xs
        } else {
            ys
        }
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        let mut ops: Vec<Op> = self.expand.iter().flat_map(|e| e.ops()).collect();
        ops.extend(self.depthwise.ops());
        ops.extend(self.project.ops());
        // The squeeze-excitation branch works on the pooled 1×1 map: listed as a side path
        // (after a global pool) it adds its parameters and FLOPs, not resolution changes.
        let side = match &self.se {
            Some(se) => vec![Op::GlobalAvgPool, se.fc1.op(), se.fc2.op()],
            None => vec![],
        };
        (ops, side)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct MobileNetV3Small {
    seq: Sequence,
    default_layer: String,
}

impl MobileNetV3Small {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        if cfg.arch != Arch::MobilenetV3Small {
            return Err(ModelError::Config(format!(
                "MobileNetV3Small::new called with model.arch = '{}'",
                cfg.arch
            )));
        }
        let features = vs / "features";
        let mut nodes: Vec<(String, Box<dyn Node>)> = vec![(
            "features.0".into(),
            Box::new(ConvNormAct::new(
                &(&features / "0"),
                cfg.in_channels,
                BLOCKS[0].0,
                3,
                2,
                1,
                Act::Hardswish,
            )),
        )];
        for spec in BLOCKS {
            let i = nodes.len();
            let block = InvertedResidual::new(&(&features / i), spec);
            nodes.push((format!("features.{i}"), Box::new(block)));
        }
        let i = nodes.len();
        let last_in = BLOCKS[BLOCKS.len() - 1].3;
        nodes.push((
            format!("features.{i}"),
            Box::new(ConvNormAct::new(
                &(&features / i),
                last_in,
                LAST_CONV,
                1,
                1,
                1,
                Act::Hardswish,
            )),
        ));
        let head = Head::mlp(&(vs / "classifier"), LAST_CONV, HIDDEN, cfg);
        Ok(MobileNetV3Small {
            seq: Sequence::new(cfg, nodes, head),
            default_layer: format!("features.{i}"),
        })
    }
}

impl_camnet!(MobileNetV3Small);
