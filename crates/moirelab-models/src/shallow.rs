//! The shallow CNN: `depth` conv blocks (3×3 conv → [BN] → ReLU → 2×2 max-pool, widths
//! w, 2w, 4w, …) → global average pool → [dropout] → linear. Its last block is the default CAM
//! layer; with GAP→linear the Grad-CAM map equals the class activation map (Zhou et al. 2016).

use crate::{check_input, ForwardOut, ModelConfig, ModelError};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug)]
struct Block {
    conv: nn::Conv2D,
    bn: Option<nn::BatchNorm>,
}

/// See the module docs. Layer names: `conv1` … `conv<depth>` (block outputs after pooling).
#[derive(Debug)]
pub struct Shallow {
    cfg: ModelConfig,
    blocks: Vec<Block>,
    fc: nn::Linear,
}

impl Shallow {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        let mut blocks = Vec::new();
        let mut c_in = cfg.in_channels;
        let mut c_out = cfg.width;
        for i in 1..=cfg.depth {
            let name = format!("conv{i}");
            let conv_cfg = nn::ConvConfig {
                padding: 1,
                bias: !cfg.batch_norm,
                ws_init: nn::Init::Kaiming {
                    dist: nn::init::NormalOrUniform::Normal,
                    fan: nn::init::FanInOut::FanOut,
                    non_linearity: nn::init::NonLinearity::ReLU,
                },
                ..Default::default()
            };
            let conv = nn::conv2d(vs / &name / "conv", c_in, c_out, 3, conv_cfg);
            let bn = cfg
                .batch_norm
                .then(|| nn::batch_norm2d(vs / &name / "bn", c_out, Default::default()));
            blocks.push(Block { conv, bn });
            c_in = c_out;
            c_out *= 2;
        }
        let fc = nn::linear(vs / "fc", c_in, cfg.classes, Default::default());
        Ok(Shallow {
            cfg: cfg.clone(),
            blocks,
            fc,
        })
    }

    fn block(&self, i: usize, xs: &Tensor, train: bool) -> Tensor {
        let b = &self.blocks[i];
        let mut ys = xs.apply(&b.conv);
        if let Some(bn) = &b.bn {
            ys = ys.apply_t(bn, train);
        }
        ys.relu().max_pool2d_default(2)
    }

    fn head(&self, xs: &Tensor, train: bool) -> Tensor {
        // [N, C, h, w] -> [N, C]
        let pooled = xs.mean_dim(&[2i64, 3][..], false, tch::Kind::Float);
        pooled
            .dropout(self.cfg.dropout, train)
            .apply_t(&self.fc, train)
    }

    fn layer_index(&self, name: &str) -> Result<usize, ModelError> {
        name.strip_prefix("conv")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n >= 1 && n <= self.blocks.len())
            .map(|n| n - 1)
            .ok_or_else(|| ModelError::UnknownLayer {
                name: name.to_string(),
                arch: "shallow".into(),
                valid: crate::CamNet::cam_layers(self),
            })
    }
}

impl crate::CamNet for Shallow {
    fn forward_with(
        &self,
        xs: &Tensor,
        train: bool,
        layers: &[&str],
    ) -> Result<ForwardOut, ModelError> {
        check_input(xs, self.cfg.in_channels, 1 << self.blocks.len())?;
        let wanted: Vec<usize> = layers
            .iter()
            .map(|l| self.layer_index(l))
            .collect::<Result<_, _>>()?;
        let mut acts: Vec<Option<Tensor>> = (0..layers.len()).map(|_| None).collect();
        let mut ys = xs.shallow_clone();
        for i in 0..self.blocks.len() {
            ys = self.block(i, &ys, train);
            for (slot, &w) in acts.iter_mut().zip(&wanted) {
                if w == i {
                    *slot = Some(ys.shallow_clone());
                }
            }
        }
        let logits = self.head(&ys, train);
        Ok(ForwardOut {
            logits,
            activations: acts
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Tensor::new()))
                .collect(),
        })
    }

    fn forward_from(&self, layer: &str, act: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        let start = self.layer_index(layer)?;
        let mut ys = act.shallow_clone();
        for i in start + 1..self.blocks.len() {
            ys = self.block(i, &ys, train);
        }
        Ok(self.head(&ys, train))
    }

    fn cam_layers(&self) -> Vec<String> {
        (1..=self.blocks.len())
            .map(|i| format!("conv{i}"))
            .collect()
    }

    fn default_cam_layer(&self) -> String {
        format!("conv{}", self.blocks.len())
    }

    fn config(&self) -> &ModelConfig {
        &self.cfg
    }
}
