#!/usr/bin/env bash
# End-to-end WAV -> predictions throughput (issue 6, benchmark c): `dlprep run` with the
# audio step (decode, resample to 16 kHz, log-mel) and the score step (the speech
# example's keyword CNN) in one pass, on 1 and 2 workers; medians of 3 runs and the
# speed-up. Needs the model of examples/speech (made here by examples/speech/run.sh when
# missing). No Python side here: bench/score_vs_pandas_udf.py compares the scoring part,
# and the audio helper's benchmark the featurization part.
#   bash bench/speech_score_e2e.sh [BUILD] [COPIES]
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
COPIES="${2:-40}"
root="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$root/.venv/bin/python}"
model="$root/examples/speech/out/model.pt"
if [ ! -f "$model" ]; then
  BUILD="$BUILD" PY="$PY" bash "$root/examples/speech/run.sh" >/dev/null
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" "$root/scripts/gen_speech.py" --output "$tmp/data" --sample-rate 16000 \
  --copies "$COPIES" >/dev/null
files=$(find "$tmp/data/speech" -name '*.wav' | wc -l)
cat > "$tmp/p.yaml" <<YAML
source: {format: binary, paths: ['data/speech/**/*.wav'], files_per_partition: 64}
steps:
  - audio: {sample_rate: 16000, clip_seconds: 1, n_mels: 40, label_regex: '([^/]+)/[^/]+\$'}
  - score: {model: $model, columns: [log_mel], batch_size: 64, argmax: true, keep: [path, label],
           threads_per_worker: 1}
sink: {format: parquet, path: out, overwrite: true}
YAML
declare -A med run
for w in 1 2; do
  times=()
  runs=()
  for rep in 1 2 3; do
    t0=$(date +%s.%N)
    "$BUILD/dlprep" run "$tmp/p.yaml" --workers "$w" --quiet --stats "$tmp/stats.json"
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc -l)")
    runs+=("$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"]["wall_seconds"])' "$tmp/stats.json")")
  done
  med[$w]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
  run[$w]=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
  printf '  %d worker(s): median %.2f s whole process (%.0f files/s), %.2f s in the pipeline (%.0f files/s; the rest is start-up: loading libtorch and the model)\n' \
    "$w" "${med[$w]}" "$(echo "$files / ${med[$w]}" | bc -l)" "${run[$w]}" \
    "$(echo "$files / ${run[$w]}" | bc -l)"
done
printf 'speech_score_e2e: %d WAV files (1 s, 16 kHz) -> log-mel -> keyword CNN: 2 workers %.2fx faster than 1 (pipeline time; %.2fx whole process)\n' \
  "$files" "$(echo "${run[1]} / ${run[2]}" | bc -l)" "$(echo "${med[1]} / ${med[2]}" | bc -l)"
