#!/usr/bin/env bash
# Every benchmark behind BENCHMARKS.md, one after another, with the machine they ran on.
# The output is also saved under bench-out/ (git-ignored). Each script compares two things
# run side by side in the same session (interleaved rounds), so read the ratios; absolute
# numbers depend on the machine and its load.
#
#   scripts/bench.sh            # everything (about 25 min on a 2-core machine)
#   scripts/bench.sh quick      # fewer rounds and images (about 8 min)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
mode="${1:-full}"
mkdir -p "$root/bench-out"
log="$root/bench-out/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
threads="${BENCH_THREADS:-$(nproc)}"
if [ "$mode" = quick ]; then
  synth_n=100 train_n=600 rounds=1 model_sizes="128" cam_rounds=1
else
  synth_n=300 train_n=1200 rounds=2 model_sizes="128 224" cam_rounds=3
fi
{
  echo "# moirelab benchmarks ($mode), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; threads used: $threads"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "revision: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "## Generator images/s (all cores)"
  "$here/bench/synth.sh" "$synth_n"
  echo
  echo "## Training epoch vs PyTorch, vs pure compute; Grad-CAM dump share"
  "$here/bench/train.sh" --count "$train_n" --threads "$threads" --rounds "$rounds"
  echo
  echo "## Loader vs model"
  "$here/bench/loader.sh" quick
  echo
  echo "## Models: forward+backward images/s vs PyTorch"
  "$here/bench/models.sh" --threads "$threads" --sizes "$model_sizes"
  echo
  echo "## Grad-CAM vs pytorch-grad-cam (batch 64, 128 px)"
  for m in gradcam gradcam++; do
    echo "### $m"
    "$here/bench/gradcam.sh" --method "$m" --rounds "$cam_rounds" --threads "$threads" | tail -n 1
  done
  echo
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$log"
echo "saved: $log"
