#!/usr/bin/env bash
# CAM throughput: moirelab-gradcam (release) vs pytorch-grad-cam on the same weights, same
# thread count, interleaved rounds so machine noise hits both sides alike.
#
#   scripts/bench/gradcam.sh [--arch shallow] [--method gradcam] [--batch 64] [--size 128]
#                            [--rounds 3] [--iters 5] [--threads 2]
#
# Prints each run's JSON line and, per round, the ratio moirelab / pytorch-grad-cam of mean
# images/s; the last line is the median ratio over rounds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
. "$here/../env.sh"
moirelab_setup
moirelab_venv grad-cam tensorboard safetensors

arch=shallow method=gradcam batch=64 size=128 rounds=3 iters=5 threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --method) method=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "bench/gradcam.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build --release -q -p moirelab-gradcam --example bench_gradcam
bin="$CARGO_TARGET_DIR/release/examples/bench_gradcam"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

ratios=()
for r in $(seq 1 "$rounds"); do
  ours=$("$bin" --arch "$arch" --method "$method" --batch "$batch" --size "$size" \
    --iters "$iters" --threads "$threads" --save-dir "$work")
  theirs=$("$MOIRELAB_PYTHON" "$here/../parity/gradcam.py" bench --model "$work/$arch.json" \
    --weights "$work/$arch.safetensors" --layer "$("$MOIRELAB_PYTHON" -c "
import json, sys; sys.path.insert(0, '$here/../parity'); import moirelab_torch as mt
print(mt.build_model(json.load(open('$work/$arch.json'))).default_cam_layer)")" \
    --method "$method" --batch "$batch" --size "$size" --iters "$iters" --threads "$threads" 2>/dev/null)
  echo "$ours"
  echo "$theirs"
  ratio=$("$MOIRELAB_PYTHON" -c "
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f\"{a['images_per_s'] / b['images_per_s']:.2f}\")" "$ours" "$theirs")
  echo "round $r: moirelab/pytorch-grad-cam images/s ratio = $ratio"
  ratios+=("$ratio")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print "median ratio over " NR " rounds: " a[int((NR+1)/2)]}'
