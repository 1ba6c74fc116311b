"""HTTP batch inference: `dlprep score-http` vs the talk's pandas UDF with `requests`.

All three clients score the same Parquet rows (id, features: 16 float32) against the
same local model server on 127.0.0.1, started here as a separate process, with the same
protocol: the talk's JSON records (pandas `to_json(orient='records')` -> a JSON array
back). --server python: tests/python/model_server.py, a multi-threaded Python server;
--server mlserver: MLServer 1.7.1 (uvicorn, asyncio; from .venv-mlserver) serving
bench/mlserver_records_model.py on a custom /records endpoint.
`--delay` seconds per request model the inference latency, so concurrency matters
the way it does against a real model server.

  * pandas UDF, sequential: per batch of --batch-size rows, df.to_json(orient=
    'records'), requests.Session().post(...), pd.DataFrame(r.json())["score"],
    one request at a time (the talk's version, with a keep-alive session).
  * the same UDF over a ThreadPoolExecutor(--concurrency) (one session per thread,
    results kept in order).
  * dlprep score-http --protocol records --concurrency C --workers 1.

Each run reads the Parquet input and writes the scores to Parquet. Reported: rows/s
(median of --repeat runs) and client CPU per request (user+sys of the client process:
time.process_time() for pandas, getrusage(RUSAGE_CHILDREN) for the dlprep process;
the server runs in its own process and is not counted). Outputs are compared value by
value before anything is printed.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_input(path, rows, dim, row_group):
    rng = np.random.default_rng(0)
    f = rng.standard_normal((rows, dim)).astype(np.float32)
    t = pa.table({"id": pa.array(np.arange(rows), pa.int64()),
                  "features": pa.array(list(f), pa.list_(pa.float32()))})
    os.makedirs(path, exist_ok=True)
    pq.write_table(t, os.path.join(path, "in.parquet"), row_group_size=row_group)
    return f


def pandas_udf_run(url, in_dir, out_path, batch_size, threads):
    import pandas as pd
    import requests

    df = pq.read_table(in_dir).to_pandas()
    local = __import__("threading").local()

    def session():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def score(batch):  # the pandas UDF body
        r = session().post(url, data=batch[["features"]].to_json(orient="records"),
                           headers={"Content-Type": "application/json"}, timeout=30)
        r.raise_for_status()
        return pd.DataFrame(r.json())["score"]

    batches = [df.iloc[i:i + batch_size] for i in range(0, len(df), batch_size)]
    if threads <= 1:
        scores = [score(b) for b in batches]
    else:
        with ThreadPoolExecutor(threads) as pool:
            scores = list(pool.map(score, batches))
    df["score"] = pd.concat(scores, ignore_index=True).to_numpy()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), out_path)
    return len(batches)


def start_python_server(delay, tmp):
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "python", "model_server.py"),
         "--delay", str(delay)], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    return server, f"http://127.0.0.1:{port}/records"


def start_mlserver(delay, tmp):
    import socket
    import urllib.request
    mlserver = os.path.join(ROOT, ".venv-mlserver", "bin", "mlserver")
    if not os.path.exists(mlserver):
        sys.exit(f"{mlserver} is missing: run scripts/setup.sh")
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, "records"))
    shutil.copy(os.path.join(ROOT, "bench", "mlserver_records_model.py"), repo)
    socks = [socket.socket() for _ in range(3)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    http_port, grpc_port, metrics_port = (s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()
    with open(os.path.join(repo, "settings.json"), "w") as f:
        json.dump({"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
                   "metrics_port": metrics_port, "parallel_workers": 0, "debug": False,
                   "metrics_dir": os.path.join(repo, ".metrics")}, f)
    with open(os.path.join(repo, "records", "model-settings.json"), "w") as f:
        json.dump({"name": "records",
                   "implementation": "mlserver_records_model.Records"}, f)
    log = open(os.path.join(tmp, "mlserver.log"), "w")
    server = subprocess.Popen([mlserver, "start", repo], cwd=repo, stdout=log,
                              stderr=subprocess.STDOUT,
                              env=dict(os.environ, DLPREP_BENCH_DELAY=str(delay)))
    base = f"http://127.0.0.1:{http_port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(base + "/v2/models/records/ready", timeout=1)
            return server, base + "/records"
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.25)
    server.terminate()
    sys.exit("mlserver did not start; see " + log.name)


def timed_python(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    requests_sent = fn()
    return time.perf_counter() - t0, time.process_time() - c0, requests_sent


def timed_dlprep(args):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--delay", type=float, default=0.005,
                    help="server seconds per request (modelled inference latency)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--server", choices=["python", "mlserver"], default="python",
                    help="the model server: tests/python/model_server.py or MLServer")
    a = ap.parse_args()
    exe = os.path.join(a.build, "dlprep")
    import pandas  # noqa: F401  (imported before timing)
    import requests  # noqa: F401
    tmp = tempfile.mkdtemp(prefix="dlprep-bench-http-")
    start = start_python_server if a.server == "python" else start_mlserver
    server, url = start(a.delay, tmp)
    try:
        in_dir = os.path.join(tmp, "in")
        f = make_input(in_dir, a.rows, a.dim, row_group=4096)
        want = 0.5 * f.astype(np.float64).sum(1)
        n_requests = -(-a.rows // a.batch_size)
        results = {}

        def record(name, wall, cpu, out_path):
            got = pq.read_table(out_path).column("score").to_numpy()
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
            results.setdefault(name, []).append((wall, cpu))

        for rep in range(a.repeat):
            out = os.path.join(tmp, f"seq{rep}.parquet")
            wall, cpu, _ = timed_python(
                lambda: pandas_udf_run(url, in_dir, out, a.batch_size, 1))
            record("pandas UDF + requests, sequential", wall, cpu, out)
            out = os.path.join(tmp, f"pool{rep}.parquet")
            wall, cpu, _ = timed_python(
                lambda: pandas_udf_run(url, in_dir, out, a.batch_size, a.concurrency))
            record(f"pandas UDF + requests, {a.concurrency} threads", wall, cpu, out)
            out = os.path.join(tmp, f"dlprep{rep}")
            wall, cpu = timed_dlprep(
                [exe, "score-http", "--url", url, "--protocol", "records", "--input", in_dir,
                 "--model-input", "features", "--outputs", "score:float64", "--batch-size",
                 str(a.batch_size), "--concurrency", str(a.concurrency), "--workers", "1",
                 "--output", out, "--format", "parquet", "--quiet"])
            record(f"dlprep score-http, concurrency {a.concurrency}", wall, cpu, out)

        print(f"score-http benchmark: {a.rows} rows x {a.dim} float32, batch {a.batch_size} "
              f"({n_requests} requests), {a.server} server, delay "
              f"{a.delay * 1000:.1f} ms/request, median of {a.repeat}")
        med = {}
        for name, runs in results.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            med[name] = (a.rows / wall, cpu / n_requests * 1000)
            print(f"  {name:45s} {a.rows / wall:10.0f} rows/s  "
                  f"{cpu / n_requests * 1000:7.3f} ms client CPU/request")
        names = list(med)
        d = med[names[2]]
        for other in names[:2]:
            o = med[other]
            print(f"  dlprep vs {other}: {d[0] / o[0]:.1f}x rows/s, "
                  f"{o[1] / d[1]:.1f}x less client CPU per request")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
