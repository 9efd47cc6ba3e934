#!/usr/bin/env python3
"""Save a torchvision backbone's state_dict as safetensors for moirelab's `model.init`.

    python scripts/export_torchvision.py resnet18 weights/resnet18.safetensors
    python scripts/export_torchvision.py mobilenet_v3_small weights/mnv3s.safetensors

Downloads torchvision's default ImageNet weights (needs network access once; torchvision
caches them under ~/.cache/torch). `--random` saves a randomly initialised model instead (for
tests, no download). The keys are torchvision's parameter names, which moirelab's
`arch = "resnet18"` / `"mobilenet_v3_small"` use as well; the 1000-class classifier is kept in
the file and skipped by moirelab when the class count differs.

Needs torch and torchvision (scripts/test.sh installs torchvision 0.28.0, the release built
against torch 2.13, into moirelab's venv: $MOIRELAB_PYTHON).
"""
import argparse
import os
import sys

ARCHS = ("resnet18", "mobilenet_v3_small")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arch", choices=ARCHS)
    ap.add_argument("out", help="output .safetensors file")
    ap.add_argument("--random", action="store_true", help="random weights, no download")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random")
    a = ap.parse_args()
    try:
        import torch
        import torchvision
        from safetensors.torch import save_file
    except ImportError as e:
        print(f"error: {e.name} is not installed in {sys.executable}", file=sys.stderr)
        return 1
    if a.random:
        torch.manual_seed(a.seed)
        model = getattr(torchvision.models, a.arch)(weights=None)
    else:
        model = getattr(torchvision.models, a.arch)(weights="DEFAULT")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    save_file(state, tmp)
    os.replace(tmp, a.out)
    print(f"{a.out}: {len(state)} tensors ({a.arch}, torchvision {torchvision.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
