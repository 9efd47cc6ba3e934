#!/usr/bin/env bash
# The transfer protocol (docs/SYNTH.md, "Transfer protocol"): for each held-out physical
# factor X, generate a data set whose train/val splits never contain X and whose test split
# contains only X, train configs/fixed.toml on it, and report how the detector does on the
# factor it has never seen. Prints a Markdown table (one row per factor) and saves it with
# every run under the output folder.
#
#   scripts/bench/transfer.sh [--size 128|256] [--patch] [--count N] [--epochs E]
#                             [--factors "layout:pentile demosaic:malvar ..."] [--out DIR]
#
# --patch trains on native-resolution crops (data.mode = "patch", 128-px crops of the
# --size images), the mode for screen artifacts at larger sizes. Defaults: 128 px, the
# fixed config's count (2400) and epochs (12), all factors below, out bench-out/transfer.
# One factor at the defaults takes about 3 minutes on 2 CPU cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../env.sh"
moirelab_setup

size=128 patch=0 count=2400 epochs=12 out="bench-out/transfer"
factors="layout:rgb-stripe layout:bgr-stripe layout:vertical-stripe layout:pentile \
demosaic:bilinear demosaic:malvar resize:area resize:triangle resize:bicubic resize:bilinear \
pitch:0.45-0.6 pitch:1.2-1.8 sensor-scale:1.25-1.5 sensor-scale:2.3-3"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --patch) patch=1; shift ;;
    --count) count="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --factors) factors="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "bench/transfer.sh: unknown argument $1 (see the usage at the top of the file)" >&2; exit 2 ;;
  esac
done

cd "$MOIRELAB_ROOT"
cargo build --release --locked -p moirelab-cli >&2
bin="$CARGO_TARGET_DIR/release/moirelab"
mkdir -p "$out"
mode_sets=()
tag="${size}px"
if [ "$patch" = 1 ]; then
  mode_sets=(--set 'data.mode="patch"' --set data.image-size=128)
  tag="${size}px-patch"
else
  mode_sets=(--set "data.image-size=$size")
fi
table="$out/transfer-$tag.md"
{
  echo "| held-out factor | test n | accuracy | balanced acc. | AUC | val bal. acc. (seen factors) |"
  echo "|---|---|---|---|---|---|"
} >"$table.tmp"
for f in $factors; do
  name="$(printf '%s' "$f" | tr ':.' '--')-$tag"
  data="$out/data/$name"
  if [ ! -f "$data/dataset.json" ]; then
    "$bin" gen-data --preset clean --count "$count" --size "$size" --set "holdout=$f" \
      --out "$data" >&2
  fi
  run="$out/runs/$name"
  if [ ! -f "$run/summary.json" ]; then
    rm -rf "$run"
    "$bin" train --config configs/fixed.toml --name "$name" --runs-dir "$out/runs" \
      --set "data.root=\"$data\"" --set "train.epochs=$epochs" --set gradcam.every=1000 \
      "${mode_sets[@]}" >&2
  fi
  "${MOIRELAB_PYTHON:-python3}" - "$run/summary.json" "$f" >>"$table.tmp" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t, v = s["test"], s["val"]
print(f"| `{sys.argv[2]}` | {t['n']} | {t['accuracy']:.3f} | {t['balanced_accuracy']:.3f} | "
      f"{t['pad']['auc']:.3f} | {v['balanced_accuracy']:.3f} |")
PY
done
mv "$table.tmp" "$table"
cat "$table"
