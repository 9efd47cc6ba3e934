//! Model summary: per CAM layer the output shape, parameters, FLOPs, receptive field and
//! stride, plus totals — what `moirelab model summary` prints.
//!
//! FLOPs are 2 × multiply-accumulates of the convolutions and linear layers for ONE image;
//! BatchNorm, activations, pooling and residual adds are not counted (they are a few percent
//! and fold into the convs at inference). Receptive fields use the usual recurrence
//! r ← r + (k − 1)·j, j ← j·s along the main path (Araujo et al. 2019, "Computing Receptive
//! Fields of Convolutional Neural Networks"); the stride j bounds a CAM's resolution: a heatmap
//! from a layer of stride j has one value per j×j input pixels.

use crate::{Arch, CamNet, InputFilter, ModelError};
use serde::Serialize;
use std::fmt;
use tch::nn;

/// One row of a [`ModelSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSummary {
    /// CAM layer name, or `head` for global pool + classifier.
    pub name: String,
    /// `[C, H, W]` of one image.
    pub output: [i64; 3],
    /// Trainable parameters of this layer alone.
    pub params: i64,
    /// 2 × multiply-accumulates of this layer for one image.
    pub flops: i64,
    /// Side (px) of the input square one output unit sees; `None` for the head (whole image).
    pub receptive_field: Option<i64>,
    /// Input pixels per output pixel along each axis; `None` for the head.
    pub stride: Option<i64>,
}

/// Summary of a model at one input size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelSummary {
    pub arch: Arch,
    /// `[C, H, W]`
    pub input: [i64; 3],
    /// `model.input-filter`: a fixed filter in front of the first layer; it widens every
    /// receptive field by its window and has no parameters.
    pub input_filter: InputFilter,
    /// The CAM layers, input to output, then `head`.
    pub layers: Vec<LayerSummary>,
    /// Trainable parameters (the sum of the rows; checked against the VarStore).
    pub params: i64,
    /// Non-trainable tensors in the VarStore (BatchNorm running statistics).
    pub buffers: i64,
    /// Total FLOPs (2 × MACs) for one image.
    pub flops: i64,
    pub default_cam_layer: String,
}

/// Summarise `net` (built under `vs`) for one `[C, H, W]` input.
///
/// Errors: the input's channels differ from the model's or it is too small for every layer
/// to have an output ([`ModelError::Shape`]); the model does not describe its layers, or
/// the layer specs do not account for exactly the VarStore's trainable parameters (the net
/// was built under another VarStore) ([`ModelError::Summary`]).
pub fn summary(
    net: &dyn CamNet,
    vs: &nn::VarStore,
    input: [i64; 3],
) -> Result<ModelSummary, ModelError> {
    let cfg = net.config();
    let arch = net.architecture().ok_or_else(|| {
        ModelError::Summary(format!("model '{}' does not describe its layers", cfg.arch))
    })?;
    // The input filter keeps the size; `with-laplacian` doubles the channels.
    let first = cfg.first_layer_channels();
    let min_size = arch.min_input_size(first);
    if input[0] != cfg.in_channels || input[1] < min_size || input[2] < min_size {
        return Err(ModelError::Shape {
            got: vec![1, input[0], input[1], input[2]],
            channels: cfg.in_channels,
            min_size,
        });
    }
    let mut shape = [first, input[1], input[2]];
    let (mut rf, mut jump) = (cfg.input_filter.window(), 1i64);
    let mut layers = Vec::with_capacity(arch.layers.len() + 1);
    for spec in &arch.layers {
        let block_in = shape;
        let (mut params, mut macs) = (0, 0);
        for op in &spec.ops {
            params += op.params();
            macs += op.macs(shape);
            let (k, s) = op.window();
            rf += (k - 1) * jump;
            jump *= s;
            shape = op.output(shape);
        }
        let mut side = block_in;
        for op in &spec.shortcut {
            params += op.params();
            macs += op.macs(side);
            side = op.output(side);
        }
        layers.push(LayerSummary {
            name: spec.name.clone(),
            output: shape,
            params,
            flops: 2 * macs,
            receptive_field: Some(rf),
            stride: Some(jump),
        });
    }
    let (mut params, mut macs) = (0, 0);
    for op in &arch.head {
        params += op.params();
        macs += op.macs(shape);
        shape = op.output(shape);
    }
    layers.push(LayerSummary {
        name: "head".into(),
        output: shape,
        params,
        flops: 2 * macs,
        receptive_field: None,
        stride: None,
    });

    let params: i64 = layers.iter().map(|l| l.params).sum();
    let trainable: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    let all: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
    if params != trainable {
        return Err(ModelError::Summary(format!(
            "the layers of model '{}' hold {params} parameters but the VarStore holds \
             {trainable} trainable ones; was the model built under this VarStore?",
            cfg.arch
        )));
    }
    Ok(ModelSummary {
        arch: cfg.arch,
        input,
        input_filter: cfg.input_filter,
        flops: layers.iter().map(|l| l.flops).sum(),
        layers,
        params,
        buffers: all - trainable,
        default_cam_layer: net.default_cam_layer(),
    })
}

