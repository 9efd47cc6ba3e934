#!/usr/bin/env bash
# Opening a data set from its memory-mapped decode cache, with the pixel check of this build
# against a build without it (BASELINE, the bench_cache_open example built at an earlier
# revision), interleaved round by round; then the decode from the image files, and CRC-32C
# against content_hash's mix over the same bytes.
#
#   scripts/bench/cache_open.sh DATA [SIZE] [ROUNDS] [BASELINE]
#
# DATA: a data set folder (e.g. gen-data --preset clean --count 4800 --size 256). The caches
# go to bench-out/cache-open/{new,base} (one file each, rebuilt when DATA changes).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
source scripts/env.sh
moirelab_setup >/dev/null
data="$1" size="${2:-128}" rounds="${3:-3}" base="${4:-}"
out="$PWD/bench-out/cache-open"
mkdir -p "$out/new" "$out/base"
cargo build --release -q -p moirelab-data --example bench_cache_open
new="${CARGO_TARGET_DIR:-target}/release/examples/bench_cache_open"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); revision: $(git rev-parse --short HEAD)"
for r in $(seq "$rounds"); do
  echo "round $r"
  echo "  new:  $("$new" --dir "$data" --cache-dir "$out/new" --size "$size" --rounds 3 | tr '\n' ' ')"
  if [ -n "$base" ]; then
    echo "  base: $("$base" --dir "$data" --cache-dir "$out/base" --size "$size" --rounds 3 | tr '\n' ' ')"
  fi
done
echo "decode: $("$new" --dir "$data" --cache-dir "$out/new" --size "$size" --rounds 1 --mode decode)"
echo "hash:   $("$new" --dir "$data" --cache-dir "$out/new" --rounds 3 --mode hash | tr '\n' ' ')"
