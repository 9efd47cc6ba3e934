#!/usr/bin/env bash
# The transfer protocol (docs/SYNTH.md, "Transfer protocol"): for each held-out physical
# factor X, generate a data set whose train/val splits never contain X and whose test split
# contains only X, train a config (default configs/fixed.toml) on it, and report how the
# detector does on the factor it has never seen. Prints a Markdown table (one row per
# factor) and saves it with every run under the output folder. A reference run of the same
# config with nothing held out scores the same test images ("seen"): the gap between the
# two is what not having seen X costs, apart from how hard X's images are anyway.
# Each row also splits the test screens by whether the display left a trace (a moiré or band
# mask): how many did, and how many of those and of the rest each run catches at its
# threshold, so a low row says whether the detector failed to transfer or the evidence is
# not in the photos; BPCER, the genuine photos rejected; and, for a config that draws photos
# out of focus (both classes, no grid left either way), the accuracy on those in focus.
#
#   scripts/bench/transfer.sh [--config FILE] [--size 128|256] [--patch] [--count N]
#                             [--epochs E] [--factors "layout:pentile demosaic:malvar ..."]
#                             [--set KEY=VALUE ...] [--out DIR] [--plan]
#
# --plan prints the held-out factors it would run, one per line, and stops.
#
# --set passes a training override to every run (e.g. --set data.augment.transpose=0.5,
# --set train.lr=1e-3), to measure a training change on the same data sets: its runs and
# table are named after the config plus the overrides, so they never mix with the plain
# config's. Generator knobs belong in the config's [data.knobs] (they name the data sets).
# MOIRELAB_BIN=<a moirelab binary> uses it instead of building the release binary.
#
# --patch trains on native-resolution crops (data.mode = "patch", 128-px crops of the
# --size images), the mode for screen artifacts at larger sizes. Defaults: configs/fixed.toml,
# the config's own size(s) and mode (a patch config's [data.knobs] size or sizes, else 128
# px; --size replaces both), its own data (its preset and [data.knobs]; 2400 images unless it
# sets a count) and epochs, each layout its data draw and the factors below, out
# bench-out/transfer. Data sets are shared between configs that ask for the same data
# (out/data/<factor>-<size>px-n<count>[-<knob>-<value>...], <128-256>px for several sizes);
# runs and tables are per config and overrides
# (out/runs/<config>[-<overrides>]/, out/transfer-<config>[-<overrides>]-<tag>.md). One
# factor takes about 1.5 minutes with fixed.toml (2400 images) and 9.5 with transfer.toml
# (4800 images, 20 epochs) on 2 CPU cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../env.sh"
moirelab_setup

config="" size="" patch="" count="" epochs="" out="" sets=() set_tag="" factors="" plan_only=""
# Without --factors: each layout the config's data draw (`layouts`, the classic four by
# default), then these.
other_factors="demosaic:bilinear demosaic:malvar resize:area resize:triangle resize:bicubic resize:bilinear \
pitch:0.45-0.6 pitch:1.2-1.8 sensor-scale:1.25-1.5 sensor-scale:2.3-3"
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --patch) patch=1; shift ;;
    --count) count="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --factors) factors="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --plan) plan_only=1; shift ;;
    --set)
      case "${2:-}" in
        *=*) ;;
        *) echo "bench/transfer.sh: --set ${2:-} is not KEY=VALUE" >&2; exit 2 ;;
      esac
      case "$2" in
        data.knobs*|data.root*|data.preset*|data.image-size*|data.mode*|train.epochs*)
          echo "bench/transfer.sh: --set ${2%%=*}: the protocol sets it (use the config's [data.knobs], --size, --patch, --epochs)" >&2
          exit 2 ;;
      esac
      sets+=(--set "$2")
      set_tag="$set_tag-$(printf '%s' "$2" | tr -c 'A-Za-z0-9_\n' '-' | tr -s '-')"
      shift 2 ;;
    *) echo "bench/transfer.sh: unknown argument $1 (see the usage at the top of the file)" >&2; exit 2 ;;
  esac
done

# --config and --out are relative to the caller's folder, as a user expects.
[ -n "$config" ] || config="$MOIRELAB_ROOT/configs/fixed.toml"
if [ ! -f "$config" ]; then
  echo "bench/transfer.sh: config file $config not found" >&2
  exit 2
