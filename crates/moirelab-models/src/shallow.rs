//! The shallow CNN: `depth` conv blocks (3×3 conv → [BN] → ReLU → 2×2 max-pool, widths
//! w, 2w, 4w, …) → global average pool → [dropout] → linear. Its last block is the default CAM
//! layer; with GAP→linear the Grad-CAM map equals the class activation map (Zhou et al. 2016).

use crate::layers::{impl_camnet, Act, ConvArgs, ConvBnAct, Head, Node, Op, Sequence};
use crate::{Arch, ModelConfig, ModelError};
use tch::{nn, Tensor};

const POOL: Op = Op::MaxPool2d {
    kernel: 2,
    stride: 2,
    padding: 0,
};

/// conv → [BN] → ReLU → max-pool; parameters `conv<i>.conv.*`, `conv<i>.bn.*`.
#[derive(Debug)]
struct Block(ConvBnAct);

impl Node for Block {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward(xs, train).max_pool2d_default(2)
    }

    fn spec(&self) -> (Vec<Op>, Vec<Op>) {
        let mut ops = self.0.ops();
        ops.push(POOL);
        (ops, vec![])
    }
}

/// See the module docs. Layer names: `conv1` … `conv<depth>` (block outputs after pooling).
#[derive(Debug)]
pub struct Shallow {
    seq: Sequence,
    default_layer: String,
}

impl Shallow {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        if cfg.arch != Arch::Shallow {
            return Err(ModelError::Config(format!(
                "Shallow::new called with model.arch = '{}'",
                cfg.arch
            )));
        }
        let mut nodes: Vec<(String, Box<dyn Node>)> = Vec::new();
        let mut c_in = cfg.first_layer_channels();
        let mut c_out = cfg.width;
        for i in 1..=cfg.depth {
            let name = format!("conv{i}");
            let unit = ConvBnAct::new(
                vs / &name / "conv",
                vs / &name / "bn",
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
            nodes.push((name, Box::new(Block(unit))));
            c_in = c_out;
            c_out *= 2;
        }
        let head = Head::new(vs / "fc", c_in, cfg);
        let default_layer = format!("conv{}", cfg.depth);
        Ok(Shallow {
            seq: Sequence::new(cfg, nodes, head),
            default_layer,
        })
    }
}

impl_camnet!(Shallow);
