"""What the Python API costs over the command: the churn windows job both ways.

Generates churn events with `dlprep gen churn`, then runs the same featurization

* as the command: `dlprep windows --events ... --output ...` (a subprocess);
* in process: `dlprep.read_parquet(...).windows(...).write_tfrecord(...)`;
* as a fresh Python process running the in-process version (interpreter start-up and
  `import dlprep` included: what a script pays over the command);

alternately, --runs times each, and prints the median wall and CPU time of each
(CPU: getrusage RUSAGE_CHILDREN for subprocesses, RUSAGE_SELF in process; user +
system, all threads) and the ratios to the command. The outputs must be byte-identical.

Run it with the Python that has the dlprep wheel installed (the `dlprep` command beside
it is the wheel's):

    .venv-pkg/bin/python bench/python_api_overhead.py --customers 3000 --days 365
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import dlprep

WINDOWS = dict(key="customer_id", time="ts", category="event_type",
               values=["amount", "duration"], aggs=["sum", "mean", "max"],
               window="14d", stride="7d", step="1d", horizon="30d")

IN_PROCESS = """
import sys, dlprep
events, labels, out, workers = sys.argv[1:5]
dlprep.read_parquet(events).windows(labels=dlprep.read_parquet(labels),
    label_time="churn_ts", **{windows!r}).write_tfrecord(out, overwrite=True,
    workers=int(workers))
"""


def cli_args(events, labels, out, workers):
    w = WINDOWS
    return ["windows", "--events", events, "--labels", labels, "--key", w["key"],
            "--time", w["time"], "--category", w["category"],
            "--values", ",".join(w["values"]), "--aggs", ",".join(w["aggs"]),
            "--window", w["window"], "--stride", w["stride"], "--step", w["step"],
            "--horizon", w["horizon"], "--label-time", "churn_ts", "--output", out,
            "--overwrite", "--workers", str(workers)]


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def timed_child(cmd):
    c0, t0 = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, cpu(resource.RUSAGE_CHILDREN) - c0


def timed_self(fn):
    c0, t0 = cpu(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu(resource.RUSAGE_SELF) - c0


def data_bytes(folder):
    import json
    with open(os.path.join(folder, "_manifest.json")) as f:
        m = json.load(f)
    out = []
    for e in m["files"]:
        with open(os.path.join(folder, e["name"]), "rb") as f:
            out.append(f.read())
    return m["rows"], out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "dlprep")
    if not os.path.exists(exe):
        exe = shutil.which("dlprep")
    work = tempfile.mkdtemp(prefix="dlprep-api-bench-")
    try:
        data = os.path.join(work, "data")
        subprocess.run([exe, "gen", "churn", "--customers", str(args.customers), "--days",
                        str(args.days), "--output", data], check=True)
        events, labels = os.path.join(data, "events"), os.path.join(data, "labels")
        outs = {k: os.path.join(work, k) for k in ("cli", "python", "script")}
        script = IN_PROCESS.format(windows=WINDOWS)

        def in_process():
            ds = dlprep.read_parquet(events).windows(
                labels=dlprep.read_parquet(labels), label_time="churn_ts", **WINDOWS)
            ds.write_tfrecord(outs["python"], overwrite=True, workers=args.workers)

        runs = {"cli": [], "python": [], "script": []}
        for _ in range(args.runs):  # alternated, so drift on a shared machine hits all
            runs["cli"].append(timed_child(
                [exe, *cli_args(events, labels, outs["cli"], args.workers)]))
            runs["python"].append(timed_self(in_process))
            runs["script"].append(timed_child(
                [sys.executable, "-c", script, events, labels, outs["script"],
                 str(args.workers)]))

        rows, want = data_bytes(outs["cli"])
        for k in ("python", "script"):
            assert data_bytes(outs[k]) == (rows, want), f"{k}: output differs from the CLI's"
        print(f"churn windows: {args.customers} customers x {args.days} days -> {rows} "
              f"windows, workers={args.workers}, median of {args.runs} runs; outputs "
              "byte-identical")
        cli_wall = statistics.median(w for w, _ in runs["cli"])
        cli_cpu = statistics.median(c for _, c in runs["cli"])
        names = {"cli": "dlprep windows (command)",
                 "python": "ds.windows().write_tfrecord() (in process)",
                 "script": "python -c '<same>' (fresh process)"}
        print(f"{'':44s} {'wall s':>8s} {'cpu s':>8s} {'wall/cmd':>9s} {'cpu/cmd':>8s}")
        for k, name in names.items():
            wall = statistics.median(w for w, _ in runs[k])
            c = statistics.median(c for _, c in runs[k])
            print(f"{name:44s} {wall:8.3f} {c:8.3f} {wall / cli_wall:9.3f} "
                  f"{c / cli_cpu:8.3f}")
        print("runs (wall s, cpu s):", {k: [(round(w, 3), round(c, 3)) for w, c in v]
                                       for k, v in runs.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
