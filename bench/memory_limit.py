"""Peak memory of `dlprep windows --memory-limit`: is the limit the process's budget?

Generates churn events with `dlprep gen churn` (by default about 14M events, some
540 MiB as Arrow data: over 4x the 128 MiB limit), then runs the grouped `windows` job
with --memory-limit and --workers 1 and 2, each in its own process, and prints the
limit, the process's peak RSS (getrusage RUSAGE_CHILDREN ru_maxrss of that process
alone: each run is a fresh child of a fresh helper process), wall and CPU seconds,
and the bytes spilled. The goal: peak RSS <= limit + 100 MB. --compare BUILD also
runs another build of dlprep (say, one from before a change) the same way.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20

# Runs one command as a child of a fresh Python process and prints the child's peak
# RSS, wall and CPU time as JSON: RUSAGE_CHILDREN of this helper then covers that one
# child only (ru_maxrss is the largest of the children waited for).
HELPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "cpu": r.ru_utime + r.ru_stime,
                  "peak_rss": r.ru_maxrss * 1024}))
"""


def measure(cmd):
    out = subprocess.run([sys.executable, "-c", HELPER, *cmd], check=True,
                         capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        sys.exit(f"failed ({result['rc']}): {' '.join(cmd)}\n{out.stderr}")
    return result


def windows_cmd(exe, data, out, workers, limit, stats):
    return [exe, "windows", "--events", os.path.join(data, "events"), "--labels",
            os.path.join(data, "labels"), "--key", "customer_id", "--time", "ts",
            "--category", "event_type", "--values", "amount,duration", "--aggs",
            "sum,mean,max", "--window", "14d", "--stride", "7d", "--step", "1d",
            "--horizon", "30d", "--label-time", "churn_ts", "--format", "parquet",
            "--output", out, "--overwrite", "-q", "--workers", str(workers),
            "--memory-limit", limit, "--spill-dir", os.path.dirname(out),
            "--stats", stats]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=21000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--limit-mb", type=int, default=128, help="--memory-limit in MiB")
    ap.add_argument("--runs", type=int, default=3, help="runs per worker count (median)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--compare", help="another build folder to run the same way")
    ap.add_argument("--workdir", help="where data and outputs go (default: a temp dir)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dlprep-memory-bench-", dir=args.workdir)
    try:
        exe = os.path.join(args.build, "dlprep")
        data = os.path.join(work, "churn")
        subprocess.run([exe, "gen", "churn", "--customers", str(args.customers), "--days",
                        str(args.days), "-o", data, "-q"], check=True)
        events = pq.read_table(os.path.join(data, "events"))
        arrow_bytes = events.nbytes
        limit = args.limit_mb * MIB
        print(f"input: {events.num_rows:,} events, {arrow_bytes / MIB:,.0f} MiB as Arrow "
              f"data ({arrow_bytes / limit:.1f}x the limit); --memory-limit "
              f"{args.limit_mb}MiB; goal: peak RSS <= limit + 100 MiB = "
              f"{args.limit_mb + 100} MiB")
        del events
        builds = [("this build", exe)]
        if args.compare:
            builds.append(("compared build", os.path.join(args.compare, "dlprep")))
        ok = True
        for label, binary in builds:
            for workers in (1, 2):
                runs = []
                for i in range(args.runs):
                    out = os.path.join(work, f"out-{workers}")
                    stats_path = os.path.join(work, f"stats-{workers}-{i}.json")
                    runs.append(measure(windows_cmd(binary, data, out, workers,
                                                    f"{args.limit_mb}MiB", stats_path)))
                    with open(stats_path) as f:
                        memory = json.load(f).get("run", {}).get("memory", {})
                    runs[-1]["spilled"] = memory.get("spilled_bytes", 0)
                    runs[-1]["pool"] = memory.get("peak_pool_bytes", 0)
                rss = statistics.median(r["peak_rss"] for r in runs)
                wall = statistics.median(r["wall"] for r in runs)
                cpu = statistics.median(r["cpu"] for r in runs)
                spilled = statistics.median(r["spilled"] for r in runs)
                pool = statistics.median(r["pool"] for r in runs)
                within = rss <= limit + 100 * MIB
                if label == "this build":
                    ok = ok and within
                print(f"{label}, {workers} worker(s): peak RSS {rss / MIB:,.0f} MiB "
                      f"(max {max(r['peak_rss'] for r in runs) / MIB:,.0f}; limit "
                      f"{args.limit_mb} MiB, {'within' if within else 'OVER'} limit + "
                      f"100 MiB), engine pool peak {pool / MIB:,.0f} MiB, wall "
                      f"{wall:.2f} s, CPU {cpu:.2f} s, spilled {spilled / MIB:,.0f} MiB "
                      f"(medians of {args.runs})")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