fi
config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
[ -n "$out" ] || out="$MOIRELAB_ROOT/bench-out/transfer"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stem="$(basename "$config" .toml)$set_tag"
cd "$MOIRELAB_ROOT"
bin="$(moirelab_release_bin)"
# The data the config itself asks for (its preset, image count, photo sides and generator
# knobs, as `train` resolves them: `moirelab data plan`), so that the protocol measures it as
# shipped. Knobs other than the count and the sides name the data sets.
plan="$("$bin" data plan --config "$config" "${sets[@]}" --json)"
mapfile -t data_spec < <(printf '%s' "$plan" | "${MOIRELAB_PYTHON:-python3}" -c '
import json, sys
p = json.load(sys.stdin)
if p["preset"] is None:
    sys.exit("bench/transfer.sh: " + p["config"] + " trains on a data set of its own (no "
             "data.preset); the protocol generates its data sets from a preset")
sides = p["sides"]
print(p["preset"])
print(p["count"])
print(max(sides))
print(1 if p["mode"] == "patch" else 0)
print(",".join(map(str, sides)) if len(sides) > 1 else "")
print(" ".join("layout:" + l for l in p["layouts"]))
for kv in p["knobs"]:
    if kv.split("=", 1)[0] not in ("count", "size", "sizes"):
        print(kv)
')
[ "${#data_spec[@]}" -ge 6 ] || exit 2
[ -n "$factors" ] || factors="${data_spec[5]} $other_factors"
if [ -n "$plan_only" ]; then
  printf '%s\n' $factors
  exit 0
fi
preset="${data_spec[0]}"
[ -n "$count" ] || count="${data_spec[1]}"
# A --size of the caller's own replaces the config's sizes too.
sizes="${data_spec[4]}"
[ -z "$size" ] || sizes=""
[ -n "$size" ] || size="${data_spec[2]}"
[ -n "$patch" ] || patch="${data_spec[3]}"
knob_sets=() knob_tag=""
for kv in "${data_spec[@]:6}"; do
  knob_sets+=(--set "$kv")
  knob_tag="$knob_tag-$(printf '%s' "$kv" | tr '=.,:' '----')"
done
size_tag="${size}px"
if [ -n "$sizes" ]; then
  knob_sets+=(--set "sizes=$sizes")
  size_tag="${sizes//,/-}px"
fi
mode_sets=()
tag="$size_tag-n$count$knob_tag"
if [ "$patch" = 1 ]; then
  mode_sets=(--set 'data.mode="patch"' --set data.image-size=128)
  tag="$size_tag-n$count$knob_tag-patch"
else
  mode_sets=(--set 'data.mode="resize"' --set "data.image-size=$size")
fi
epoch_sets=()
[ -n "$epochs" ] && epoch_sets=(--set "train.epochs=$epochs")
table="$out/transfer-$stem-$tag.md"

# make_data NAME [HOLDOUT]: the config's preset and knobs, with one factor held out when given.
make_data() {
  local data="$out/data/$1"
  if [ ! -f "$data/dataset.json" ]; then
    local hold=()
    [ -n "${2:-}" ] && hold=(--set "holdout=$2")
    "$bin" gen-data --preset "$preset" --count "$count" --size "$size" "${knob_sets[@]}" "${hold[@]}" \
      --out "$data" >&2
  fi
}
# train_on NAME: the config trained on data set NAME (kept when it finished before). The data
# set is the config's own with a factor held out, so the config's knobs are dropped: train
# would otherwise refuse a data set whose knobs (the holdout) differ from them.
train_on() {
  local run="$out/runs/$stem/$1"
  if [ ! -f "$run/summary.json" ]; then
    rm -rf "$run"
    "$bin" train --config "$config" --name "$1" --runs-dir "$out/runs/$stem" \
      --set "data.root=\"$out/data/$1\"" --set 'data.knobs={}' --set gradcam.every=1000 \
      "${epoch_sets[@]}" "${mode_sets[@]}" "${sets[@]}" >&2
  fi
}

# The reference: the same config trained with nothing held out. Its accuracy on each
# held-out test split (the same images) says how hard those images are when the factor
# was seen; the gap to the held-out run is what not having seen the factor costs.
ref="none-$tag"
make_data "$ref"
train_on "$ref"
# Screens split by whether the display left a trace the generator can see (a moiré or band
# mask, docs/SYNTH.md "Masks"): a held-out factor can fail because the detector has not
# seen it, or because its screens show nothing. The two columns tell which.
trace_by='mask-areas.moire-area+mask-areas.bands-area=1'
# A photo out of focus (`defocus-prob`, both classes) shows no grid whatever its class, so a
# config that draws them also gets the accuracy on the photos in focus.
focus_by=()
for kv in "${data_spec[@]:6}"; do
  case "$kv" in
    defocus-prob=0|defocus-prob=0.0) ;;
    defocus-prob=*) focus_by=(--by camera.defocus-px=0.01) ;;
  esac
