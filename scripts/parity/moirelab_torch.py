"""PyTorch twins of the moirelab architectures (crate moirelab-models).

Every architecture is rebuilt here with the SAME parameter names as the tch VarStore, so a
moirelab checkpoint written by ``VarStore::save("x.safetensors")`` loads with ``strict=True``::

    import moirelab_torch as mt
    model = mt.load_model("runs/shallow/config.toml", "runs/shallow/checkpoints/best.safetensors")
    layer = model.cam_module(model.default_cam_layer)     # hook this with pytorch-grad-cam
    logits = model(x)                                      # x: [N, C, H, W], normalised by you

CAM layer names are module paths (``model.get_submodule(name)``); the output of
``model.cam_module(name)`` equals the activation moirelab's ``CamNet::forward_with`` returns
for ``name``. Input normalisation is the caller's business: the model takes the tensor as given.

BatchNorm matches tch's ``batch_norm2d``: eps 1e-5, momentum 0.1, and no
``num_batches_tracked`` buffer (tch has none, so strict loading would fail with it).
GroupNorm (``model.norm = "group"``) is ``nn.GroupNorm`` with eps 1e-5.

Only torch (and numpy) are needed; ``safetensors`` is used when installed, otherwise the
checkpoint is read by the small reader below.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ARCHS",
    "DEFAULTS",
    "build_model",
    "load_model",
    "load_safetensors",
    "model_config",
    "MoirelabNet",
]

ARCHS = ("shallow", "vgg", "resnet", "mobilenet")

# Mirrors `ModelConfig::default()` in crates/moirelab-models/src/config.rs.
DEFAULTS: Dict[str, Any] = {
    "arch": "shallow",
    "width": 16,
    "depth": 3,
    "dropout": 0.0,
    "batch-norm": True,
    # "batch", "group" (GroupNorm, at most norm-groups groups per layer: the largest divisor
    # of the channels not above it) or "none"; batch-norm = false is the older "none".
    "norm": "batch",
    "norm-groups": None,
    "in-channels": 3,
    "classes": 2,
    "blocks-per-stage": None,
    # A speed setting of the Rust side (activation layout); the twin takes its input as given.
    "memory-format": "auto",
    # A fixed filter on the input inside the model: "none", "laplacian" (replaces the input)
    # or "with-laplacian" (stacked after it: twice the channels into the first layer).
    "input-filter": "none",
}

INPUT_FILTERS = ("none", "laplacian", "with-laplacian")
NORMS = ("batch", "group", "none")

# MobileNetV2 inverted-residual stages (Sandler et al. 2018, table 2): expansion t,
# channels c (before the width multiplier), repeats n, stride s of the first repeat.
MOBILENET_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def model_config(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """Fill defaults into a ``[model]`` table (kebab-case keys, as in the TOML); unknown keys
    are rejected like the Rust side (``deny_unknown_fields``)."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown [model] key(s) {unknown}; valid keys: {', '.join(DEFAULTS)}"
        )
    out = dict(DEFAULTS)
    out.update(cfg)
    if out["arch"] not in ARCHS:
        raise ValueError(f"unknown model.arch {out['arch']!r}; valid: {', '.join(ARCHS)}")
    if out["input-filter"] not in INPUT_FILTERS:
        raise ValueError(
            f"unknown model.input-filter {out['input-filter']!r}; valid: {', '.join(INPUT_FILTERS)}"
        )
    if out["norm"] not in NORMS:
        raise ValueError(f"unknown model.norm {out['norm']!r}; valid: {', '.join(NORMS)}")
    if not out["batch-norm"] and out["norm"] != "batch":
        raise ValueError("model.batch-norm = false and model.norm contradict each other")
    if out["norm-groups"] is not None and out["norm"] != "group":
        raise ValueError('model.norm-groups applies to model.norm = "group" only')
    return out


# A function of the channel count that builds a layer's normalisation, or None for none.
NormFactory = Optional[Callable[[int], nn.Module]]


