"""Idiomatic PyTorch baseline for moirelab's training epoch (METRICS.md "Speed").

A torch Dataset that reads the same image files with PIL, torchvision-style transforms
(resize to S, horizontal flip, ToTensor, the same normalisation), a DataLoader with the same
batch size and workers, the same shallow CNN (scripts/parity/moirelab_torch.py) and Adam.
Prints one JSON line per epoch: {"epoch", "seconds", "images", "images_per_sec"} and, with
--compute, the pure forward+backward floor on tensors already in memory.

    python scripts/bench/train.py DATA_DIR --epochs 2 --batch-size 32 --threads 2 --workers 2
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import moirelab_torch  # noqa: E402

MEAN, STD = 0.5, 0.25


class ManifestDataset(torch.utils.data.Dataset):
    def __init__(self, root, split, size):
        self.root, self.size = root, size
        classes = json.load(open(os.path.join(root, "dataset.json")))["classes"]
        self.items = []
        for line in open(os.path.join(root, "manifest.jsonl")):
            r = json.loads(line)
            if r["split"] == split:
                self.items.append((r["path"], classes.index(r["label"])))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        img = Image.open(os.path.join(self.root, path)).convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x - MEAN) / STD, label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--compute", action="store_true", help="also time pure fwd+bwd on in-memory tensors")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--channels-last", action="store_true",
                    help="tuned baseline: model and inputs in torch.channels_last (what moirelab's "
                         "model.memory-format = 'auto' does on CPU); the idiomatic script omits it")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ds = ManifestDataset(a.data, "train", a.size)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                                     persistent_workers=a.workers > 0)
    model = moirelab_torch.build_model({"arch": "shallow", "width": a.width, "depth": 3, "classes": 2})
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model.to(dev, memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    for epoch in range(1, a.epochs + 1):
        t0, n = time.perf_counter(), 0
        for x, y in dl:
            x, y = x.to(dev, non_blocking=True, memory_format=fmt), y.to(dev, non_blocking=True)
            opt.zero_grad()
            lossf(model(x), y).backward()
            opt.step()
            n += len(y)
        sync()
        dt = time.perf_counter() - t0
        print(json.dumps({"impl": "pytorch", "channels_last": a.channels_last, "device": a.device, "epoch": epoch, "seconds": dt, "images": n, "images_per_sec": n / dt}), flush=True)
    if a.compute:
        x = torch.randn(a.batch_size, 3, a.size, a.size, device=dev).contiguous(memory_format=fmt)
        y = torch.randint(0, 2, (a.batch_size,), device=dev)
        steps = max(1, len(ds) // a.batch_size)
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            lossf(model(x), y).backward()
            opt.step()
        sync()
        dt = time.perf_counter() - t0
        n = steps * a.batch_size
        print(json.dumps({"impl": "pytorch-compute", "channels_last": a.channels_last, "device": a.device, "seconds": dt, "images": n, "images_per_sec": n / dt}), flush=True)


if __name__ == "__main__":
    main()
