#!/usr/bin/env bash
# Runs every benchmark side by side with the tool people use instead; prints ratios.
set -euo pipefail
BUILD="${1:-build}"
cd "$(dirname "$0")/.."
for b in "$BUILD"/*_benchmark; do
  [ -x "$b" ] || continue
  echo "== $b"
  "$b" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
done
[ -x bench/binary_files_vs_cat.sh ] && bash bench/binary_files_vs_cat.sh "$BUILD"
TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/tfrecord_write_vs_tf.py --build "$BUILD"
.venv/bin/python bench/grouped_vs_pandas.py --build "$BUILD"
.venv/bin/python bench/windows_vs_pandas.py --build "$BUILD"
.venv/bin/python bench/windows_vs_pyspark.py --build "$BUILD"
.venv/bin/python bench/score_http_vs_requests.py --build "$BUILD" --delay 0.005
.venv/bin/python bench/score_http_vs_requests.py --build "$BUILD" --delay 0.05
.venv/bin/python bench/score_http_vs_requests.py --build "$BUILD" --delay 0.005 --server mlserver
.venv/bin/python bench/audio_vs_librosa.py --build "$BUILD"
# TorchScript scoring (issue 6): only in a build with the backend (score_benchmark, the
# engine-overhead benchmark, runs in the loop above).
if "$BUILD/dlprep" score --help | grep -q "This build has no TorchScript backend"; then
  echo "== score: skipped (this build has no TorchScript backend)"
else
  .venv/bin/python bench/score_vs_pandas_udf.py --build "$BUILD"
fi
# End-to-end WAV -> predictions (issue 6): needs the TorchScript backend and espeak-ng.
if ! "$BUILD/dlprep" score --help | grep -q "This build has no TorchScript backend" &&
   command -v espeak-ng >/dev/null; then
  PY=.venv/bin/python bash bench/speech_score_e2e.sh "$BUILD"
fi
