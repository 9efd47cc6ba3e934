#!/usr/bin/env bash
# Training epoch: moirelab vs an idiomatic PyTorch script (scripts/bench/train.py: Dataset
# reading the same PNGs + DataLoader, same shallow model, Adam, batch size and threads), and
# vs moirelab's own pure compute (forward + backward + Adam step on one in-memory batch).
# Rounds are interleaved so load from other processes hits both sides alike. Also reports the
# per-epoch Grad-CAM dump's share of the epoch (default [gradcam] settings of configs/fixed.toml).
#
#   scripts/bench/train.sh [--count 1200] [--threads 2] [--workers 2] [--rounds 2]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
. "$here/../env.sh"
moirelab_setup
moirelab_venv grad-cam tensorboard safetensors
count=1200 threads=2 workers=2 rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --count) count=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "bench/train.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
(cd "$MOIRELAB_ROOT" && cargo build --quiet --release -p moirelab-cli -p moirelab-train --example bench_compute)
bin="$CARGO_TARGET_DIR/release/moirelab"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" gen-data --preset clean --count "$count" --out "$tmp/data" >/dev/null 2>&1
model='{"arch":"shallow","width":16,"depth":3,"classes":2}'
batches=$(( count * 70 / 100 / 32 ))
for r in $(seq "$rounds"); do
  "$bin" train --config "$MOIRELAB_ROOT/configs/fixed.toml" --set data.root="$tmp/data" \
    --set train.epochs=2 --set train.threads="$threads" --set data.workers="$workers" \
    --name "bench-$r" --runs-dir "$tmp/runs" >/dev/null 2>"$tmp/train-$r.log"
  "$MOIRELAB_PYTHON" "$here/train.py" "$tmp/data" --epochs 2 --batch-size 32 \
    --threads "$threads" --workers "$workers" --compute >"$tmp/py-$r.jsonl"
  "$MOIRELAB_PYTHON" "$here/train.py" "$tmp/data" --epochs 2 --batch-size 32 \
    --threads "$threads" --workers "$workers" --compute --channels-last >"$tmp/pycl-$r.jsonl"
  "$CARGO_TARGET_DIR/release/examples/bench_compute" "$model" 128 32 "$batches" "$threads" >"$tmp/rc-$r.jsonl"
done
"$MOIRELAB_PYTHON" - "$tmp" "$rounds" <<'PY'
import json, re, sys, statistics as st
tmp, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    log = open(f"{tmp}/train-{r}.log").read()
    # epoch 2 (epoch 1 pays one-off costs: caches, allocator)
    m = [l for l in log.splitlines() if l.startswith("event=epoch epoch=2/")][0]
    ml_ips = float(re.search(r"img/s=([\d.]+)", m).group(1))
    ml_wall = float(re.search(r"wall=([\d.]+)s", m).group(1))
    hooks = [float(x) for x in re.findall(r"event=hook epoch=2 hook=gradcam seconds=([\d.]+)", log)]
    py = [json.loads(l) for l in open(f"{tmp}/py-{r}.jsonl")]
    py_ips = [p for p in py if p["impl"] == "pytorch" and p["epoch"] == 2][0]["images_per_sec"]
    py_c = [p for p in py if p["impl"] == "pytorch-compute"][0]["images_per_sec"]
    ml_c = json.loads(open(f"{tmp}/rc-{r}.jsonl").read())["images_per_sec"]
    pycl = [json.loads(l) for l in open(f"{tmp}/pycl-{r}.jsonl")]
    pycl_ips = [p for p in pycl if p["impl"] == "pytorch" and p["epoch"] == 2][0]["images_per_sec"]
    rows.append(dict(ml=ml_ips, py=py_ips, pycl=pycl_ips, ml_c=ml_c, py_c=py_c,
                     dump=(hooks[0] / ml_wall if hooks else float("nan"))))
    print(json.dumps({"round": r, **{k: round(v, 3) for k, v in rows[-1].items()}}))
med = lambda k: st.median(x[k] for x in rows)
print(f"moirelab epoch time / PyTorch epoch time : {med('py') / med('ml'):.2f}  (goal <= 0.7)")
print(f"moirelab epoch time / PyTorch channels-last epoch time: {med('pycl') / med('ml'):.2f}")
print(f"moirelab epoch / moirelab pure compute   : {med('ml_c') / med('ml'):.2f}  (goal <= 1.10)")
print(f"PyTorch  epoch / PyTorch pure compute    : {med('py_c') / med('py'):.2f}")
print(f"moirelab compute / PyTorch compute speed : {med('ml_c') / med('py_c'):.2f}")
print(f"Grad-CAM dump share of the epoch         : {100 * med('dump'):.1f} %  (goal <= 3 %)")
PY
