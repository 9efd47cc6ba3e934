#!/usr/bin/env bash
# The test command of the README. First use installs libtorch (torch==2.13.0 wheel), the Python
# packages the cross-check tests need (pytorch-grad-cam, tensorboard, safetensors, torchvision
# 0.28.0, the release built against torch 2.13; Pillow, whose libjpeg checks the generator's
# JPEG model) and, where apt is available, Debian's chromium
# for the report's browser tests. Then runs every test.
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/env.sh"
moirelab_setup
moirelab_venv grad-cam tensorboard safetensors torchvision==0.28.0 pillow

if ! command -v chromium >/dev/null 2>&1 && [ -z "${MOIRELAB_SKIP_BROWSER:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    moirelab_log "installing Debian chromium for the report's browser tests (one time)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
  else
    moirelab_log "chromium is missing and cannot be installed here: install it, or set MOIRELAB_SKIP_BROWSER=1"
    exit 1
  fi
fi

cd "$MOIRELAB_ROOT"
cargo test --workspace --locked "$@"
