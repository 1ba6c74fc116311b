#!/usr/bin/env bash
# Batch scoring through a model server, end to end, in about fifteen seconds:
#   1. churn windows: `dlprep gen churn` -> `dlprep windows` (Parquet),
#   2. train a logistic-regression churn model with NumPy (train.py),
#   3. serve it with MLServer (a real KServe V2 / Open Inference Protocol server from
#      PyPI; runtime in models.py) on 127.0.0.1,
#   4. score every window through it with `dlprep score-http`,
#   5. check the served scores against the model computed locally and print the
#      held-out AUC (check.py); the server is stopped on exit.
# Environment: ROOT (the dlprep checkout; default ../..), BUILD (default build/), PY (a
# Python with pyarrow and numpy; default .venv/bin/python), MLSERVER (default
# .venv-mlserver/bin/mlserver, made by scripts/setup.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${ROOT:-$(cd "$here/../.." && pwd)}"
BUILD="${BUILD:-$root/build}"
PY="${PY:-$root/.venv/bin/python}"
MLSERVER="${MLSERVER:-$root/.venv-mlserver/bin/mlserver}"
dlprep="$BUILD/dlprep"
out="$here/out"
mkdir -p "$out"

"$dlprep" gen churn --customers 2000 --days 120 --output "$out/churn" --overwrite --quiet
"$dlprep" windows --events "$out/churn/events" --labels "$out/churn/labels" \
  --key customer_id --time ts --category event_type --values amount,duration \
  --aggs sum,mean,max --window 14d --stride 7d --step 1d --horizon 30d \
  --label-time churn_ts --format parquet --output "$out/windows" --overwrite --quiet
windows="$out/windows"

# The model repository MLServer serves: settings.json (127.0.0.1, free ports, no
# worker processes) and one folder per model with model-settings.json.
repo="$out/repo"
rm -rf "$repo"
mkdir -p "$repo/churn"
cp "$here/models.py" "$here/churn_model.py" "$repo/"
(cd "$here" && "$PY" train.py "$windows" "$repo/churn/weights.npz")
read -r http_port grpc_port metrics_port < <("$PY" - <<'PYEOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PYEOF
)
cat > "$repo/settings.json" <<JSON
{"host": "127.0.0.1", "http_port": $http_port, "grpc_port": $grpc_port,
 "metrics_port": $metrics_port, "parallel_workers": 0, "debug": false,
 "metrics_dir": "$repo/.metrics", "environments_dir": "$repo/.envs"}
JSON
cat > "$repo/churn/model-settings.json" <<JSON
{"name": "churn", "implementation": "models.ChurnLogistic",
 "parameters": {"uri": "./weights.npz"}}
JSON

"$MLSERVER" start "$repo" > "$out/mlserver.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
base="http://127.0.0.1:$http_port"
for _ in $(seq 240); do
  if "$PY" -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=1)" \
      "$base/v2/models/churn/ready" 2>/dev/null; then
    break
  fi
  if ! kill -0 $server 2>/dev/null; then
    echo "mlserver exited; its log:" >&2
    tail -20 "$out/mlserver.log" >&2
    exit 1
  fi
  sleep 0.25
done
echo "MLServer serves the churn model at $base/v2/models/churn/infer"

"$dlprep" score-http --url "$base/v2/models/churn/infer" --protocol kserve-v2 \
  --input "$windows" --model-input features --outputs churn_probability:float64 \
  --batch-size 256 --concurrency 4 --output "$out/scores" --format parquet --overwrite \
  --errors "$out/score_errors.jsonl" --stats "$out/score_stats.json"
(cd "$here" && "$PY" check.py "$out/scores" "$repo/churn/weights.npz")
