use crate::ModelError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// torchvision's `resnet18`, exactly (width, depth and blocks fixed), for ImageNet
    /// weights through `init`.
    Resnet18,
    /// torchvision's `mobilenet_v3_small`, exactly (hard-swish, squeeze-excitation, BN eps
    /// 1e-3), for ImageNet weights through `init`.
    #[serde(rename = "mobilenet_v3_small")]
    MobilenetV3Small,
}

impl Arch {
    pub const ALL: &'static [Arch] = &[
        Arch::Shallow,
        Arch::Vgg,
        Arch::Resnet,
        Arch::Mobilenet,
        Arch::Resnet18,
        Arch::MobilenetV3Small,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Shallow => "shallow",
            Arch::Vgg => "vgg",
            Arch::Resnet => "resnet",
            Arch::Mobilenet => "mobilenet",
            Arch::Resnet18 => "resnet18",
            Arch::MobilenetV3Small => "mobilenet_v3_small",
        }
    }

    /// torchvision's own architectures: `width`, `depth` and `batch-norm` do not apply, and
    /// the input is ImageNet-normalised unless `normalize` says otherwise.
    pub fn is_torchvision(self) -> bool {
        matches!(self, Arch::Resnet18 | Arch::MobilenetV3Small)
    }

    /// Prefix of the final classifier's parameters (`fc.`, `classifier.3.`, …): the layer
    /// `init` leaves freshly initialised when its shape does not fit the class count.
    pub fn classifier_prefix(self) -> &'static str {
        match self {
            Arch::Shallow | Arch::Vgg | Arch::Resnet | Arch::Resnet18 => "fc.",
            Arch::Mobilenet => "classifier.1.",
            Arch::MobilenetV3Small => "classifier.3.",
        }
    }

    /// Valid `depth` range (shallow: conv blocks; vgg/resnet: stages; mobilenet: how many of
    /// MobileNetV2's seven inverted-residual stages are kept).
    pub fn depth_range(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Arch::Shallow | Arch::Vgg => 1..=8,
            Arch::Resnet => 1..=6,
            Arch::Mobilenet => 1..=7,
            // Fixed architectures: `depth` is not read.
            Arch::Resnet18 | Arch::MobilenetV3Small => 1..=i64::MAX,
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
    /// convolutions; resnet18 is resnet); contiguous for mobilenet (its depthwise
    /// convolutions are slower channels-last) and, by the same token (unmeasured),
    /// mobilenet_v3_small; and on CUDA (not measured there yet).
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
/// The same keys build the PyTorch twin in `scripts/parity/moirelab_torch.py`.
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
    /// `false` is `norm = "none"` (the older key; kept so earlier configs and runs load).
    pub batch_norm: bool,
    /// The normalisation after each convolution; see [`Norm`].
    #[serde(skip_serializing_if = "Norm::is_batch")]
    pub norm: Norm,
    /// `norm = "group"`: the most groups a layer gets (default 8); a layer of `C` channels
    /// gets the largest divisor of `C` not above it, so 1 is LayerNorm over C, H, W and a
    /// number ≥ C InstanceNorm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub norm_groups: Option<i64>,
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
    /// Initial weights: a safetensors file of a PyTorch `state_dict` with this model's
    /// (torchvision's) parameter names. Every tensor must fit, except the final classifier,
    /// which stays freshly initialised when its shape differs (e.g. 1000 ImageNet classes).
    /// Read when a run starts, not on resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Freeze the parameters of the first layers up to and including this one (`stem`,
    /// `layer1` … for resnet/resnet18; `stem`, `features.<i>` for the mobilenets); BatchNorm
    /// statistics of frozen layers still update in training mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<String>,
    /// Input normalisation the weights expect, applied inside the model on top of the
    /// loader's: `imagenet` (torchvision's mean/std; default for resnet18 and
    /// mobilenet_v3_small) or `none` (default for the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
    /// A fixed (untrained) filter applied to the input inside the model, after the
    /// normalisation; see [`InputFilter`].
    #[serde(skip_serializing_if = "InputFilter::is_none")]
    pub input_filter: InputFilter,
}

/// `model.norm`: what follows each convolution of shallow, vgg, resnet and mobilenet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// BatchNorm: normalised with the batch's statistics in training and with running
    /// statistics (the training set's) in evaluation, so a camera whose photos have other
    /// feature statistics is read on the training photos' scale (`eval --adapt-bn` re-estimates
    /// them).
    #[default]
    Batch,
    /// GroupNorm: every image normalised with its own statistics over groups of channels
    /// (`norm-groups`), the same in training and evaluation; nothing carries the training
    /// photos' statistics, and nothing is left for `--adapt-bn` to re-estimate.
    Group,
    /// No normalisation; the convolutions get a bias.
    None,
}

