# shellcheck shell=bash
# Source me: sets up libtorch 2.13.0 for tch 0.26 on first use, then exports what cargo and the
# binaries need. Idempotent; a second call takes well under a second.
#
#   LIBTORCH          honoured if you set it (your own libtorch 2.13.0); otherwise the PyPI wheel
#                     torch==2.13.0 is installed into a venv in the cache folder below.
#   MOIRELAB_CACHE    cache folder shared by every checkout and CI clone
#                     (default: ${XDG_CACHE_HOME:-$HOME/.cache}/moirelab)
#   MOIRELAB_PYTHON   exported: the venv's python (PyTorch baselines, interop and parity tests)
#   MOIRELAB_TARGET_DIR  cargo target folder (default: <checkout>/target)

MOIRELAB_TORCH_VERSION=2.13.0
MOIRELAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOIRELAB_CACHE="${MOIRELAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moirelab}"
MOIRELAB_VENV="$MOIRELAB_CACHE/venv-torch-$MOIRELAB_TORCH_VERSION"
export MOIRELAB_ROOT MOIRELAB_CACHE MOIRELAB_VENV

moirelab_log() { printf 'moirelab-setup: %s\n' "$*" >&2; }

moirelab_find_python() {
  local py
  for py in python3.11 python3 python; do
    if command -v "$py" >/dev/null 2>&1 &&
      "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

# Install (once) the venv with torch; extra packages are passed as arguments and installed
# under a marker of their own, constrained so pip can never replace torch.
moirelab_venv() {
  mkdir -p "$MOIRELAB_CACHE" || return 1
  (
    # One installer at a time across checkouts and CI clones.
    exec 9>"$MOIRELAB_CACHE/.lock"
    flock 9
    if [ ! -f "$MOIRELAB_VENV/.torch-ok" ]; then
      local py
      py="$(moirelab_find_python)" || { moirelab_log "no python3 found (need 3.9+ with pip)"; exit 1; }
      moirelab_log "installing torch==$MOIRELAB_TORCH_VERSION from PyPI into $MOIRELAB_VENV (one time, ~5 GB)"
      rm -rf "$MOIRELAB_VENV"
      "$py" -m venv "$MOIRELAB_VENV" || exit 1
      "$MOIRELAB_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "torch==$MOIRELAB_TORCH_VERSION" numpy || exit 1
      touch "$MOIRELAB_VENV/.torch-ok"
    fi
    if [ "$#" -gt 0 ]; then
      local marker="$MOIRELAB_VENV/.extras-$(printf '%s\n' "$@" | sha1sum | cut -c1-12)"
      if [ ! -f "$marker" ]; then
        moirelab_log "installing $* into $MOIRELAB_VENV (one time)"
        printf 'torch==%s\n' "$MOIRELAB_TORCH_VERSION" >"$MOIRELAB_VENV/constraints.txt"
        "$MOIRELAB_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
          -c "$MOIRELAB_VENV/constraints.txt" "$@" || exit 1
        touch "$marker"
      fi
    fi
  )
}

moirelab_setup() {
  if [ -n "${LIBTORCH:-}" ]; then
    if [ ! -f "$LIBTORCH/lib/libtorch_cpu.so" ]; then
      moirelab_log "LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so"
      return 1
    fi
  else
    moirelab_venv || { moirelab_log "libtorch setup failed"; return 1; }
    LIBTORCH="$("$MOIRELAB_VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')" ||
      return 1
    export LIBTORCH
  fi
  if [ -x "$MOIRELAB_VENV/bin/python" ]; then
    export MOIRELAB_PYTHON="$MOIRELAB_VENV/bin/python"
  fi
  export MOIRELAB_LIBTORCH_LIB="$LIBTORCH/lib"
  case ":${LD_LIBRARY_PATH:-}:" in
    *":$MOIRELAB_LIBTORCH_LIB:"*) ;;
    *) export LD_LIBRARY_PATH="$MOIRELAB_LIBTORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
  # torch-sys compiles a large C++ wrapper for every target folder and profile; with ccache
  # installed, every checkout, CI clone and `cargo clippy` after the first gets it in seconds.
  if [ -z "${MOIRELAB_NO_CCACHE:-}" ] && command -v ccache >/dev/null 2>&1; then
    case "${CXX:-}" in
      ccache*) ;;
      *) export CXX="ccache ${CXX:-c++}" ;;
    esac
    export CCACHE_DIR="${CCACHE_DIR:-$MOIRELAB_CACHE/ccache}"
    export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
  fi
  export CARGO_TARGET_DIR="${MOIRELAB_TARGET_DIR:-${CARGO_TARGET_DIR:-$MOIRELAB_ROOT/target}}"
  if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || { moirelab_log "cargo not found: install Rust (rustup)"; return 1; }
}

# The moirelab binary the bench scripts run: $MOIRELAB_BIN when set, else the release build
# (built first). Call after moirelab_setup.
moirelab_release_bin() {
  if [ -n "${MOIRELAB_BIN:-}" ]; then
    printf '%s\n' "$MOIRELAB_BIN"
  else
    (cd "$MOIRELAB_ROOT" && cargo build --release --locked -p moirelab-cli >&2) || return 1
    printf '%s\n' "$CARGO_TARGET_DIR/release/moirelab"
  fi
}
