#!/usr/bin/env bash
# Score trained runs on a recapture simulation that moirelab's generator did not make
# (scripts/bench/indep_sim.py: its own cards, spatial sub-pixel apertures including a delta
# layout, its own camera and Pillow's JPEG and resize). The held-out protocol (transfer.sh)
# and the shift protocol (shift.sh) vary our own generator; this one asks how much of what a
# run learnt is tied to our implementation. Each run is scored at its own threshold.
#
#   scripts/bench/indep.sh --run RUN [--run RUN ...] [--size 128] [--count 400] [--seed 1]
#                          [--by KEY[=EDGES] ...] [--calibrate DIR [--bpcer R]]
#                          [--adapt-bn scale|all]
#                          [--out DIR]
#
# --by breaks each run's errors down by one of the simulation's draws (`moirelab eval --by`
# on the set's manifest, DATA/indep.jsonl, which carries them as params): lens_sigma,
# full_well, sensor_scale, pitch_sensor, layout, demosaic, resize, sharpen, ... e.g.
# --by layout --by lens_sigma=0.6,1.1 --by pitch_sensor=2,3.
#
# --calibrate DIR adds the accuracy at a threshold fixed on DIR's genuine photos (`moirelab
# eval --calibrate`, at most R of them rejected, default 0.1), e.g. another seed's set
# (bench-out/indep/data/indep-128px-n800-s2-*): a run's score scale moves with the camera
# and the cards, and between training seeds, more than its ranking does (BENCHMARKS.md).
#
# --adapt-bn adds the accuracy with each run's BatchNorm statistics re-estimated on the set's
# own images, unlabelled (`moirelab eval --adapt-bn scale|all`: the variances, or means and
# variances), at its threshold.
#
# The test set (ImageFolder, test split only, half of each class) is rendered once per size,
# count, seed and version of indep_sim.py under --out/data (about 1.5 min for 400 images at
# 128 px, 4 min at 256 px, on 2 cores). Prints a Markdown table and saves it under --out.
# MOIRELAB_BIN=<a moirelab binary> uses it instead of building the release binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
. "$here/../env.sh"
moirelab_setup
moirelab_venv pillow numpy

runs=() size=128 count=400 seed=1 out="" by=() calibrate="" bpcer=0.1 adapt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --run) runs+=("$2"); shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --by) by+=(--by "$2"); shift 2 ;;
    --calibrate) calibrate="$2"; shift 2 ;;
    --bpcer) bpcer="$2"; shift 2 ;;
    --adapt-bn) adapt="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "bench/indep.sh: unknown argument $1 (see the usage at the top of the file)" >&2; exit 2 ;;
  esac
done
if [ "${#runs[@]}" -eq 0 ]; then
  echo "bench/indep.sh: give at least one --run RUN" >&2
  exit 2
fi
for r in "${runs[@]}"; do
  if [ ! -f "$r/config.toml" ]; then
    echo "bench/indep.sh: --run $r: not a run folder (no config.toml)" >&2
    exit 2
  fi
done
[ -n "$out" ] || out="$MOIRELAB_ROOT/bench-out/indep"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="$(moirelab_release_bin)"
py="$MOIRELAB_VENV/bin/python"
version="$(sha1sum "$here/indep_sim.py" | cut -c1-10)"
data="$out/data/indep-${size}px-n$count-s$seed-$version"
if [ ! -f "$data/params.jsonl" ]; then
  rm -rf "$data.tmp"
  "$py" "$here/indep_sim.py" --out "$data.tmp" --size "$size" --count "$count" --seed "$seed" >&2
  mv "$data.tmp" "$data"
fi
# A JSONL manifest of the same images with the simulation's draws as params (for --by).
if [ ! -f "$data/indep.jsonl" ]; then
  "$py" - "$data" <<'PY'