impl Norm {
    pub fn is_batch(&self) -> bool {
        *self == Norm::Batch
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Norm::Batch => "batch",
            Norm::Group => "group",
            Norm::None => "none",
        })
    }
}

/// `model.norm-groups` when `norm = "group"` does not give it.
pub const DEFAULT_NORM_GROUPS: i64 = 8;

/// `model.input-filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFilter {
    /// The input as the loader gives it.
    #[default]
    None,
    /// Each channel's 4-neighbour Laplacian, `4·x − (left + right + up + down)`, with the
    /// border pixels replicated: the slowly varying content (a card's colours, the lighting,
    /// a print's tone) is suppressed and the per-pixel structure a screen's grid and the
    /// camera's sampling leave is kept (as the Laplacian layer of Yang, Ni & Zhao 2016 for
    /// recaptured images).
    Laplacian,
    /// The input's channels followed by their Laplacians (as `laplacian`), stacked: the
    /// first layer takes `2 × in-channels` channels and sees both the photo and its per-pixel
    /// structure, so the colours stay readable where the Laplacian alone hides them.
    #[serde(rename = "with-laplacian")]
    WithLaplacian,
}

impl InputFilter {
    pub fn is_none(&self) -> bool {
        *self == InputFilter::None
    }

    /// The filter's window side in pixels (1: the identity).
    pub fn window(self) -> i64 {
        match self {
            InputFilter::None => 1,
            InputFilter::Laplacian | InputFilter::WithLaplacian => 3,
        }
    }

    /// Channels the first layer takes for `in_channels` input channels.
    pub fn out_channels(self, in_channels: i64) -> i64 {
        match self {
            InputFilter::None | InputFilter::Laplacian => in_channels,
            InputFilter::WithLaplacian => 2 * in_channels,
        }
    }
}

impl std::fmt::Display for InputFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputFilter::None => "none",
            InputFilter::Laplacian => "laplacian",
            InputFilter::WithLaplacian => "with-laplacian",
        })
    }
}

/// `model.normalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// `(v / 255 − [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]` per channel.
    Imagenet,
    /// The loader's normalisation only.
    None,
}

