#!/usr/bin/env bash
# The demo of the README: generates the flag-shortcut data set, trains the shallow model that
# takes the flag shortcut and a "fixed" run that does not, writes both galleries and a compare
# page, and prints a verdict from the numbers. First use installs libtorch and builds.
#   scripts/demo.sh [--out DIR]     (default: runs/)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/env.sh"
moirelab_setup
out="runs"
if [ "${1:-}" = "--out" ] && [ -n "${2:-}" ]; then out="$2"; fi

cd "$MOIRELAB_ROOT"
moirelab_log "building moirelab (release)"
cargo build --release --locked -p moirelab-cli
bin="$CARGO_TARGET_DIR/release/moirelab"
exec "$bin" demo --out "$out"
