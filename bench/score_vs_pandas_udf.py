"""dlprep score vs the scalar-iterator pandas UDF pattern (issue 6, benchmark b).

Same TorchScript models (made with Debian's torch 1.13): `mlp`, 1280 -> 256 -> 10 over
[40, 32] inputs, where libtorch's compute dominates, and `tiny`, one 1280 -> 10 layer,
where moving the data dominates), same Parquet input, same output (scores + prediction as Parquet),
same thread budget: dlprep with --workers W --threads-per-worker 1 against W processes
of the UDF pattern (bench/torch/pandas_udf_score.py, as W Spark Python workers: one
torch thread each, the input files dealt round-robin), for W = 1, 2. The input is 8
Parquet files so both sides can use W workers.
Both times are whole processes: reading the input, the model, writing Parquet. Outputs
are compared value by value. Prints medians and ratios.

The UDF side needs torch + pyarrow + pandas in one Python; Debian's torch is in
/usr/bin/python3, pyarrow only in pip, so this script makes .venv-torch
(python3 -m venv --system-site-packages, plus scripts/requirements-torch-bench.txt).

    .venv/bin/python bench/score_vs_pandas_udf.py --build build [--rows 16384]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-torch"


def torch_venv():
    py = VENV / "bin" / "python"
    req = ROOT / "scripts" / "requirements-torch-bench.txt"
    stamp = VENV / ".requirements"
    if not py.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(VENV)],
                       check=True)
    if not stamp.exists() or stamp.read_text() != req.read_text():
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)], check=True)
        stamp.write_text(req.read_text())
    return str(py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dlprep = str(Path(args.build).resolve() / "dlprep")
    py = torch_venv()
    tmp = Path(tempfile.mkdtemp(prefix="score_bench_"))
    try:
        for kind in ("mlp", "tiny"):
            subprocess.run(["/usr/bin/python3", str(ROOT / "tests/python/torch_models.py"),
                            "make", kind, str(tmp / f"{kind}.pt")], check=True)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((args.rows, 1280), dtype=np.float32)
        offsets = pa.array(np.arange(args.rows + 1, dtype=np.int32) * 1280)
        col = pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1)))
        schema = pa.schema([pa.field("id", pa.int64()),
                            pa.field("x", col.type, metadata={"dlprep.shape": "[40,32]"})])
        table = pa.Table.from_arrays([pa.array(np.arange(args.rows)), col], schema=schema)
        inp = tmp / "in"
        inp.mkdir()
        files = []
        for f in range(8):
            lo, hi = f * args.rows // 8, (f + 1) * args.rows // 8
            files.append(inp / f"part-{f}.parquet")
            pq.write_table(table.slice(lo, hi - lo), files[-1], compression="none")
        size = sum(f.stat().st_size for f in files)
        print(f"score_vs_pandas_udf: {args.rows} rows of [40,32] float32 "
              f"({size / 1e6:.0f} MB Parquet in 8 files), batch {args.batch_size}, "
              f"{args.repeats} repeats, {os.cpu_count()} cores")
        for kind, budget in [(k, b) for k in ("mlp", "tiny") for b in (1, 2)]:
            model = tmp / f"{kind}.pt"
            d_times, p_times = [], []
            for rep in range(args.repeats):
                out = tmp / f"d{budget}"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                subprocess.run([dlprep, "score", "--model", str(model), "-i", str(inp),
                                "--model-input", "x", "--batch-size", str(args.batch_size),
                                "--argmax", "-o", str(out), "--format", "parquet",
                                "--workers", str(budget), "--threads-per-worker", "1",
                                "--quiet"], check=True)
                d_times.append(time.perf_counter() - t0)
                pouts = [tmp / f"p{budget}_{k}.parquet" for k in range(budget)]
                t0 = time.perf_counter()
                procs = [subprocess.Popen(
                    [py, str(ROOT / "bench/torch/pandas_udf_score.py"), "--model",
                     str(model), "--input", *map(str, files[k::budget]), "--output",
                     str(pouts[k]), "--batch-size", str(args.batch_size), "--threads", "1"],
                    stdout=subprocess.PIPE, text=True) for k in range(budget)]
                outs = [p.communicate()[0] for p in procs]
                p_times.append(time.perf_counter() - t0)
                assert all(p.returncode == 0 for p in procs)
            inner = max(json.loads(o.strip().splitlines()[-1])["seconds"] for o in outs)
            d = pq.read_table(out)
            p = pa.concat_tables([pq.read_table(f) for f in pouts]).sort_by("id")
            assert d.num_rows == p.num_rows == args.rows
            assert d.column("id").equals(p.column("id"))
            ds = np.asarray(d.column("scores").combine_chunks().flatten())
            ps = np.asarray(p.column("scores").combine_chunks().flatten())
            diff = float(np.max(np.abs(ds - ps)))
            same_pred = d.column("prediction").equals(p.column("prediction"))
            dm, pm = statistics.median(d_times), statistics.median(p_times)
            print(f"  {kind}, budget {budget} thread(s): dlprep {dm:.2f} s "
                  f"({args.rows / dm:,.0f} rows/s, {budget} worker(s) x 1 thread); "
                  f"pandas UDF {pm:.2f} s ({args.rows / pm:,.0f} rows/s; "
                  f"{inner:.2f} s after Python start-up); "
                  f"UDF / dlprep = {pm / dm:.2f}; max |diff| {diff:.2e}, "
                  f"predictions {'identical' if same_pred else 'DIFFER'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
