#!/usr/bin/env bash
# Whole-process timings of the descriptor extractors: `emobridge features` (one thread) against
# SMILExtract 3.0, alternating sides in one run, on synthetic inputs this script generates:
#   (a) a folder of short clips, speech-like and music-like, at 8, 16, 22.05, 44.1 and 48 kHz;
#   (b) single 44.1 kHz stereo files of 3 and 60 minutes.
# Cases (--cases, default "egemaps compare"): `egemaps` eGeMAPS v02 functionals, `compare`
# ComParE-2016 LLDs + deltas, `comparefunc` the 6,373 ComParE-2016 functionals. Each measurement is one
# `/usr/bin/time -v` process tree (wall time and peak RSS): emobridge gets all files of a group
# in one process (its normal use), SMILExtract one process per file (its normal use) run from
# one shell loop. Prints every run, then per group and case the median wall time and peak RSS of
# each side and the ratios (SMILExtract / emobridge for time, emobridge / SMILExtract for RSS).
#
#   tools/bench/descriptors.sh --smilextract PATH/SMILExtract --config-dir PATH/opensmile/core/config \
#       [--rounds 3] [--short-s 5] [--long-min "3 60"] [--work DIR] [--python python3] \
#       [--cases "egemaps compare comparefunc"]
#
# SMILExtract: the `opensmile==1.0.1` wheel ships it (opensmile/core/bin/linux/SMILExtract), the
# configs come from `opensmile==2.6.0` (opensmile/core/config); e.g. `pip download
# opensmile==1.0.1 --no-deps` and unzip. The generator needs Python 3 with numpy. Run it alone on
# a quiet machine: absolute times vary with load, the ratios less.
set -euo pipefail
SMIL="" CONF="" ROUNDS=3 SHORT_S=5 LONG_MIN="3 60" WORK="" PY=${PYTHON:-python3} CASES="egemaps compare"
while [ $# -gt 0 ]; do
  case "$1" in
    --smilextract) SMIL=$2; shift 2 ;;
    --config-dir) CONF=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --short-s) SHORT_S=$2; shift 2 ;;
    --long-min) LONG_MIN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$SMIL" ] || { echo "--smilextract PATH to an executable SMILExtract is required" >&2; exit 2; }
[ -f "$CONF/egemaps/v02/eGeMAPSv02.conf" ] || { echo "--config-dir PATH/opensmile/core/config is required" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time (Debian package 'time') is required" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK/out"
(cd "$ROOT" && cargo build --release -q -p emobridge-cli)
EMO="$TARGET/release/emobridge"

# shellcheck disable=SC2086
"$PY" "$ROOT/tools/bench/descriptors_audio.py" "$WORK/in" --short-s "$SHORT_S" --long-min $LONG_MIN
GROUPS_=("short")
for m in $LONG_MIN; do GROUPS_+=("long_${m}min_44k_stereo"); done
files_of() { # group -> file list
  if [ "$1" = short ]; then ls "$WORK"/in/short/*.wav; else echo "$WORK/in/$1.wav"; fi
}

# one measured process tree: prints "wall_s rss_kb"
measure() {
  local log="$WORK/time.log"
  /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$WORK/stderr.log" || {
    echo "failed: $*" >&2; cat "$WORK/stderr.log" >&2; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
                for (i = 1; i <= n; i++) s = s * 60 + p[i]; wall = s }
              /Maximum resident set size/ { rss = $2 }
              END { printf "%.3f %d\n", wall, rss }' "$log"
}

run_side() { # side case group
  local side=$1 case=$2 group=$3
  mapfile -t files < <(files_of "$group")
  if [ "$side" = emobridge ]; then
    if [ "$case" = egemaps ]; then
      measure "$EMO" features --set egemaps --level functionals --threads 1 --out "$WORK/out/e.csv" "${files[@]}"
    elif [ "$case" = comparefunc ]; then
      measure "$EMO" features --set compare --level functionals --threads 1 --out "$WORK/out/e.csv" "${files[@]}"
    else
      measure "$EMO" features --set compare --level lld --threads 1 --out "$WORK/out/e.csv" "${files[@]}"
    fi
  else
    local script="$WORK/smil_${case}.sh"
    if [ "$case" = egemaps ]; then
      cat >"$script" <<EOS
for f in "\$@"; do rm -f "$WORK/out/s.csv"
  "$SMIL" -C "$CONF/egemaps/v02/eGeMAPSv02.conf" -source "$CONF/shared/standard_wave_input.conf.inc" \
    -sink "$CONF/shared/standard_data_output_no_lld_de.conf.inc" -I "\$f" -func_csv_output "$WORK/out/s.csv" -l 0 || exit 1
done
EOS
    elif [ "$case" = comparefunc ]; then
      cat >"$script" <<EOS
for f in "\$@"; do rm -f "$WORK/out/s.csv"
  "$SMIL" -C "$CONF/compare/ComParE_2016.conf" -source "$CONF/shared/standard_wave_input.conf.inc" \
    -sink "$CONF/shared/standard_data_output.conf.inc" -I "\$f" -func_csv_output "$WORK/out/s.csv" -l 0 || exit 1
done
EOS
    else
      cat >"$script" <<EOS
for f in "\$@"; do rm -f "$WORK/out/l.csv" "$WORK/out/d.csv"
  "$SMIL" -C "$CONF/compare/ComParE_2016.conf" -source "$CONF/shared/standard_wave_input.conf.inc" \
    -sink "$CONF/shared/standard_data_output.conf.inc" -I "\$f" -lld_csv_output "$WORK/out/l.csv" \
    -lld_de_csv_output "$WORK/out/d.csv" -l 0 || exit 1
done
EOS
    fi
    measure bash "$script" "${files[@]}"
  fi
}

RESULTS="$WORK/results.tsv"
printf "round\tcase\tgroup\tside\twall_s\tpeak_rss_kb\n" >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for case in $CASES; do
    for group in "${GROUPS_[@]}"; do
      # alternate which side goes first from round to round
      if [ $((round % 2)) -eq 1 ]; then sides="emobridge smilextract"; else sides="smilextract emobridge"; fi
      for side in $sides; do
        read -r wall rss < <(run_side "$side" "$case" "$group")
        printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$case" "$group" "$side" "$wall" "$rss" | tee -a "$RESULTS"
      done
    done
  done
done

echo
echo "medians over $ROUNDS round(s); speed = SMILExtract wall / emobridge wall, memory = emobridge RSS / SMILExtract RSS"
"$PY" - "$RESULTS" <<'EOP'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
keys = sorted({(r["case"], r["group"]) for r in rows})
print(f"{'case':8} {'group':28} {'emobridge s':>11} {'SMILExtract s':>13} {'speed':>7} {'emo RSS MB':>10} {'SMIL RSS MB':>11} {'memory':>7}")
for case, group in keys:
    m = {}
    for side in ("emobridge", "smilextract"):
        sel = [r for r in rows if (r["case"], r["group"], r["side"]) == (case, group, side)]
        m[side] = (statistics.median(float(r["wall_s"]) for r in sel),
                   statistics.median(int(r["peak_rss_kb"]) for r in sel) / 1024)
    (ew, er), (sw, sr) = m["emobridge"], m["smilextract"]
    print(f"{case:8} {group:28} {ew:11.2f} {sw:13.2f} {sw / ew:6.2f}x {er:10.1f} {sr:11.1f} {er / sr:6.2f}x")
EOP
echo "raw runs: $RESULTS"