def groups_for(channels: int, most: int) -> int:
    """GroupNorm groups of a ``channels``-channel layer: the largest divisor not above ``most``."""
    return next(g for g in range(min(most, channels), 0, -1) if channels % g == 0)


def norm_factory(cfg: Mapping[str, Any]) -> NormFactory:
    """The normalisation after each conv, as the Rust side's ``ModelConfig::norm_layer``."""
    kind = cfg["norm"] if cfg["batch-norm"] else "none"
    if kind == "batch":
        return BatchNorm2d
    if kind == "group":
        most = int(cfg["norm-groups"] or 8)
        return lambda c: nn.GroupNorm(groups_for(c, most), c, eps=1e-5)
    return None


def first_layer_channels(cfg: Mapping[str, Any]) -> int:
    """Channels the first layer takes: ``in-channels``, doubled by ``with-laplacian``."""
    c = int(cfg["in-channels"])
    return 2 * c if cfg.get("input-filter", "none") == "with-laplacian" else c


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """``model.input-filter = "laplacian"``: each channel's 4-neighbour Laplacian
    ``4·x − (left + right + up + down)`` over a replicate-padded border (same size out)."""
    c = x.shape[1]
    k = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]], dtype=x.dtype)
    k = k.to(x.device).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with tch's defaults and without ``num_batches_tracked``."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-5, momentum=0.1)
        # A None buffer is neither saved nor expected by load_state_dict, and BatchNorm's
        # forward skips the counter when it is None (momentum is fixed, so it is unused).
        self.num_batches_tracked = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Skip _NormBase's compatibility shim, which inserts a num_batches_tracked entry into
        # old-format state dicts and would then make strict loading fail on it.
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args, **kwargs)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Channel rounding of MobileNetV2 (as in torchvision and the Rust side)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class MoirelabNet(nn.Module):
    """Base class: the CAM layer registry shared by every architecture."""

    arch: str = ""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        self.config = dict(cfg)
        self._cam_layers: List[str] = []
        self.dropout = float(cfg["dropout"])
        flt = cfg.get("input-filter", "none")
        # Before the architecture's own forward, as the Rust side applies it first.
        if flt == "laplacian":
            self.register_forward_pre_hook(lambda _m, args: (laplacian(args[0]),) + args[1:])
        elif flt == "with-laplacian":
            self.register_forward_pre_hook(
                lambda _m, args: (torch.cat([args[0], laplacian(args[0])], 1),) + args[1:]
            )

    def cam_layers(self) -> List[str]:
        """CAM layer names, input to output (same list as ``CamNet::cam_layers``)."""
        return list(self._cam_layers)

    @property
    def default_cam_layer(self) -> str:
        return self._cam_layers[-1]

    def cam_module(self, name: str) -> nn.Module:
        """The module whose forward output is the activation of CAM layer ``name``."""
        if name not in self._cam_layers:
            raise KeyError(
                f"unknown layer {name!r} for model {self.arch!r}; "
                f"valid layers: {', '.join(self._cam_layers)}"
            )
        return self.get_submodule(name)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        # [N, C, h, w] -> [N, C] -> [N, classes]
        x = x.mean(dim=(2, 3))
        x = F.dropout(x, self.dropout, self.training)
        return self.classifier_layer()(x)

    def classifier_layer(self) -> nn.Module:
        return self.fc


def conv(cin: int, cout: int, k: int, stride: int, bn: NormFactory, groups: int = 1) -> nn.Conv2d:
    # Padding k // 2 keeps 'same' geometry for odd kernels; the conv has a bias only
    # without BatchNorm (the Rust side makes the same choice).
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=not bn)


# ---------------------------------------------------------------------------------- shallow


class ShallowBlock(nn.Module):
    """3x3 conv -> [BN] -> ReLU -> 2x2 max-pool. Output = CAM activation ``conv<i>``."""

    def __init__(self, cin: int, cout: int, bn: NormFactory):
        super().__init__()
        self.conv = conv(cin, cout, 3, 1, bn)
        self.bn = bn(cout) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.max_pool2d(F.relu(x), 2)