import json, os, sys
d = sys.argv[1]
with open(os.path.join(d, "indep.jsonl.tmp"), "w") as out:
    for line in open(os.path.join(d, "params.jsonl")):
        p = json.loads(line)
        rec = {"path": f"test/{p['label']}/{p['index']:05d}.png", "label": p["label"],
               "split": "test", "params": {k: v for k, v in p.items() if k not in ("index", "label")}}
        out.write(json.dumps(rec) + "\n")
os.replace(os.path.join(d, "indep.jsonl.tmp"), os.path.join(d, "indep.jsonl"))
PY
fi
table="$out/indep-${size}px-n$count-s$seed.md"
{
  echo "Independent simulation: \`$data\` ($count images, ${size} px, seed $seed)"
  echo
  echo "accuracy: argmax; acc@thr, APCER and BPCER at each run's own threshold."
  head="| run | accuracy | acc@thr | AUC | EER | APCER | BPCER | threshold |"
  rule="|---|---|---|---|---|---|---|---|"
  if [ -n "$calibrate" ]; then
    echo "acc@cal (APCER/BPCER): at the threshold where at most $bpcer of the genuine photos of"
    echo "\`$calibrate\` are rejected."
    head="$head acc@cal (APCER/BPCER) |"
    rule="$rule---|"
  fi
  if [ -n "$adapt" ]; then
    echo "adapted: accuracy, acc@thr (APCER/BPCER) and AUC with BatchNorm statistics"
    echo "re-estimated on the set's own images (moirelab eval --adapt-bn $adapt)."
    head="$head adapted acc | adapted acc@thr (APCER/BPCER) | adapted AUC |"
    rule="$rule---|---|---|"
  fi
  echo
  echo "$head"
  echo "$rule"
  for r in "${runs[@]}"; do
    "$bin" eval --run "$r" --data "$data" --split test --json >"$table.json.tmp"
    : >"$table.cal.tmp"
    : >"$table.ada.tmp"
    if [ -n "$calibrate" ]; then
      "$bin" eval --run "$r" --data "$data" --split test --calibrate "$calibrate" \
        --bpcer "$bpcer" --json >"$table.cal.tmp"
    fi
    if [ -n "$adapt" ]; then
      "$bin" eval --run "$r" --data "$data" --split test --adapt-bn "$adapt" --json >"$table.ada.tmp"
    fi
    "$py" - "$table.json.tmp" "$r" "$table.cal.tmp" "$table.ada.tmp" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r = r[0] if isinstance(r, list) else r
p = r["pad"]
row = (f"| `{sys.argv[2]}` | {r['accuracy']:.3f} | {p['accuracy_at_threshold']:.3f} | "
       f"{p['auc']:.3f} | {p['eer']:.3f} | "
       f"{p['apcer']:.3f} | {p['bpcer']:.3f} | {p['threshold']:.4f} |")
text = open(sys.argv[3]).read()
if text.strip():
    c = json.loads(text)
    c = c[0] if isinstance(c, list) else c
    q = c["pad"]
    row += f" {q['accuracy_at_threshold']:.3f} ({q['apcer']:.3f}/{q['bpcer']:.3f}) |"
text = open(sys.argv[4]).read()
if text.strip():
    a = json.loads(text)
    a = a[0] if isinstance(a, list) else a
    q = a["pad"]
    row += (f" {a['accuracy']:.3f} | {q['accuracy_at_threshold']:.3f} "
            f"({q['apcer']:.3f}/{q['bpcer']:.3f}) | {q['auc']:.3f} |")
print(row)
PY
  done
  if [ "${#by[@]}" -gt 0 ]; then
    for r in "${runs[@]}"; do
      echo
      echo "Errors of \`$r\` by the simulation's draws (at its threshold):"
      echo
      echo '```'
      # Only the --by tables: they start at the first line "by KEY on DATA, threshold T".
      "$bin" eval --run "$r" --data "$data/indep.jsonl" --split test "${by[@]}" \
        | sed -n '/^by .* on .*, threshold /,$p'
      echo '```'
    done
  fi
} >"$table.tmp"
rm -f "$table.json.tmp" "$table.cal.tmp" "$table.ada.tmp"
mv "$table.tmp" "$table"
cat "$table"
