#!/usr/bin/env python3
"""Calibrate the synthetic generator against the demo's shallow CNN.

Trains the same network as crates/moirelab-models/src/shallow.rs (3 blocks of 3x3 conv ->
BN -> ReLU -> 2x2 max-pool, widths 16/32/64, global average pool, linear) with Adam on a
data set written by `moirelab gen-data` (or the moirelab-synth `gen` example) and prints,
per epoch: train loss/accuracy, val accuracy, test balanced accuracy, test accuracy on the
flag-aligned and flag-conflicting groups, and the share of class-activation-map mass that
falls on the flag region (CAM = Grad-CAM for a GAP->linear head, Zhou et al. 2016).

Usage (torch from the moirelab venv: `source scripts/env.sh && moirelab_setup`; Pillow comes
with `moirelab_venv grad-cam tensorboard safetensors`):

    $MOIRELAB_PYTHON scripts/bench/calibrate_synth.py --train data/flag-shortcut [--test DIR]
        [--epochs 5] [--batch 32] [--lr 1e-3] [--width 16] [--depth 3] [--threads 2]

Training uses the `train` split of --train; evaluation the `test` split of --test (default:
the same data set). The last line is a JSON summary (machine-readable).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from PIL import Image
except ImportError:  # pragma: no cover - environment problem, explained to the user
    sys.exit("calibrate_synth.py needs Pillow: run `moirelab_venv grad-cam tensorboard safetensors`")


def load(root, split):
    """Images [N,3,H,W] uint8, labels [N], flag-aligned [N] bool, flag masks [N,H,W] bool."""
    meta = json.load(open(os.path.join(root, "dataset.json")))
    classes = meta["classes"]
    flag_map = meta.get("shortcuts", {}).get("flag", {})
    flag_bit = 1 << meta["regions"].index("flag") if "flag" in meta.get("regions", []) else 0
    xs, ys, aligned, masks = [], [], [], []
    with open(os.path.join(root, "manifest.jsonl")) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r["split"] != split:
                continue
            img = np.asarray(Image.open(os.path.join(root, r["path"])).convert("RGB"))
            xs.append(img.transpose(2, 0, 1))
            ys.append(classes.index(r["label"]))
            aligned.append(flag_map.get(r["label"]) == r.get("groups", {}).get("flag"))
            if r.get("mask") and flag_bit:
                m = np.asarray(Image.open(os.path.join(root, r["mask"])), dtype=np.int64)
                masks.append((m & flag_bit) != 0)
            else:
                masks.append(np.zeros(img.shape[:2], dtype=bool))
    if not xs:
        sys.exit(f"{root}: no records in split {split!r}")
    return (
        torch.from_numpy(np.stack(xs)),
        torch.tensor(ys),
        torch.tensor(aligned),
        torch.from_numpy(np.stack(masks)),
    )


class Shallow(nn.Module):
    def __init__(self, width=16, depth=3, classes=2):
        super().__init__()
        blocks, c_in, c = [], 3, width
        for _ in range(depth):
            conv = nn.Conv2d(c_in, c, 3, padding=1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)))
            c_in, c = c, c * 2
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x):
        a = self.blocks(x)
        return self.fc(a.mean((2, 3))), a


def prep(x):
    return (x.float() / 255.0 - 0.5) / 0.25


def evaluate(model, x, y, aligned, flag, batch=128):
    model.eval()
    preds, shares = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits, act = model(prep(x[i : i + batch]))
            p = logits.argmax(1)
            preds.append(p)
            # CAM of the predicted class, upsampled to the image, positive part.
            w = model.fc.weight[p]  # [B, C]
            cam = torch.relu(torch.einsum("bc,bchw->bhw", w, act))
            cam = F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
            m = flag[i : i + batch].float()
            tot = cam.sum((1, 2)).clamp_min(1e-8)
            shares.append((cam * m).sum((1, 2)) / tot)
    p = torch.cat(preds)
    share = torch.cat(shares)
    correct = (p == y).float()
    per_class = [correct[y == c].mean().item() for c in y.unique()]

    def acc(sel):
        return correct[sel].mean().item() if sel.any() else float("nan")

    return {
        "acc": correct.mean().item(),
        "balanced": float(np.mean(per_class)),
        "aligned": acc(aligned),
        "conflicting": acc(~aligned),
        "flag_cam_share": share.mean().item(),
        "flag_area": flag.float().mean().item(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    xtr, ytr, atr, _ = load(args.train, "train")
    xva, yva, ava, fva = load(args.train, "val")
    test_root = args.test or args.train
    xte, yte, ate, fte = load(test_root, "test")
    print(
        f"loaded train {len(xtr)} (flag-aligned {atr.float().mean():.2f}), val {len(xva)}, "
        f"test {len(xte)} (flag-aligned {ate.float().mean():.2f}) in {time.time() - t0:.1f}s",
        flush=True,
    )
    model = Shallow(args.width, args.depth)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        t = time.time()
        perm = torch.randperm(len(xtr), generator=g)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(xtr), args.batch):
            idx = perm[i : i + args.batch]
            logits, _ = model(prep(xtr[idx]))
            loss = F.cross_entropy(logits, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == ytr[idx]).sum().item()
        val = evaluate(model, xva, yva, ava, fva)
        te = evaluate(model, xte, yte, ate, fte)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / len(xtr),
            "train_acc": correct / len(xtr),
            "val_acc": val["acc"],
            "test_balanced": te["balanced"],
            "test_aligned": te["aligned"],
            "test_conflicting": te["conflicting"],
            "test_flag_cam_share": te["flag_cam_share"],
            "flag_area": te["flag_area"],
            "seconds": time.time() - t,
        }
        history.append(row)
        print(
            f"epoch {epoch}: loss {row['train_loss']:.3f} train {row['train_acc']:.3f} "
            f"val {row['val_acc']:.3f} | test bal {row['test_balanced']:.3f} "
            f"aligned {row['test_aligned']:.3f} conflicting {row['test_conflicting']:.3f} "
            f"| CAM on flag {row['test_flag_cam_share']:.3f} (area {row['flag_area']:.3f}) "
            f"[{row['seconds']:.0f}s]",
            flush=True,
        )
    print(json.dumps({"train": args.train, "test": test_root, "history": history}))


if __name__ == "__main__":
    main()