class Shallow(MoirelabNet):
    arch = "shallow"

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        cin, cout = first_layer_channels(cfg), cfg["width"]
        for i in range(1, cfg["depth"] + 1):
            name = f"conv{i}"
            self.add_module(name, ShallowBlock(cin, cout, norm_factory(cfg)))
            self._cam_layers.append(name)
            cin, cout = cout, cout * 2
        self.fc = nn.Linear(cin, cfg["classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._cam_layers:
            x = getattr(self, name)(x)
        return self.head(x)


# -------------------------------------------------------------------------------------- vgg


class ConvUnit(nn.Module):
    """3x3 conv -> [BN] -> ReLU (one VGG conv layer). Output = CAM ``stage<s>.conv<i>``."""

    def __init__(self, cin: int, cout: int, bn: NormFactory):
        super().__init__()
        self.conv = conv(cin, cout, 3, 1, bn)
        self.bn = bn(cout) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x)


class MaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2)


class VggStage(nn.Module):
    """``conv1`` … ``conv<k>`` then ``pool``; the stage output (CAM ``stage<s>``) is pooled."""

    def __init__(self, cin: int, cout: int, convs: int, bn: NormFactory):
        super().__init__()
        self.names = []
        for i in range(1, convs + 1):
            self.add_module(f"conv{i}", ConvUnit(cin if i == 1 else cout, cout, bn))
            self.names.append(f"conv{i}")
        self.pool = MaxPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = getattr(self, name)(x)
        return self.pool(x)