/// torchvision's ImageNet mean, in `[0, 1]` units.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// torchvision's ImageNet standard deviation, in `[0, 1]` units.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];
/// The loader's per-channel mean and standard deviation (`moirelab_data::MEAN`/`STD`; this
/// crate does not depend on the data crate, the train crate's tests check they agree).
pub const LOADER_MEAN: [f64; 3] = [0.5, 0.5, 0.5];
pub const LOADER_STD: [f64; 3] = [0.25, 0.25, 0.25];

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Shallow,
            width: 16,
            depth: 3,
            dropout: 0.0,
            batch_norm: true,
            norm: Norm::Batch,
            norm_groups: None,
            in_channels: 3,
            classes: 2,
            blocks_per_stage: None,
            memory_format: MemoryFormat::Auto,
            init: None,
            freeze: None,
            normalize: None,
            input_filter: InputFilter::None,
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
                Arch::Shallow | Arch::Mobilenet | Arch::Resnet18 | Arch::MobilenetV3Small => {
                    return bad(format!(
                        "model.blocks-per-stage applies to arch 'vgg' and 'resnet' only, not '{}'",
                        self.arch
                    ));
                }
            }
        }
        if self.arch.is_torchvision() && self.in_channels != 3 {
            return bad(format!(
                "model.in-channels = {} but arch '{}' takes RGB (3)",
                self.in_channels, self.arch
            ));
        }
        if self.arch.is_torchvision() && self.input_filter == InputFilter::WithLaplacian {
            return bad(format!(
                "model.input-filter = \"with-laplacian\" feeds 6 channels to the first layer, \
                 but arch '{}' keeps torchvision's 3-channel stem; use \"laplacian\" or another arch",
                self.arch
            ));
        }
        self.validate_norm()?;
        if self.normalize == Some(Normalize::Imagenet) && self.in_channels != 3 {
            return bad(format!(
                "model.normalize = \"imagenet\" needs in-channels = 3, not {}",
                self.in_channels
            ));
        }
        if let Some(f) = &self.freeze {
            crate::pretrained::freeze_prefixes(self, f)?;
        }
        if self.init.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return bad("model.init is empty: give a safetensors file or remove the key".into());
        }
        Ok(())
    }

    fn validate_norm(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if !self.batch_norm && self.norm != Norm::Batch {
            return bad(format!(
                "model.batch-norm = false and model.norm = \"{}\" contradict each other; \
                 give model.norm alone (\"none\" for no normalisation)",
                self.norm
            ));
        }
        if let Some(g) = self.norm_groups {
            if self.norm != Norm::Group {
                return bad(format!(
                    "model.norm-groups = {g} applies to model.norm = \"group\" only, not \"{}\"",
                    self.norm_in_force()
                ));
            }
            if !(1..=1024).contains(&g) {
                return bad(format!("model.norm-groups = {g} is out of range 1..=1024"));
            }
        }
        if self.arch.is_torchvision() && self.norm != Norm::Batch {
            return bad(format!(
                "model.norm = \"{}\" does not apply to arch '{}', which keeps torchvision's \
                 BatchNorm layers (its weights were trained with them); use arch '{}'",
                self.norm,
                self.arch,
                if self.arch == Arch::Resnet18 {
                    "resnet"
                } else {
                    "mobilenet"
                }
            ));
        }
        Ok(())
    }

    /// The normalisation in force as `model.norm` names it (`batch-norm = false` is "none").
    pub fn norm_in_force(&self) -> Norm {
        if self.batch_norm {
            self.norm
        } else {
            Norm::None
        }
    }

    /// The normalisation in force: `norm` (with its groups), or none when the older
    /// `batch-norm = false` says so. torchvision's architectures use BatchNorm whatever this
    /// says (validation refuses another `norm` for them).
    pub fn norm_layer(&self) -> crate::NormLayer {
        match self.norm_in_force() {
            Norm::Batch => crate::NormLayer::Batch,
            Norm::Group => crate::NormLayer::Group(self.norm_groups.unwrap_or(DEFAULT_NORM_GROUPS)),
            Norm::None => crate::NormLayer::None,
        }
    }

    /// Channels the first layer takes: `in-channels`, doubled by `input-filter =
    /// "with-laplacian"`.
    pub fn first_layer_channels(&self) -> i64 {
        self.input_filter.out_channels(self.in_channels)
    }

    /// The input normalisation in force (`normalize`, else the architecture's default).
    pub fn input_normalize(&self) -> Normalize {
        self.normalize.unwrap_or(if self.arch.is_torchvision() {
            Normalize::Imagenet
        } else {
            Normalize::None
        })
    }

    /// Whether activations on `device` run channels-last (see [`MemoryFormat`]).
    pub fn channels_last(&self, device: tch::Device) -> bool {
        match self.memory_format {
            MemoryFormat::ChannelsLast => true,
            MemoryFormat::Contiguous => false,
            MemoryFormat::Auto => {
                device == tch::Device::Cpu
                    && !matches!(self.arch, Arch::Mobilenet | Arch::MobilenetV3Small)
            }
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
    use crate::NormLayer;

    #[test]
    fn unknown_arch_lists_valid_ones() {
        let err = "densenet".parse::<Arch>().unwrap_err().to_string();
        assert_eq!(
            err,
            "model config: unknown model.arch 'densenet'; valid: shallow, vgg, resnet, mobilenet, \
             resnet18, mobilenet_v3_small"
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
    fn norm_keys_give_the_layer_in_force_and_refuse_contradictions() {
        let parse = |t: &str| toml::from_str::<ModelConfig>(t).map_err(|e| e.to_string());
        let layer = |t: &str| {
            let c = parse(t).unwrap();
            c.validate()
                .map(|_| c.norm_layer())
                .map_err(|e| e.to_string())
        };
        assert_eq!(layer(""), Ok(NormLayer::Batch));
        assert_eq!(layer("batch-norm = false"), Ok(NormLayer::None));
        assert_eq!(layer("norm = \"none\""), Ok(NormLayer::None));
        assert_eq!(layer("norm = \"group\""), Ok(NormLayer::Group(8)));
        assert_eq!(
            layer("norm = \"group\"\nnorm-groups = 2"),
            Ok(NormLayer::Group(2))
        );
        let err = |t: &str| layer(t).unwrap_err();
        assert!(err("norm = \"group\"\nbatch-norm = false").contains("contradict"));
        assert!(err("norm-groups = 4").contains("model.norm-groups = 4 applies to"));
        assert!(err("norm = \"group\"\nnorm-groups = 0").contains("out of range 1..=1024"));
        assert!(err("arch = \"resnet18\"\nnorm = \"group\"").contains("use arch 'resnet'"));
        assert!(parse("norm = \"layer\"")
            .unwrap_err()
            .contains("expected one of `batch`, `group`, `none`"));
        // A batch-norm config serialises as before (no new keys), so earlier runs' configs
        // and hashes stay what they were.
        let text = toml::to_string(&ModelConfig::default()).unwrap();
        assert!(!text.lines().any(|l| l.starts_with("norm")), "{text}");
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
