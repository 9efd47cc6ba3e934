//! CNN architectures for recapture detection, built as structs of named layers so Grad-CAM can
//! reach inside them (docs/STYLE.md: no opaque `nn::seq` closures).
//!
//! This crate owns the model *definitions* (shallow, VGG-, ResNet- and MobileNetV2-style, and
//! torchvision's resnet18 and mobilenet_v3_small for ImageNet weights),
//! their configuration (`[model]` in the TOML), the list of CAM layers each one exposes,
//! model summaries (shapes, parameters, FLOPs, receptive fields), and loading a weights file
//! into a model with its names, shapes, kinds and values checked ([`load_weights`],
//! [`load_pretrained`]). It does not own training, the checkpoint format or CAM maths. Its PyTorch twin is `scripts/parity/moirelab_torch.py`: same parameter
//! names (checkpoints load with `strict=True`), and CAM layer names are module paths there.
//!
//! Every model implements [`CamNet`]: one forward pass returns the logits and the activations
//! of any requested named layers, so Grad-CAM needs no hooks.

mod adapt;
mod config;
mod layers;
mod mobilenet;
mod mobilenet_v3;
mod norm;
mod pretrained;
mod resnet;
mod shallow;
mod summary;
mod vgg;
mod weights;

pub use adapt::{batch_norm_layers, BnAdapt, BnReestimate, BnSnapshot};
pub use config::{
    Arch, InputFilter, MemoryFormat, ModelConfig, Norm, Normalize, DEFAULT_NORM_GROUPS,
    IMAGENET_MEAN, IMAGENET_STD, LOADER_MEAN, LOADER_STD,
};
pub use layers::{to_channels_last, Architecture, LayerSpec, Op};
pub use mobilenet::MobileNet;
pub use mobilenet_v3::MobileNetV3Small;
pub use norm::NormLayer;
pub use pretrained::{apply_freeze, freeze_prefixes, load_pretrained, InitReport};
pub use resnet::ResNet;
pub use shallow::Shallow;
pub use summary::{summary, LayerSummary, ModelSummary};
pub use vgg::Vgg;
pub use weights::{load_weights, torch_error_line, without_torch_frames, WeightsError};

use tch::{nn, Tensor};

/// Errors of model construction and forward passes. Messages name the offending value and
/// list the valid ones.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown layer '{name}' for model '{arch}'; valid layers: {}", valid.join(", "))]
    UnknownLayer {
        name: String,
        arch: String,
        valid: Vec<String>,
    },
    #[error("model config: {0}")]
    Config(String),
    #[error("model summary: {0}")]
    Summary(String),
    #[error("input shape {got:?}: expected [N, {channels}, H, W] with H, W >= {min_size}")]
    Shape {
        got: Vec<i64>,
        channels: i64,
        min_size: i64,
    },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Output of [`CamNet::forward_with`].
#[derive(Debug)]
pub struct ForwardOut {
    /// `[N, classes]`
    pub logits: Tensor,
    /// Activations of the requested layers, in request order, each `[N, C, h, w]`.
    pub activations: Vec<Tensor>,
}

/// A classifier that exposes named intermediate activations.
pub trait CamNet: std::fmt::Debug + Send {
    /// Forward pass. `layers` names the activations to return (see [`CamNet::cam_layers`]);
    /// an unknown name is an error listing the valid ones.
    ///
    /// # Shapes
    /// `xs: [N, in_channels, H, W]` float → `logits: [N, classes]`.
    fn forward_with(
        &self,
        xs: &Tensor,
        train: bool,
        layers: &[&str],
    ) -> Result<ForwardOut, ModelError>;

    /// Run the network from the output of `layer` onwards (for CAM methods that perturb or
    /// re-weight activations, e.g. Score-CAM, and for frozen-parameter gradients).
    ///
    /// # Shapes
    /// `act: [N, C, h, w]` (the activation of `layer`) → `[N, classes]`.
    fn forward_from(&self, layer: &str, act: &Tensor, train: bool) -> Result<Tensor, ModelError>;

    /// Names of the layers whose activations can be requested, input to output.
    fn cam_layers(&self) -> Vec<String>;

    /// The layer Grad-CAM uses when the config names none (the last conv block).
    fn default_cam_layer(&self) -> String;

    /// The config the model was built from.
    fn config(&self) -> &ModelConfig;

    /// The model's layers as operations (for [`summary`]); `None` for models that do not
    /// describe themselves.
    fn architecture(&self) -> Option<Architecture> {
        None
    }

    /// Logits only.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        Ok(self.forward_with(xs, train, &[])?.logits)
    }
}

/// Build the model a config describes under `vs` (parameters get stable, named paths such as
/// `conv1.weight`, which are the keys of the safetensors checkpoints).
pub fn build(vs: &nn::Path, cfg: &ModelConfig) -> Result<Box<dyn CamNet>, ModelError> {
    cfg.validate()?;
    Ok(match cfg.arch {
        Arch::Shallow => Box::new(Shallow::new(vs, cfg)?),
        Arch::Vgg => Box::new(Vgg::new(vs, cfg)?),
        Arch::Resnet | Arch::Resnet18 => Box::new(ResNet::new(vs, cfg)?),
        Arch::Mobilenet => Box::new(MobileNet::new(vs, cfg)?),
        Arch::MobilenetV3Small => Box::new(MobileNetV3Small::new(vs, cfg)?),
    })
}

/// Check a requested layer list against a model's CAM layers.
pub fn check_layers(net: &dyn CamNet, layers: &[&str]) -> Result<(), ModelError> {
    let valid = net.cam_layers();
    for l in layers {
        if !valid.iter().any(|v| v == l) {
            return Err(ModelError::UnknownLayer {
                name: (*l).to_string(),
                arch: net.config().arch.as_str().to_string(),
                valid,
            });
        }
    }
    Ok(())
}

/// Validate the input shape of a forward pass.
pub(crate) fn check_input(xs: &Tensor, channels: i64, min_size: i64) -> Result<(), ModelError> {
    let size = xs.size();
    if size.len() != 4 || size[1] != channels || size[2] < min_size || size[3] < min_size {
        return Err(ModelError::Shape {
            got: size,
            channels,
            min_size,
        });
    }
    Ok(())
}
