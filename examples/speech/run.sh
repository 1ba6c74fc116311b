#!/usr/bin/env bash
# The speech example of issue 6, end to end, in about ten seconds:
#   1. synthesize labelled keyword clips (espeak-ng; scripts/gen_speech.py),
#   2. featurize them with `dlprep audio` (log-mel, plus noisy copies for training),
#   3. split by speaker and train a tiny 1-D CNN in Python (Debian's torch), export TorchScript,
#   4. score the held-out speaker's clips with `dlprep score`, print the accuracy,
#   5. `dlprep run score.yaml`: WAV -> features -> predictions in one pass, accuracy again.
# Environment: ROOT (the dlprep checkout; default ../..), BUILD (default build/), PY (a
# Python with pyarrow, soundfile and soxr; default .venv/bin/python), TORCH_PY (a Python
# with torch; default /usr/bin/python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${ROOT:-$(cd "$here/../.." && pwd)}"
BUILD="${BUILD:-$root/build}"
PY="${PY:-$root/.venv/bin/python}"
TORCH_PY="${TORCH_PY:-/usr/bin/python3}"
dlprep="$BUILD/dlprep"
data="$here/data"
out="$here/out"

if [ ! -d "$data/speech" ]; then
  "$PY" "$root/scripts/gen_speech.py" --output "$data" --sample-rate 16000 \
    --speeds 110,140,170,200 >/dev/null
fi
mkdir -p "$out"
"$dlprep" audio -i "$data/speech/**/*.wav" --sample-rate 16000 --clip-seconds 1 \
  --n-mels 40 --label-regex '([^/]+)/[^/]+$' --noise "$data/noise" --copies 2 --seed 42 \
  -o "$out/features" --format parquet --overwrite --quiet
"$PY" "$here/split.py" "$out/features" "$out/split" --test-voice en-us_f2
"$TORCH_PY" "$here/train.py" "$out/split" "$out/model.pt"
"$dlprep" score --model "$out/model.pt" -i "$out/split/test" --model-input log_mel --argmax \
  --keep path,label -o "$out/scores" --format parquet --overwrite
"$PY" "$here/accuracy.py" "$out/scores" "$out/split/labels.txt"
"$dlprep" run "$here/score.yaml" --workers 2
"$PY" "$here/accuracy.py" "$out/predictions" "$out/split/labels.txt"
