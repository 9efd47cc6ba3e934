//! Building blocks shared by the architectures: conv units, the flat sequence of named nodes
//! every model is (so activations and `forward_from` work the same way everywhere), the
//! classifier head, and the per-layer specs that [`crate::summary`] turns into numbers.

use crate::norm::{NormLayer, NormModule};
use crate::{check_input, Arch, ForwardOut, ModelConfig, ModelError};
use serde::Serialize;
use tch::{nn, Device, Tensor};

/// One primitive operation, as far as shapes, parameters, FLOPs and receptive fields go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Square kernel, symmetric zero padding.
    Conv2d {
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        groups: i64,
        bias: bool,
    },
    /// Affine BatchNorm: 2·C trainable parameters and 2·C running statistics.
    BatchNorm2d {
        channels: i64,
    },
    /// Affine GroupNorm: 2·C trainable parameters, no running statistics.
    GroupNorm2d {
        channels: i64,
        groups: i64,
    },
    /// Max-pool, floor mode.
    MaxPool2d {
        kernel: i64,
        stride: i64,
        padding: i64,
    },
    /// Global average pool over H, W.
    GlobalAvgPool,
    Linear {
        c_in: i64,
        c_out: i64,
    },
}

impl Op {
    /// Trainable parameters.
    pub fn params(&self) -> i64 {
        match *self {
            Op::Conv2d {
                c_in,
                c_out,
                kernel,
                groups,
                bias,
                ..
            } => c_out * (c_in / groups) * kernel * kernel + if bias { c_out } else { 0 },
            Op::BatchNorm2d { channels } | Op::GroupNorm2d { channels, .. } => 2 * channels,
            Op::Linear { c_in, c_out } => c_in * c_out + c_out,
            Op::MaxPool2d { .. } | Op::GlobalAvgPool => 0,
        }
    }

    /// Output `[C, H, W]` for input `[C, H, W]` (`Linear` and `GlobalAvgPool` give `[C, 1, 1]`).
    pub fn output(&self, [c, h, w]: [i64; 3]) -> [i64; 3] {
        let out = |n: i64, k: i64, s: i64, p: i64| (n + 2 * p - k).div_euclid(s) + 1;
        match *self {
            Op::Conv2d {
                c_out,
                kernel,
                stride,
                padding,
                ..
            } => [
                c_out,
                out(h, kernel, stride, padding),
                out(w, kernel, stride, padding),
            ],
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            } => [
                c,
                out(h, kernel, stride, padding),
                out(w, kernel, stride, padding),
            ],
            Op::BatchNorm2d { .. } | Op::GroupNorm2d { .. } => [c, h, w],
            Op::GlobalAvgPool => [c, 1, 1],
            Op::Linear { c_out, .. } => [c_out, 1, 1],
        }
    }

    /// Multiply-accumulates of one image (conv and linear only; BN, activations, pooling
    /// and residual adds are not counted, as in fvcore and thop).
    pub fn macs(&self, input: [i64; 3]) -> i64 {
        let [_, h, w] = self.output(input);
        match *self {
            Op::Conv2d {
                c_in,
                c_out,
                kernel,
                groups,
                ..
            } => c_out * h * w * (c_in / groups) * kernel * kernel,
            Op::Linear { c_in, c_out } => c_in * c_out,
            _ => 0,
        }
    }

    /// (kernel, stride) as seen by the receptive-field recurrence; identity for the rest.
    pub(crate) fn window(&self) -> (i64, i64) {
        match *self {
            Op::Conv2d { kernel, stride, .. } | Op::MaxPool2d { kernel, stride, .. } => {
                (kernel, stride)
            }
            _ => (1, 1),
        }
    }
}

/// The operations of one named layer (a CAM layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSpec {
    /// CAM layer name.
    pub name: String,
    /// Main path, in order; it sets the output shape and the receptive field.
    pub ops: Vec<Op>,
    /// Shortcut path of a residual block (its receptive field is never larger than the main
    /// path's, so it only adds parameters and FLOPs).
    pub shortcut: Vec<Op>,
}

/// Everything [`crate::summary`] needs about a model's structure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Architecture {
    pub layers: Vec<LayerSpec>,
    /// Operations after the last CAM layer (global average pool, linear).
    pub head: Vec<Op>,
}

impl Architecture {
    /// Smallest square input (in px) for which every layer has a non-empty output.
    pub(crate) fn min_input_size(&self, in_channels: i64) -> i64 {
        (1..=4096)
            .find(|&s| {
                let mut shape = [in_channels, s, s];
                self.layers.iter().flat_map(|l| &l.ops).all(|op| {
                    shape = op.output(shape);
                    shape[1] >= 1 && shape[2] >= 1
                })
            })
            .unwrap_or(4096)
    }
}

