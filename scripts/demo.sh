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
echo "Output: $(pwd)/demo-out/events_tfr (_manifest.json lists files, rows and feature spec)"
echo "        $(pwd)/demo-out/churn_windows (one row per customer window)"
echo "Read it in your own code with python/dlprep/tfrecord.py, as in demo-out/read_with_tf.py."
