//! ResNet-18-style network (He et al. 2016): 7×7/2 conv stem → 3×3/2 max-pool, then `depth`
//! stages of `blocks-per-stage` basic blocks (3×3 conv → [BN] → ReLU → 3×3 conv → [BN], plus
//! the identity or a 1×1 projection, → ReLU). Widths w, 2w, 4w, …; every stage but the first
//! halves the resolution in its first block. width 64, depth 4 and 2 blocks per stage is
//! ResNet-18; width 16, depth 3 is close to the CIFAR ResNets. `arch = "resnet18"` is exactly
//! that (torchvision's `resnet18`), whatever `width`, `depth` and `batch-norm` say.
//!
//! Parameter names follow torchvision (`conv1`, `bn1`, `layer<s>.<b>.conv1`, …,
//! `layer<s>.<b>.downsample.0|1`, `fc`), so its state dicts line up key for key.
//!
//! CAM layers: `maxpool` (stem output; the module pytorch-grad-cam would hook) and
//! `layer<s>.<b>` (block outputs, 0-based b as in torchvision). Default: the last block.

use crate::layers::{impl_camnet, Act, Conv, ConvArgs, ConvBnAct, Head, Node, Op, Sequence};
use crate::norm::{NormLayer, NormModule};
use crate::{Arch, ModelConfig, ModelError};
use tch::{nn, Tensor};

/// conv1 → [bn1] → ReLU → 3×3/2 max-pool.
#[derive(Debug)]
struct Stem(ConvBnAct);

const STEM_POOL: Op = Op::MaxPool2d {
    kernel: 3,
    stride: 2,
    padding: 1,
};

impl Node for Stem {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0
            .forward(xs, train)
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        let mut ops = self.0.ops();
        ops.push(STEM_POOL);
        (ops, vec![])
    }
}

#[derive(Debug)]
struct BasicBlock {
    a: ConvBnAct,
    b: ConvBnAct,
    /// 1×1 projection + [norm] when the shape changes.
    downsample: Option<(Conv, Option<NormModule>)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, norm: NormLayer) -> BasicBlock {
        let args = |c_in, stride| ConvArgs {
            c_in,
            c_out,
            kernel: 3,
            stride,
            groups: 1,
        };
        let a = ConvBnAct::new(p / "conv1", p / "bn1", args(c_in, stride), norm, Act::Relu);
        // No activation yet: the ReLU comes after the residual sum.
        let b = ConvBnAct::new(p / "conv2", p / "bn2", args(c_out, 1), norm, Act::None);
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = p / "downsample";
            (
                Conv::new(&d / "0", c_in, c_out, 1, stride, 1, norm.conv_bias()),
                norm.build(&d / "1", c_out),
            )
        });
        BasicBlock { a, b, downsample }
    }
}

impl Node for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = self.b.forward(&self.a.forward(xs, train), train);
        let skip = match &self.downsample {
            None => xs.shallow_clone(),
            Some((conv, bn)) => {
                let s = conv.forward(xs);
                match bn {
                    Some(bn) => bn.forward(&s, train),
                    None => s,
                }
            }
        };
        (ys + skip).relu()
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        let mut ops = self.a.ops();
        ops.extend(self.b.ops());
        let shortcut = match &self.downsample {
            None => vec![],
            Some((conv, bn)) => {
                let mut s = vec![conv.op()];
                s.extend(bn.as_ref().map(|b| b.op()));
                s
            }
        };
        (ops, shortcut)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct ResNet {
    seq: Sequence,
    default_layer: String,
}

impl ResNet {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        // resnet18 is torchvision's: width 64, four stages of two blocks, BatchNorm.
        let (width, depth, blocks, norm) = match cfg.arch {
            Arch::Resnet => (cfg.width, cfg.depth, cfg.blocks(), cfg.norm_layer()),
            Arch::Resnet18 => (64, 4, 2, NormLayer::Batch),
            other => {
                return Err(ModelError::Config(format!(
                    "ResNet::new called with model.arch = '{other}'"
                )))
            }
        };
        let stem = ConvBnAct::new(
            vs / "conv1",
            vs / "bn1",
            ConvArgs {
                c_in: cfg.first_layer_channels(),
                c_out: width,
                kernel: 7,
                stride: 2,
                groups: 1,
            },
            norm,
            Act::Relu,
        );
        let mut nodes: Vec<(String, Box<dyn Node>)> =
            vec![("maxpool".to_string(), Box::new(Stem(stem)))];
        let mut c_in = width;
        for s in 1..=depth {
            let c_out = width << (s - 1);
            for b in 0..blocks {
                let name = format!("layer{s}.{b}");
                let stride = if b == 0 && s > 1 { 2 } else { 1 };
                let p = vs / format!("layer{s}") / b.to_string();
                nodes.push((
                    name,
                    Box::new(BasicBlock::new(&p, c_in, c_out, stride, norm)),
                ));
                c_in = c_out;
            }
        }
        let head = Head::new(vs / "fc", c_in, cfg);
        let default_layer = format!("layer{depth}.{}", blocks - 1);
        Ok(ResNet {
            seq: Sequence::new(cfg, nodes, head),
            default_layer,
        })
    }
}

impl_camnet!(ResNet);
