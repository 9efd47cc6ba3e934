use crate::ModelError;
use serde::{Deserialize, Serialize};

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// `depth` conv blocks + global average pool + linear: the "very shallow network".
    Shallow,
    /// VGG-style stages of 3×3 convs, each stage ending in a 2×2 max-pool; GAP → linear head.
    Vgg,
    /// ResNet-18-style: 7×7 stem, stages of basic blocks (two 3×3 convs + shortcut).
    Resnet,
    /// MobileNetV2-style inverted residuals (1×1 expand → 3×3 depthwise → 1×1 project).
    Mobilenet,
}

impl Arch {
    pub const ALL: &'static [Arch] = &[Arch::Shallow, Arch::Vgg, Arch::Resnet, Arch::Mobilenet];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Shallow => "shallow",
            Arch::Vgg => "vgg",
            Arch::Resnet => "resnet",
            Arch::Mobilenet => "mobilenet",
        }
    }

    /// Valid `depth` range (shallow: conv blocks; vgg/resnet: stages; mobilenet: how many of
    /// MobileNetV2's seven inverted-residual stages are kept).
    pub fn depth_range(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Arch::Shallow | Arch::Vgg => 1..=8,
            Arch::Resnet => 1..=6,
            Arch::Mobilenet => 1..=7,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Arch {
    type Err = ModelError;

    /// Parse an arch name; an unknown one is an error listing the valid names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "unknown model.arch '{s}'; valid: {}",
                    Arch::ALL
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// Memory layout of the activations (`model.memory-format`). Only the speed changes: the
/// weights, the checkpoints and the maps are the same up to float rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// Channels-last on CPU for the architectures it speeds up (shallow, vgg, resnet:
    /// 1.3–1.8× per training step and 1.5–3× per eval forward with libtorch 2.13's oneDNN
    /// convolutions); contiguous for mobilenet (its depthwise convolutions are slower
    /// channels-last) and on CUDA (not measured there yet).
    #[default]
    Auto,
    /// NHWC strides (`torch.channels_last`) whatever the device and architecture.
    ChannelsLast,
    /// Plain NCHW strides, as PyTorch uses by default.
    Contiguous,
}

impl MemoryFormat {
    pub fn is_auto(&self) -> bool {
        *self == MemoryFormat::Auto
    }
}

/// `[model]` of the config file.
///
/// The same keys build the PyTorch twin in `scripts/moirelab_torch.py`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Channels of the first block; later blocks multiply it (shallow: w, 2w, 4w, …; vgg:
    /// w, 2w, 4w, 8w, 8w, …; resnet: stem and first stage w, then 2w, 4w, …; mobilenet: stem
    /// channels, 32 = MobileNetV2's width multiplier 1.0).
    pub width: i64,
    /// Blocks or stages (shallow: conv blocks; vgg, resnet: stages; mobilenet: inverted-
    /// residual stages kept, 7 = full MobileNetV2). See [`Arch::depth_range`].
    pub depth: i64,
    /// Dropout before the classifier (0 disables).
    pub dropout: f64,
    pub batch_norm: bool,
    pub in_channels: i64,
    /// Number of classes (normally taken from the data set).
    pub classes: i64,
    /// vgg: 3×3 convs per stage (default 2); resnet: basic blocks per stage (default 2, i.e.
    /// ResNet-18 at depth 4). Rejected for the other architectures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks_per_stage: Option<i64>,
    /// Activation memory layout; see [`MemoryFormat`].
    #[serde(skip_serializing_if = "MemoryFormat::is_auto")]
    pub memory_format: MemoryFormat,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Shallow,
            width: 16,
            depth: 3,
            dropout: 0.0,
            batch_norm: true,
            in_channels: 3,
            classes: 2,
            blocks_per_stage: None,
            memory_format: MemoryFormat::Auto,
        }
    }
}

impl ModelConfig {
    /// Range checks with messages that name the key.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if !(1..=1024).contains(&self.width) {
            return bad(format!(
                "model.width = {} is out of range 1..=1024",
                self.width
            ));
        }
        let depths = self.arch.depth_range();
        if !depths.contains(&self.depth) {
            return bad(format!(
                "model.depth = {} is out of range {}..={} for arch '{}'",
                self.depth,
                depths.start(),
                depths.end(),
                self.arch
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "model.dropout = {} is out of range [0, 1)",
                self.dropout
            ));
        }
        if !(1..=16).contains(&self.in_channels) {
            return bad(format!(
                "model.in-channels = {} is out of range 1..=16",
                self.in_channels
            ));
        }
        if !(2..=1000).contains(&self.classes) {
            return bad(format!(
                "model.classes = {} is out of range 2..=1000",
                self.classes
            ));
        }
        if let Some(b) = self.blocks_per_stage {
            match self.arch {
                Arch::Vgg | Arch::Resnet => {
                    if !(1..=8).contains(&b) {
                        return bad(format!(
                            "model.blocks-per-stage = {b} is out of range 1..=8"
                        ));
                    }
                }
                Arch::Shallow | Arch::Mobilenet => {
                    return bad(format!(
                        "model.blocks-per-stage applies to arch 'vgg' and 'resnet' only, not '{}'",
                        self.arch
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether activations on `device` run channels-last (see [`MemoryFormat`]).
    pub fn channels_last(&self, device: tch::Device) -> bool {
        match self.memory_format {
            MemoryFormat::ChannelsLast => true,
            MemoryFormat::Contiguous => false,
            MemoryFormat::Auto => device == tch::Device::Cpu && self.arch != Arch::Mobilenet,
        }
    }

    /// `blocks-per-stage` with its default of 2.
    pub(crate) fn blocks(&self) -> i64 {
        self.blocks_per_stage.unwrap_or(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_arch_lists_valid_ones() {
        let err = "densenet".parse::<Arch>().unwrap_err().to_string();
        assert_eq!(
            err,
            "model config: unknown model.arch 'densenet'; valid: shallow, vgg, resnet, mobilenet"
        );
    }

    #[test]
    fn depth_range_depends_on_arch() {
        let cfg = ModelConfig {
            arch: Arch::Mobilenet,
            depth: 8,
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("model.depth = 8 is out of range 1..=7 for arch 'mobilenet'"),
            "{err}"
        );
        let cfg = ModelConfig {
            arch: Arch::Vgg,
            depth: 8,
            ..Default::default()
        };
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn blocks_per_stage_is_rejected_where_it_means_nothing() {
        let cfg = ModelConfig {
            blocks_per_stage: Some(3),
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("applies to arch 'vgg' and 'resnet' only, not 'shallow'"),
            "{err}"
        );
        let cfg = ModelConfig {
            arch: Arch::Resnet,
            blocks_per_stage: Some(0),
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("model.blocks-per-stage = 0"), "{err}");
    }

    #[test]
    fn other_keys_name_themselves_in_errors() {
        for (cfg, key) in [
            (
                ModelConfig {
                    width: 0,
                    ..Default::default()
                },
                "model.width = 0",
            ),
            (
                ModelConfig {
                    dropout: 1.0,
                    ..Default::default()
                },
                "model.dropout = 1",
            ),
            (
                ModelConfig {
                    in_channels: 0,
                    ..Default::default()
                },
                "model.in-channels = 0",
            ),
            (
                ModelConfig {
                    classes: 1,
                    ..Default::default()
                },
                "model.classes = 1",
            ),
        ] {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err} should name {key}");
        }
    }
}
