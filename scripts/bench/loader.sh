#!/usr/bin/env bash
# Loader vs shallow-model throughput at 128 px, batch 32 (moirelab-data issue #4), then peak
# RSS of a 20 000-image set. Usage: scripts/bench/loader.sh [quick|full]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
source scripts/env.sh
moirelab_setup
mode="${1:-quick}"
run() { cargo run --release -q -p moirelab-data --example bench_loader -- "$@"; }
if [ "$mode" = full ]; then
  run --images 4000 --batches 60 --workers 2
  run --images 20000 --native 128 --batches 20 --workers 2 --rss-only
  run --images 20000 --native 128 --batches 20 --workers 2 --rss-only --cache disk
else
  run --images 1000 --batches 20 --workers 2
fi