/// `12,345,678`
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<_> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(String::from_utf8_lossy)
        .collect();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", groups.join(","))
}

/// `1.23 G`, `456.7 M`, `12.0 k`, `999`
fn short(n: i64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        n.to_string()
    }
}

impl fmt::Display for ModelSummary {
    /// An aligned text table, one row per CAM layer plus the head, then totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.input;
        write!(f, "model {}, input {c}×{h}×{w}", self.arch)?;
        if !self.input_filter.is_none() {
            let k = self.input_filter.window();
            write!(f, ", input filter {} ({k}×{k}, fixed", self.input_filter)?;
            let first = self.input_filter.out_channels(c);
            if first != c {
                write!(f, "; {first} channels into the first layer")?;
            }
            write!(f, ")")?;
        }
        writeln!(f)?;
        let header = ["layer", "output", "params", "FLOPs", "RF", "stride"];
        let rows: Vec<[String; 6]> = self
            .layers
            .iter()
            .map(|l| {
                let [c, h, w] = l.output;
                let dash = || "-".to_string();
                [
                    if l.name == self.default_cam_layer {
                        format!("{} *", l.name)
                    } else {
                        l.name.clone()
                    },
                    format!("{c}×{h}×{w}"),
                    grouped(l.params),
                    short(l.flops),
                    l.receptive_field.map_or_else(dash, |r| r.to_string()),
                    l.stride.map_or_else(dash, |s| s.to_string()),
                ]
            })
            .collect();
        let mut widths = header.map(|s| s.chars().count());
        for row in &rows {
            for (wd, cell) in widths.iter_mut().zip(row) {
                *wd = (*wd).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 6]| -> fmt::Result {
            let mut s = String::new();
            for (i, (cell, wd)) in cells.iter().zip(widths).enumerate() {
                let pad = " ".repeat(wd - cell.chars().count());
                // Name left-aligned, numbers right-aligned.
                if i == 0 {
                    s.push_str(cell);
                    s.push_str(&pad);
                } else {
                    s.push_str("  ");
                    s.push_str(&pad);
                    s.push_str(cell);
                }
            }
            writeln!(f, "{}", s.trim_end())
        };
        line(f, header)?;
        let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        writeln!(f, "{}", "─".repeat(total))?;
        for row in &rows {
            line(f, row.each_ref().map(|s| s.as_str()))?;
        }
        writeln!(f, "{}", "─".repeat(total))?;
        writeln!(
            f,
            "parameters: {} trainable, {} buffers (BatchNorm running statistics)",
            grouped(self.params),
            grouped(self.buffers)
        )?;
        writeln!(
            f,
            "FLOPs: {} per image (2 × multiply-accumulates of conv and linear layers)",
            short(self.flops)
        )?;
        write!(
            f,
            "* default CAM layer; RF = receptive field (px), stride = input px per output px"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{grouped, short};

    #[test]
    fn numbers_are_grouped_and_shortened() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(11_689_512), "11,689,512");
        assert_eq!(grouped(-12_345), "-12,345");
        assert_eq!(short(999), "999");
        assert_eq!(short(12_345), "12.3 k");
        assert_eq!(short(3_630_000_000), "3.63 G");
    }
}
