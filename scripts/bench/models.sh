#!/usr/bin/env bash
# Forward+backward images/s of every architecture in moirelab (tch, release build) and in
# PyTorch (the twin from scripts/parity/moirelab_torch.py), same batch, same thread count, runs
# interleaved (moirelab, pytorch, moirelab, pytorch) so load from other processes hits both.
# Prints a Markdown table; ratio = moirelab / pytorch (>1: moirelab faster).
#
#   scripts/bench/models.sh [--threads N] [--batch N] [--steps N] [--sizes "128 224"] [--dev]
#
# --dev uses the dev profile (dependencies at opt-level 3, our crates at 1) to skip a release
# rebuild of torch-sys; the time is spent in libtorch either way.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/../env.sh"
moirelab_setup

threads=2 batch=32 steps=3 sizes="128 224" profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --dev) profile=dev; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

(cd "$MOIRELAB_ROOT" && cargo build --quiet --profile "$profile" -p moirelab-models --example bench_models)
dir=release; [ "$profile" = dev ] && dir=debug
bin="$CARGO_TARGET_DIR/$dir/examples/bench_models"

# Sizes chosen so the whole run stays within a few minutes on 2 cores: ResNet-18 and
# MobileNetV2 at half width (width 32 and 16), VGG with 4 stages of 2 convs.
configs=(
  '{"arch": "shallow", "width": 16, "depth": 3}'
  '{"arch": "vgg", "width": 16, "depth": 4}'
  '{"arch": "resnet", "width": 32, "depth": 4}'
  '{"arch": "mobilenet", "width": 16, "depth": 7}'
)

field() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p"; }

echo "| model | px | params | GFLOPs/img | moirelab img/s | pytorch img/s | ratio |"
echo "|---|---|---|---|---|---|---|"
for cfg in "${configs[@]}"; do
  for size in $sizes; do
    rs=() py=()
    for _round in 1 2; do
      out="$("$bin" "$cfg" "$size" "$batch" "$steps" "$threads")"
      rs+=("$(field images_per_s <<<"$out")")
      params="$(field params <<<"$out")" flops="$(field flops <<<"$out")"
      pout="$("$MOIRELAB_PYTHON" "$here/models.py" "$cfg" "$size" "$batch" "$steps" "$threads")"
      py+=("$(field images_per_s <<<"$pout")")
      pparams="$(field params <<<"$pout")"
      [ "$params" = "$pparams" ] || { echo "parameter counts differ: $params vs $pparams" >&2; exit 1; }
    done
    # Best of the two rounds for each side: the least disturbed measurement.
    python3 - "$cfg" "$size" "$params" "$flops" "${rs[@]}" "${py[@]}" <<'PY'
import json, sys
cfg, size, params, flops = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = max(map(float, sys.argv[5:7])); p = max(map(float, sys.argv[7:9]))
name = f"{cfg['arch']} w{cfg['width']} d{cfg['depth']}"
print(f"| {name} | {size} | {params:,} | {flops / 1e9:.3f} | {r:.1f} | {p:.1f} | {r / p:.2f} |")
PY
  done
done