done
# score RUN DATA OUT_JSON: RUN's best checkpoint on DATA's test split, errors by trace (and
# by focus).
score() {
  "$bin" eval --run "$1" --data "$2" --split test --by "$trace_by" "${focus_by[@]}" --json >"$3"
}
# row LABEL HELD_JSON SEEN_JSON VAL_SUMMARY: one table row from the evals of the run and of
# the reference on the same test split (the same file for the reference row).
row() {
  "${MOIRELAB_PYTHON:-python3}" - "$@" >>"$table.tmp" <<'PY'
import json, sys
label, held, seen, summary = sys.argv[1:5]
def load(path):
    e = json.load(open(path))
    e = e[0] if isinstance(e, list) else e
    rows = {r["value"]: r for r in e["slices"][0]["rows"]}
    caught = lambda v: 1 - rows[v]["apcer"] if v in rows else float("nan")
    # In focus: the photos without a defocus draw (all of them when the config draws none).
    focus = {r["value"]: r for t in e["slices"][1:] for r in t["rows"]}
    sharp = focus["(none)"]["accuracy"] if focus else e["pad"]["accuracy_at_threshold"]
    return e, caught(">= 1"), caught("< 1"), rows.get(">= 1", {}).get("attacks", 0), sharp
h, h_on, h_off, n_on, h_sharp = load(held)
s, s_on, s_off, _, s_sharp = load(seen)
gap = "–" if held == seen else f"{h['accuracy'] - s['accuracy']:+.3f}"
attacks = sum(r["attacks"] for r in h["slices"][0]["rows"])
val = json.load(open(summary))["val"]["balanced_accuracy"]
f3 = lambda x: "–" if x is None or x != x else f"{x:.3f}"
share = f"{n_on / attacks:.2f}" if attacks else "–"
print(f"| {label} | {h['n']} | {h['accuracy']:.3f} | {f3(h['pad']['auc'])} | {s['accuracy']:.3f} | "
      f"{gap} | {share} | {f3(h_on)} / {f3(s_on)} | {f3(h_off)} / {f3(s_off)} | "
      f"{f3(h['pad']['bpcer'])} / {f3(s['pad']['bpcer'])} | {f3(h_sharp)} / {f3(s_sharp)} | "
      f"{val:.3f} |")
PY
}
{
  echo "| held-out factor | test n | accuracy | AUC | seen: accuracy | gap | screens with a trace | caught at thr., with a trace: held out / seen | caught without a trace: held out / seen | BPCER: held out / seen | acc. at thr., in focus: held out / seen | val bal. acc. |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$table.tmp"
ref_run="$out/runs/$stem/$ref"
score "$ref_run" "$out/data/$ref" "$ref_run/test-by-trace.json"
row "none (reference)" "$ref_run/test-by-trace.json" "$ref_run/test-by-trace.json" "$ref_run/summary.json"
for f in $factors; do
  name="$(printf '%s' "$f" | tr ':.' '--')-$tag"
  make_data "$name" "$f"
  train_on "$name"
  run="$out/runs/$stem/$name"
  score "$run" "$out/data/$name" "$run/test-by-trace.json"
  score "$ref_run" "$out/data/$name" "$run/seen-eval.json"
  row "\`$f\`" "$run/test-by-trace.json" "$run/seen-eval.json" "$run/summary.json"
done
mv "$table.tmp" "$table"
cat "$table"
