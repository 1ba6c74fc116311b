#!/usr/bin/env bash
# `make demo`: generate sample events, convert them to gzip TFRecords, inspect and
# verify them, and read them back with tf.data using the manifest's feature spec.
set -euo pipefail
BUILD="${1:-build}"
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DLPREP="$BUILD/dlprep"

echo "== 1. sample data: demo-data/events (hive-partitioned Parquet)"
rm -rf demo-data/events
$PY scripts/gen_sample.py --output demo-data/events --rows 20000

echo
echo "== 2. dlprep convert -> demo-out/events_tfr (tf.train.Example, GZIP, 2 shards)"
$DLPREP convert --input demo-data/events --output demo-out/events_tfr \
  --compression gzip --shards 2 --overwrite --stats demo-out/convert_stats.json

echo
echo "== 3. dlprep inspect --verify"
$DLPREP inspect demo-out/events_tfr --head 2 --width 160 --verify -q

echo
echo "== 4. read it from TensorFlow (the manifest gives the feature spec)"
cat <<'PYEOF' | tee demo-out/read_with_tf.py
import sys; sys.path.insert(0, "python")
import dlprep.tfrecord as dt
ds = dt.dataset("demo-out/events_tfr", batch_size=256)
batch = next(iter(ds))
print({k: (v.dtype.name, tuple(v.shape)) for k, v in sorted(batch.items())
       if not hasattr(v, "indices")})
print("history of the first row, shape [8, 4]:\n", batch["history"][0].numpy())
print("rows:", sum(int(b["customer_id"].shape[0]) for b in ds))
PYEOF
TF_CPP_MIN_LOG_LEVEL=2 $PY demo-out/read_with_tf.py

echo
echo "== 5. the churn pipeline: synthetic events -> 14-day windows -> TFRecord"
$DLPREP gen churn --customers 2000 --days 90 --output demo-data/churn --overwrite
$DLPREP windows --events demo-data/churn/events --labels demo-data/churn/labels \
  --key customer_id --time ts --category event_type --values amount,duration \
  --aggs sum,mean,max --window 14d --stride 7d --step 1d --horizon 30d \
  --label-time churn_ts --output demo-out/churn_windows --overwrite --memory-limit 1GB
TF_CPP_MIN_LOG_LEVEL=2 $PY - <<'PYEOF'
import sys; sys.path.insert(0, "python")
import dlprep.tfrecord as dt
ds = dt.dataset("demo-out/churn_windows", batch_size=512)
n = pos = 0
for b in ds:
    n += int(b["label"].shape[0]); pos += int(b["label"].numpy().sum())
print(f"windows: {n}, churn labels: {pos}, features per window:",
      tuple(next(iter(ds))["features"].shape[1:]))
PYEOF

echo
echo "== 6. the speech pipeline: espeak-ng words -> log-mel + MFCC, 2 noisy copies each -> TFRecord"
rm -rf demo-data/speech
$PY scripts/gen_speech.py --output demo-data/speech
$DLPREP audio --input 'demo-data/speech/speech/**/*.wav' --clip-seconds 1 --mfcc 13 \
  --label-regex '([^/]+)/[^/]+$' --noise demo-data/speech/noise --copies 2 --snr-db 5:20 \
  --seed 42 --output demo-out/speech --overwrite --errors demo-out/speech_errors.jsonl
TF_CPP_MIN_LOG_LEVEL=2 $PY - <<'PYEOF'
import collections, sys; sys.path.insert(0, "python")
import dlprep.tfrecord as dt
ds = dt.dataset("demo-out/speech", batch_size=64)
b = next(iter(ds))
print("log_mel", tuple(b["log_mel"].shape[1:]), "mfcc", tuple(b["mfcc"].shape[1:]))
labels = collections.Counter(x.decode() for b in ds for x in b["label"].numpy())
print("rows per label (original + 2 noisy copies):", dict(sorted(labels.items())))
PYEOF

echo
echo "== 7. batch inference: train a tiny keyword model, score held-out WAVs with dlprep score"
if "$DLPREP" score --help | grep -q "This build has no TorchScript backend"; then
  echo "skipped: this build has no TorchScript backend (Debian: libtorch-dev)"
elif ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "skipped: /usr/bin/python3 has no torch (Debian: python3-torch)"
else
  BUILD="$(cd "$BUILD" && pwd)" PY="$(pwd)/$PY" bash examples/speech/run.sh
fi

echo
echo "== 8. batch inference through a model server: MLServer serves a churn model, dlprep score-http scores every window"
if [ ! -x .venv-mlserver/bin/mlserver ]; then
  echo "skipped: .venv-mlserver is not installed (scripts/setup.sh makes it unless DLPREP_SKIP_MLSERVER=1)"
else
  BUILD="$(cd "$BUILD" && pwd)" PY="$(pwd)/$PY" bash examples/mlserver/run.sh
fi

echo
echo "== 9. the churn windows on Spark (local[2]): dlprep.spark.windows -> TFRecord, committed on the driver"
if [ ! -x .venv-pkg/bin/python ] ||
   ! .venv-pkg/bin/python -c "import pyspark, dlprep.spark" 2>/dev/null; then
  echo "skipped: .venv-pkg with pyspark and the dlprep wheel is not installed (make pytest-pkg)"
elif ! command -v java >/dev/null && [ -z "${JAVA_HOME:-}" ]; then
  echo "skipped: Spark needs Java 17"
else
  SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" PYSPARK_PYTHON="$(pwd)/.venv-pkg/bin/python" \
    .venv-pkg/bin/python examples/spark/churn_windows.py demo-out/spark_churn --customers 400
fi

echo
echo "Output: $(pwd)/demo-out/events_tfr (_manifest.json lists files, rows and feature spec)"
echo "        $(pwd)/demo-out/churn_windows (one row per customer window)"
echo "        $(pwd)/demo-out/speech (one row per clip and noisy copy: log_mel [101, 64], mfcc [101, 13])"
echo "        $(pwd)/examples/speech/out (the keyword model and its predictions)"
echo "        $(pwd)/examples/mlserver/out/scores (churn probabilities served by MLServer)"
echo "        $(pwd)/demo-out/spark_churn/windows (the churn windows written by Spark)"
echo "Read it in your own code with python/dlprep/tfrecord.py, as in demo-out/read_with_tf.py."
