//! VGG-style network (Simonyan & Zisserman 2015): `depth` stages of `blocks-per-stage` 3×3
//! conv units (conv → [BN] → ReLU), each stage closed by a 2×2 max-pool. Widths w, 2w, 4w,
//! 8w, then capped at 8w as VGG caps at 512 = 8·64. The three 4096-wide FC layers of the
//! original are replaced by GAP → [dropout] → linear: at two classes they would only add
//! parameters, and a GAP head keeps Grad-CAM equal to CAM (Zhou et al. 2016).
//!
//! CAM layers: `stage<s>.conv<i>` (conv unit outputs, full resolution of the stage) and
//! `stage<s>` (the pooled stage output). Default: the last stage output.

use crate::layers::{impl_camnet, Act, ConvArgs, ConvBnAct, Head, Node, Op, Sequence};
use crate::{Arch, ModelConfig, ModelError};
use tch::{nn, Tensor};

#[derive(Debug)]
struct Unit(ConvBnAct);

impl Node for Unit {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward(xs, train)
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        (self.0.ops(), vec![])
    }
}

/// The max-pool that closes a stage; its output is the stage output.
#[derive(Debug)]
struct Pool;

impl Node for Pool {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        xs.max_pool2d_default(2)
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        (
            vec![Op::MaxPool2d {
                kernel: 2,
                stride: 2,
                padding: 0,
            }],
            vec![],
        )
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Vgg {
    seq: Sequence,
    default_layer: String,
}

impl Vgg {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        if cfg.arch != Arch::Vgg {
            return Err(ModelError::Config(format!(
                "Vgg::new called with model.arch = '{}'",
                cfg.arch
            )));
        }
        let mut nodes: Vec<(String, Box<dyn Node>)> = Vec::new();
        let mut c_in = cfg.first_layer_channels();
        for s in 1..=cfg.depth {
            let stage = format!("stage{s}");
            let c_out = cfg.width * (1i64 << (s - 1)).min(8);
            for i in 1..=cfg.blocks() {
                let p = vs / &stage / format!("conv{i}");
                let unit = ConvBnAct::new(
                    &p / "conv",
                    &p / "bn",
                    ConvArgs {
                        c_in,
                        c_out,
                        kernel: 3,
                        stride: 1,
                        groups: 1,
                    },
                    cfg.norm_layer(),
                    Act::Relu,
                );
                nodes.push((format!("{stage}.conv{i}"), Box::new(Unit(unit))));
                c_in = c_out;
            }
            nodes.push((stage, Box::new(Pool)));
        }
        let head = Head::new(vs / "fc", c_in, cfg);
        Ok(Vgg {
            seq: Sequence::new(cfg, nodes, head),
            default_layer: format!("stage{}", cfg.depth),
        })
    }
}

impl_camnet!(Vgg);
