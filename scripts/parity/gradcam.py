#!/usr/bin/env python3
"""pytorch-grad-cam reference for moirelab's CAM crate (parity tests and benchmarks).

Parity (called by crates/moirelab-gradcam/tests/it/parity.rs)::

    gradcam.py maps --model model.json --weights w.safetensors \
        --inputs x.safetensors --layer conv3 --methods gradcam,gradcam++ --out ref.safetensors

``model.json`` is the ``[model]`` table (kebab-case keys), ``x.safetensors`` holds ``x``
``[N, C, H, W]`` float32 and ``targets`` ``[N]`` int64. The output holds one ``[N, H, W]``
float32 tensor per method: pytorch-grad-cam's normalised maps, with the same weights, inputs
and targets (``ClassifierOutputTarget``), so Rust can compare per-image correlations.

Benchmark (called by scripts/bench/gradcam.sh)::

    gradcam.py bench --model model.json --weights w.safetensors --layer conv3 \
        --batch 64 --size 128 --iters 5 --method gradcam

prints one JSON line: ``{"images_per_s": ..., "seconds": [...], ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moirelab_torch as mt  # noqa: E402

from pytorch_grad_cam import (  # noqa: E402
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
    EigenCAM,
    ScoreCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
}


def load(args):
    with open(args.model) as f:
        cfg = json.load(f)
    model = mt.load_model(cfg, args.weights)
    model.eval()
    layers = [model.cam_module(name) for name in args.layer.split("+")]
    return model, layers


def cmd_maps(args) -> None:
    model, layers = load(args)
    data = load_file(args.inputs)
    x = data["x"].float()
    targets = [ClassifierOutputTarget(int(t)) for t in data["targets"].tolist()]
    out = {}
    for name in args.methods.split(","):
        cls = METHODS[name]
        with cls(model=model, target_layers=layers) as cam:
            if name == "scorecam":
                cam.batch_size = 64
            maps = cam(input_tensor=x, targets=targets)
        out[name] = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    save_file(out, args.out)


def cmd_bench(args) -> None:
    torch.set_num_threads(args.threads)
    model, layers = load(args)
    gen = torch.Generator().manual_seed(0)
    channels = int(model.config.get("in-channels", 3))
    x = torch.randn(args.batch, channels, args.size, args.size, generator=gen)
    cls = METHODS[args.method]
    seconds = []
    with cls(model=model, target_layers=layers) as cam:
        cam(input_tensor=x, targets=None)  # warm-up
        for _ in range(args.iters):
            t0 = time.perf_counter()
            cam(input_tensor=x, targets=None)
            seconds.append(time.perf_counter() - t0)
    best = min(seconds)
    print(
        json.dumps(
            {
                "impl": "pytorch-grad-cam",
                "method": args.method,
                "batch": args.batch,
                "size": args.size,
                "threads": torch.get_num_threads(),
                "seconds": seconds,
                "images_per_s": args.batch / (sum(seconds) / len(seconds)),
                "images_per_s_best": args.batch / best,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("maps", "bench"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True, help="[model] table as JSON")
        s.add_argument("--weights", required=True, help="moirelab .safetensors checkpoint")
        s.add_argument("--layer", required=True, help="CAM layer name(s), joined with +")
    m = sub.choices["maps"]
    m.add_argument("--inputs", required=True)
    m.add_argument("--methods", required=True, help="comma-separated method names")
    m.add_argument("--out", required=True)
    b = sub.choices["bench"]
    b.add_argument("--method", default="gradcam")
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--iters", type=int, default=5)
    b.add_argument("--threads", type=int, default=int(os.environ.get("MOIRELAB_THREADS", "2")))
    args = p.parse_args()
    torch.manual_seed(0)
    if args.cmd == "maps":
        cmd_maps(args)
    else:
        cmd_bench(args)


if __name__ == "__main__":
    main()
