"""Forward+backward throughput of one architecture in PyTorch (the twin built by
moirelab_torch), for scripts/bench/models.sh. Prints one JSON line.

    python scripts/bench/models.py '{"arch": "resnet", "width": 32, "depth": 4}' SIZE BATCH STEPS THREADS
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import moirelab_torch as mt  # noqa: E402


def main() -> None:
    if len(sys.argv) != 6:
        sys.exit("usage: scripts/bench/models.py CONFIG_JSON SIZE BATCH STEPS THREADS")
    cfg = json.loads(sys.argv[1])
    size, batch, steps, threads = (int(a) for a in sys.argv[2:])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = mt.build_model(cfg).train()
    c = mt.model_config(cfg)
    xs = torch.randn(batch, c["in-channels"], size, size)
    ys = torch.randint(c["classes"], (batch,))

    def step() -> None:
        model.zero_grad(set_to_none=False)
        F.cross_entropy(model(xs), ys).backward()

    step()  # warm-up, as on the Rust side
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    secs = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"impl": "pytorch", "images_per_s": batch * steps / secs, "params": params}))


if __name__ == "__main__":
    main()