class Vgg(MoirelabNet):
    """VGG-style (Simonyan & Zisserman 2015) with a GAP -> linear head."""

    arch = "vgg"

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        convs = cfg["blocks-per-stage"] or 2
        cin, w = first_layer_channels(cfg), cfg["width"]
        self.stages = []
        for s in range(1, cfg["depth"] + 1):
            cout = w * min(2 ** (s - 1), 8)
            name = f"stage{s}"
            self.add_module(name, VggStage(cin, cout, convs, norm_factory(cfg)))
            self._cam_layers += [f"{name}.conv{i}" for i in range(1, convs + 1)] + [name]
            self.stages.append(name)
            cin = cout
        self.fc = nn.Linear(cin, cfg["classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.head(x)


# ----------------------------------------------------------------------------------- resnet


class Stem(nn.Module):
    """Hook point for the ResNet stem: its output is the CAM activation ``maxpool``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, stride=2, padding=1)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 convs + identity or 1x1 projection."""

    def __init__(self, cin: int, cout: int, stride: int, bn: NormFactory):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, bn)
        self.bn1 = bn(cout) if bn else None
        self.conv2 = conv(cout, cout, 3, 1, bn)
        self.bn2 = bn(cout) if bn else None
        if stride != 1 or cin != cout:
            layers = [nn.Conv2d(cin, cout, 1, stride=stride, bias=not bn)]
            if bn:
                layers.append(bn(cout))
            self.downsample = nn.Sequential(*layers)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        if self.bn1 is not None:
            y = self.bn1(y)
        y = self.conv2(F.relu(y))
        if self.bn2 is not None:
            y = self.bn2(y)
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


class ResNet(MoirelabNet):
    """ResNet-18-style, torchvision parameter names (``conv1``, ``bn1``, ``layer<s>.<b>``, ``fc``)."""

    arch = "resnet"

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        bn = norm_factory(cfg)
        w = cfg["width"]
        blocks = cfg["blocks-per-stage"] or 2
        self.conv1 = nn.Conv2d(first_layer_channels(cfg), w, 7, stride=2, padding=3, bias=not bn)
        self.bn1 = bn(w) if bn else None
        self.maxpool = Stem()
        self._cam_layers.append("maxpool")
        cin = w
        self.stages = []
        for s in range(1, cfg["depth"] + 1):
            cout = w * 2 ** (s - 1)
            stage = nn.Sequential(
                *[
                    BasicBlock(cin if b == 0 else cout, cout, 2 if (b == 0 and s > 1) else 1, bn)
                    for b in range(blocks)
                ]
            )
            self.add_module(f"layer{s}", stage)
            self._cam_layers += [f"layer{s}.{b}" for b in range(blocks)]
            self.stages.append(f"layer{s}")
            cin = cout
        self.fc = nn.Linear(cin, cfg["classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        x = self.maxpool(F.relu(x))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.head(x)


# -------------------------------------------------------------------------------- mobilenet


def conv_norm_act(cin: int, cout: int, k: int, stride: int, bn: NormFactory, groups: int = 1):
    """torchvision's Conv2dNormActivation layout: ``0`` conv, ``1`` BN (if any), ReLU6."""
    layers: List[nn.Module] = [conv(cin, cout, k, stride, bn, groups)]
    if bn:
        layers.append(bn(cout))
    layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection (+ identity)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, bn: NormFactory):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: List[nn.Module] = []
        if expand != 1:
            layers.append(conv_norm_act(cin, hidden, 1, 1, bn))
        layers.append(conv_norm_act(hidden, hidden, 3, stride, bn, groups=hidden))
        layers.append(conv(hidden, cout, 1, 1, bn))
        if bn:
            layers.append(bn(cout))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res else y


class MobileNet(MoirelabNet):
    """MobileNetV2 (Sandler et al. 2018), torchvision parameter names (``features.<i>``,
    ``classifier.1``). ``width`` is the stem's channel count (32 = width multiplier 1.0)."""

    arch = "mobilenet"

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        bn = norm_factory(cfg)
        alpha = cfg["width"] / 32.0
        cin = make_divisible(32 * alpha)
        last = make_divisible(1280 * max(1.0, alpha))
        features: List[nn.Module] = [conv_norm_act(first_layer_channels(cfg), cin, 3, 2, bn)]
        for t, c, n, s in MOBILENET_STAGES[: cfg["depth"]]:
            cout = make_divisible(c * alpha)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, bn))
                cin = cout
        features.append(conv_norm_act(cin, last, 1, 1, bn))
        self.features = nn.Sequential(*features)
        self._cam_layers = [f"features.{i}" for i in range(len(features))]
        self.classifier = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(last, cfg["classes"]))

    def classifier_layer(self) -> nn.Module:
        return self.classifier[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ---------------------------------------------------------------------------------- loading

_BUILDERS = {"shallow": Shallow, "vgg": Vgg, "resnet": ResNet, "mobilenet": MobileNet}


def build_model(model_cfg: Mapping[str, Any]) -> MoirelabNet:
    """Build an untrained model from a ``[model]`` table (kebab-case keys)."""
    cfg = model_config(model_cfg)
    return _BUILDERS[cfg["arch"]](cfg)


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load_safetensors(path: Union[str, os.PathLike]) -> Dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file into CPU tensors (the safetensors package if installed)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(os.fspath(path))
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        t = torch.frombuffer(bytearray(body[start:end]), dtype=dtype) if end > start else (
            torch.empty(0, dtype=dtype)
        )
        out[name] = t.reshape(info["shape"])
    return out


def _read_model_table(config: Union[str, os.PathLike]) -> Dict[str, Any]:
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - older Pythons
        import tomli as tomllib  # type: ignore[no-redef]
    with open(config, "rb") as f:
        doc = tomllib.load(f)
    return dict(doc.get("model", {}))


def load_model(
    config: Union[Mapping[str, Any], str, os.PathLike],
    weights: Union[str, os.PathLike],
    device: Optional[Union[str, torch.device]] = None,
) -> MoirelabNet:
    """Build the model of ``config`` (a ``[model]`` dict, or a config TOML whose ``[model]``
    table is read) and load a moirelab ``.safetensors`` checkpoint with ``strict=True``.
    Returns the model in eval mode."""
    cfg = dict(config) if isinstance(config, Mapping) else _read_model_table(config)
    model = build_model(cfg)
    state = load_safetensors(weights)
    model.load_state_dict(state, strict=True)
    if device is not None:
        model.to(device)
    return model.eval()
