#!/usr/bin/env bash
# Generator throughput at 128 and 256 px with all cores, measured side by side in one session
# (report the ratio; absolute images/s depend on the machine and its load).
#
#   scripts/bench_synth.sh [COUNT]      (default 200 images per size)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
count="${1:-200}"
target="${MOIRELAB_TARGET_DIR:-$root/target}"
# The dev profile already builds dependencies at opt-level 3; raising our crate to 3 as well
# gives release-speed pixel loops without a second (release) build of every dependency.
cargo build --quiet -p moirelab-synth --example gen --target-dir "$target" \
  --config 'profile.dev.package.moirelab-synth.opt-level=3'
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for size in 128 256; do
  "$target/debug/examples/gen" --preset clean --count "$count" --size "$size" --out "$tmp/s$size"
done
