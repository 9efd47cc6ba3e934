#!/usr/bin/env bash
# Generator throughput at 128 and 256 px with all cores, measured side by side in one session
# (report the ratio; absolute images/s depend on the machine and its load).
#
#   scripts/bench/synth.sh [COUNT]      (default 200 images per size)
#   BASELINE=/path/to/other/gen scripts/bench/synth.sh 400
#
# BASELINE names a `gen` example binary built from another revision (e.g. a `git archive` of
# the previous commit built with the same flags); each size then runs baseline and current
# alternately, twice, and prints the user-CPU ratio baseline/current.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
count="${1:-200}"
target="${MOIRELAB_TARGET_DIR:-$root/target}"
# The dev profile already builds dependencies at opt-level 3; raising our two crates to 3
# without overflow checks / debug assertions gives release-speed pixel loops (and the same
# code release runs) without a second (release) build of every dependency.
flags=()
for p in moirelab-synth moirelab-core; do
  flags+=(--config "profile.dev.package.$p.opt-level=3"
    --config "profile.dev.package.$p.overflow-checks=false"
    --config "profile.dev.package.$p.debug-assertions=false")
done
cargo build --quiet -p moirelab-synth --example gen --target-dir "$target" "${flags[@]}"
gen="$target/debug/examples/gen"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# User CPU seconds of one run (the machine is shared: wall time would count other jobs).
run() {
  /usr/bin/time -f '%U' -o "$tmp/time" "$1" --preset clean --count "$count" --size "$2" \
    --out "$3" --force >/dev/null
  cat "$tmp/time"
}
for size in 128 256; do
  if [ -z "${BASELINE:-}" ]; then
    "$gen" --preset clean --count "$count" --size "$size" --out "$tmp/s$size"
    continue
  fi
  base=0
  cur=0
  for _ in 1 2; do
    base="$(awk -v a="$base" -v b="$(run "$BASELINE" "$size" "$tmp/b$size")" 'BEGIN { print a + b }')"
    cur="$(awk -v a="$cur" -v b="$(run "$gen" "$size" "$tmp/c$size")" 'BEGIN { print a + b }')"
  done
  awk -v s="$size" -v b="$base" -v c="$cur" 'BEGIN {
    printf "size %s: baseline %.2f s user, current %.2f s user, speed-up x%.2f\n", s, b, c, b / c }'
done