/// One named stage of a model's forward pass.
pub(crate) trait Node: std::fmt::Debug + Send {
    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, C_out, H', W']`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor;
    fn spec(&self) -> (Vec<Op>, Vec<Op>);
}

/// Kaiming-normal (He et al. 2015), fan-out, ReLU gain: torchvision's conv initialisation
/// for ResNet and MobileNet; keeps activation variance stable through ReLU stacks.
pub(crate) const KAIMING_CONV: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// A conv with the moirelab conventions: Kaiming init, padding `k / 2`, a bias only when no
/// BatchNorm follows. Parameters: `<path>.weight`, `<path>.bias`.
#[derive(Debug)]
pub(crate) struct Conv {
    conv: nn::Conv2D,
    op: Op,
}

impl Conv {
    pub(crate) fn new(
        vs: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
        bias: bool,
    ) -> Conv {
        let padding = kernel / 2;
        let cfg = nn::ConvConfig {
            stride,
            padding,
            groups,
            bias,
            ws_init: KAIMING_CONV,
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        Conv {
            conv: nn::conv2d(vs, c_in, c_out, kernel, cfg),
            op: Op::Conv2d {
                c_in,
                c_out,
                kernel,
                stride,
                padding,
                groups,
                bias,
            },
        }
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.conv)
    }

    pub(crate) fn op(&self) -> Op {
        self.op
    }
}

/// Activation after a conv unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    None,
    Relu,
    Relu6,
    Hardswish,
}

impl Act {
    pub(crate) fn apply(self, xs: Tensor) -> Tensor {
        match self {
            Act::None => xs,
            Act::Relu => xs.relu(),
            Act::Relu6 => xs.relu6(),
            Act::Hardswish => xs.hardswish(),
        }
    }
}

/// conv → [norm] → activation, the normalisation (BatchNorm or GroupNorm) at `<bn_path>`
/// unless the model has none.
#[derive(Debug)]
pub(crate) struct ConvBnAct {
    pub(crate) conv: Conv,
    pub(crate) bn: Option<NormModule>,
    pub(crate) act: Act,
}

pub(crate) struct ConvArgs {
    pub(crate) c_in: i64,
    pub(crate) c_out: i64,
    pub(crate) kernel: i64,
    pub(crate) stride: i64,
    pub(crate) groups: i64,
}

impl ConvBnAct {
    pub(crate) fn new(
        conv_path: nn::Path,
        bn_path: nn::Path,
        a: ConvArgs,
        norm: NormLayer,
        act: Act,
    ) -> ConvBnAct {
        ConvBnAct {
            conv: Conv::new(
                conv_path,
                a.c_in,
                a.c_out,
                a.kernel,
                a.stride,
                a.groups,
                norm.conv_bias(),
            ),
            bn: norm.build(bn_path, a.c_out),
            act,
        }
    }

    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = self.conv.forward(xs);
        let ys = match &self.bn {
            Some(bn) => bn.forward(&ys, train),
            None => ys,
        };
        self.act.apply(ys)
    }

    pub(crate) fn ops(&self) -> Vec<Op> {
        let mut ops = vec![self.conv.op];
        ops.extend(self.bn.as_ref().map(NormModule::op));
        ops
    }
}

/// Global average pool → [linear → hard-swish] → dropout → linear.
#[derive(Debug)]
pub(crate) struct Head {
    /// MobileNetV3's hidden layer (`classifier.0`), `(layer, c_out)`.
    hidden: Option<(nn::Linear, i64)>,
    fc: nn::Linear,
    dropout: f64,
    c_in: i64,
    classes: i64,
}

impl Head {
    pub(crate) fn new(fc_path: nn::Path, c_in: i64, cfg: &ModelConfig) -> Head {
        Head {
            hidden: None,
            fc: nn::linear(fc_path, c_in, cfg.classes, Default::default()),
            dropout: cfg.dropout,
            c_in,
            classes: cfg.classes,
        }
    }

    /// torchvision's MobileNetV3 classifier: `<p>.0` linear `c_in → hidden`, hard-swish,
    /// dropout, `<p>.3` linear `hidden → classes`.
    pub(crate) fn mlp(p: &nn::Path, c_in: i64, hidden: i64, cfg: &ModelConfig) -> Head {
        Head {
            hidden: Some((
                nn::linear(p / "0", c_in, hidden, Default::default()),
                hidden,
            )),
            fc: nn::linear(p / "3", hidden, cfg.classes, Default::default()),
            dropout: cfg.dropout,
            c_in,
            classes: cfg.classes,
        }
    }

    /// # Shapes
    /// `[N, C, h, w]` → `[N, classes]`.
    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        // [N, C, h, w] -> [N, C]
        let pooled = xs.mean_dim(&[2i64, 3][..], false, tch::Kind::Float);
        let pooled = match &self.hidden {
            Some((h, _)) => pooled.apply(h).hardswish(),
            None => pooled,
        };
        pooled.dropout(self.dropout, train).apply_t(&self.fc, train)
    }

    fn ops(&self) -> Vec<Op> {
        let mut ops = vec![Op::GlobalAvgPool];
        let mut c_in = self.c_in;
        if let Some((_, hidden)) = &self.hidden {
            ops.push(Op::Linear {
                c_in,
                c_out: *hidden,
            });
            c_in = *hidden;
        }
        ops.push(Op::Linear {
            c_in,
            c_out: self.classes,
        });
        ops
    }
}

/// `model.normalize` as a per-channel affine map of the loader's input: `x · scale + shift`
/// turns `(v − LOADER_MEAN) / LOADER_STD` into `(v − mean) / std`. The constants live on the
/// model's device, so a CUDA forward copies nothing from the host per batch (`to_device` in
/// `apply` is then a no-op, kept for an input on another device).
#[derive(Debug)]
struct InputMap {
    scale: Tensor,
    shift: Tensor,
}

impl InputMap {
    fn new(cfg: &ModelConfig, device: Device) -> Option<InputMap> {
        use crate::config::{IMAGENET_MEAN, IMAGENET_STD, LOADER_MEAN, LOADER_STD};
        if cfg.input_normalize() != crate::Normalize::Imagenet {
            return None;
        }
        let scale: Vec<f32> = (0..3)
            .map(|c| (LOADER_STD[c] / IMAGENET_STD[c]) as f32)
            .collect();
        let shift: Vec<f32> = (0..3)
            .map(|c| ((LOADER_MEAN[c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]) as f32)
            .collect();
        Some(InputMap {
            scale: Tensor::from_slice(&scale)
                .view([1, 3, 1, 1])
                .to_device(device),
            shift: Tensor::from_slice(&shift)
                .view([1, 3, 1, 1])
                .to_device(device),
        })
    }

    fn apply(&self, xs: &Tensor) -> Tensor {
        let d = xs.device();
        xs * self.scale.to_device(d) + self.shift.to_device(d)
    }
}

/// `model.input-filter` as a depthwise 3×3 convolution with a fixed kernel over a
/// replicate-padded border (the output keeps the input's size), its result replacing the input
/// (`laplacian`) or stacked after it (`with-laplacian`). The kernel is built once, for
/// `channels` inputs, on the model's device, like [`InputMap`]'s constants. (Named apart from
/// the config's [`crate::InputFilter`], which says which kernel this holds.)
#[derive(Debug)]
struct InputKernel {
    kernel: Tensor,
    channels: i64,
    stack: bool,
}

impl InputKernel {
    fn new(cfg: &ModelConfig, device: Device) -> Option<InputKernel> {
        let stack = match cfg.input_filter {
            crate::InputFilter::None => return None,
            crate::InputFilter::Laplacian => false,
            crate::InputFilter::WithLaplacian => true,
        };
        Some(InputKernel {
            kernel: Tensor::from_slice(&[0f32, -1., 0., -1., 4., -1., 0., -1., 0.])
                .view([1, 1, 3, 3])
                .repeat([cfg.in_channels, 1, 1, 1])
                .to_device(device),
            channels: cfg.in_channels,
            stack,
        })
    }

    fn apply(&self, xs: &Tensor) -> Tensor {
        let k = self.kernel.to_device(xs.device()).to_kind(xs.kind());
        let filtered = xs.pad([1, 1, 1, 1], "replicate", None).conv2d(
            &k,
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            self.channels,
        );
        if self.stack {
            Tensor::cat(&[xs, &filtered], 1)
        } else {
            filtered
        }
    }
}

/// A model as a flat sequence of named nodes (the CAM layers, input to output) and a head.
#[derive(Debug)]
pub(crate) struct Sequence {
    pub(crate) cfg: ModelConfig,
    pub(crate) nodes: Vec<(String, Box<dyn Node>)>,
    pub(crate) head: Head,
    min_size: i64,
    input_map: Option<InputMap>,
    input_filter: Option<InputKernel>,
}

impl Sequence {
    pub(crate) fn new(
        cfg: &ModelConfig,
        nodes: Vec<(String, Box<dyn Node>)>,
        head: Head,
    ) -> Sequence {
        // The head's weights were made on the VarStore's device, as every parameter was.
        let device = head.fc.ws.device();
        let mut seq = Sequence {
            cfg: cfg.clone(),
            nodes,
            head,
            min_size: 1,
            input_map: InputMap::new(cfg, device),
            input_filter: InputKernel::new(cfg, device),
        };
        seq.min_size = seq
            .architecture()
            .min_input_size(cfg.first_layer_channels());
        seq
    }

    fn arch(&self) -> Arch {
        self.cfg.arch
    }

    fn index(&self, name: &str) -> Result<usize, ModelError> {
        self.nodes
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| ModelError::UnknownLayer {
                name: name.to_string(),
                arch: self.arch().as_str().to_string(),
                valid: self.cam_layers(),
            })
    }

    pub(crate) fn forward_with(
        &self,
        xs: &Tensor,
        train: bool,
        layers: &[&str],
    ) -> Result<ForwardOut, ModelError> {
        check_input(xs, self.cfg.in_channels, self.min_size)?;
        let wanted: Vec<usize> = layers
            .iter()
            .map(|l| self.index(l))
            .collect::<Result<_, _>>()?;
        let mut acts: Vec<Option<Tensor>> = (0..layers.len()).map(|_| None).collect();
        let xs = match &self.input_map {
            Some(m) => m.apply(xs),
            None => xs.shallow_clone(),
        };
        let xs = match &self.input_filter {
            Some(f) => f.apply(&xs),
            None => xs,
        };
        let mut ys = if self.cfg.channels_last(xs.device()) {
            to_channels_last(&xs)
        } else {
            xs
        };
        for (i, (_, node)) in self.nodes.iter().enumerate() {
            ys = node.forward_t(&ys, train);
            for (slot, &w) in acts.iter_mut().zip(&wanted) {
                if w == i {
                    *slot = Some(ys.shallow_clone());
                }
            }
        }
        let logits = self.head.forward(&ys, train);
        Ok(ForwardOut {
            logits,
            // Every slot was filled: `wanted` holds valid node indices and the loop visits
            // every node.
            activations: acts.into_iter().flatten().collect(),
        })
    }

    pub(crate) fn forward_from(
        &self,
        layer: &str,
        act: &Tensor,
        train: bool,
    ) -> Result<Tensor, ModelError> {
        let start = self.index(layer)?;
        let mut ys = act.shallow_clone();
        for (_, node) in &self.nodes[start + 1..] {
            ys = node.forward_t(&ys, train);
        }
        Ok(self.head.forward(&ys, train))
    }

    pub(crate) fn cam_layers(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.clone()).collect()
    }

    pub(crate) fn architecture(&self) -> Architecture {
        Architecture {
            layers: self
                .nodes
                .iter()
                .map(|(name, node)| {
                    let (ops, shortcut) = node.spec();
                    LayerSpec {
                        name: name.clone(),
                        ops,
                        shortcut,
                    }
                })
                .collect(),
            head: self.head.ops(),
        }
    }
}

/// `xs` ([N, C, H, W]) with channels-last strides, the layout `torch.channels_last` gives: the
/// same shape and values, so everything downstream is unchanged except the kernels libtorch
/// picks. A tensor that already has that layout is returned as is.
pub fn to_channels_last(xs: &Tensor) -> Tensor {
    let size = xs.size();
    let stride = xs.stride();
    if size.len() != 4 || (stride[1] == 1 && stride[3] == size[1]) {
        return xs.shallow_clone();
    }
    xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Implements [`crate::CamNet`] for an architecture struct holding a `seq: Sequence` and a
/// `default_layer: String`.
macro_rules! impl_camnet {
    ($t:ty) => {
        impl $crate::CamNet for $t {
            fn forward_with(
                &self,
                xs: &tch::Tensor,
                train: bool,
                layers: &[&str],
            ) -> Result<$crate::ForwardOut, $crate::ModelError> {
                self.seq.forward_with(xs, train, layers)
            }

            fn forward_from(
                &self,
                layer: &str,
                act: &tch::Tensor,
                train: bool,
            ) -> Result<tch::Tensor, $crate::ModelError> {
                self.seq.forward_from(layer, act, train)
            }

            fn cam_layers(&self) -> Vec<String> {
                self.seq.cam_layers()
            }

            fn default_cam_layer(&self) -> String {
                self.default_layer.clone()
            }

            fn config(&self) -> &$crate::ModelConfig {
                &self.seq.cfg
            }

            fn architecture(&self) -> Option<$crate::Architecture> {
                Some(self.seq.architecture())
            }
        }
    };
}
pub(crate) use impl_camnet;
