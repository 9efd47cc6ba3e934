#!/usr/bin/env python3
"""Reference run of torch.optim for moirelab's optimizer parity test.

Reads initial parameters, a sequence of gradients and per-step learning rates from a
safetensors file, replays them through torch.optim (SGD / Adam / AdamW, single-tensor
implementation as on CPU) with optional torch.nn.utils.clip_grad_norm_, and writes the final
parameters, the optimizer state and the clipping norms to another safetensors file.

Input keys (float32 unless noted):
  param/<name>         initial value of parameter <name>
  grad/<k>/<name>      gradient of <name> at step k (absent: the parameter has no grad, i.e.
                       .grad is None at that step, so torch skips it)
  lr                   float64 [steps]: learning rate of each step
Output keys:
  param/<name>         parameters after the last step
  state/<field>/<name> momentum_buffer, exp_avg, exp_avg_sq (float32), step (float32 in torch)
  norms                float64 [steps]: total gradient norm returned by clip_grad_norm_
                       (only with max_norm)

Usage: optim.py --config '{"kind": "adam", ...}' --input in.safetensors
                       --output out.safetensors
Config keys: kind (sgd|adam|adamw), momentum, nesterov, weight_decay, betas, eps, max_norm.

Only torch is needed: the safetensors format (8-byte little-endian header length, JSON
header, raw little-endian data) is read and written here directly.
"""

import argparse
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in DTYPES:
            sys.exit(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[start:end]), dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="JSON object, see module docs")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    cfg = json.loads(args.config)
    data = read_safetensors(args.input)

    names = sorted(k[len("param/") :] for k in data if k.startswith("param/"))
    params = [data[f"param/{n}"].clone().requires_grad_(True) for n in names]
    lrs = data["lr"].tolist()
    kind = cfg["kind"]
    wd = cfg.get("weight_decay", 0.0)
    if kind == "sgd":
        opt = torch.optim.SGD(
            params,
            lr=lrs[0],
            momentum=cfg.get("momentum", 0.0),
            nesterov=cfg.get("nesterov", False),
            weight_decay=wd,
            foreach=False,
        )
    elif kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(
            params,
            lr=lrs[0],
            betas=tuple(cfg.get("betas", (0.9, 0.999))),
            eps=cfg.get("eps", 1e-8),
            weight_decay=wd,
            foreach=False,
        )
    else:
        sys.exit(f"unknown optimizer kind {kind!r}")

    max_norm = cfg.get("max_norm")
    norms = []
    for k, lr in enumerate(lrs):
        opt.zero_grad(set_to_none=True)
        for n, p in zip(names, params):
            g = data.get(f"grad/{k}/{n}")
            p.grad = None if g is None else g.clone()
        if max_norm is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_norm)))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()

    out = {f"param/{n}": p for n, p in zip(names, params)}
    for n, p in zip(names, params):
        for field, value in opt.state.get(p, {}).items():
            if torch.is_tensor(value):
                out[f"state/{field}/{n}"] = value
    if max_norm is not None:
        out["norms"] = torch.tensor(norms, dtype=torch.float64)
    write_safetensors(args.output, out)


if __name__ == "__main__":
    main()
