"""What one `map_batches` call costs: the per-batch overhead of a Python step.

A table of --rows rows (int64 + float64) is cut into batches of 1k, 10k and 100k rows
and run through `dlprep.from_arrow(table).count()` with and without
`.map_batches(identity)` (one worker, so the step's cost is not hidden by parallelism;
the batches are cut beforehand, so both runs move the same batches and only the Python
call differs). The overhead per batch is

    (time with map_batches - time without) / batches

in wall and CPU time (getrusage RUSAGE_SELF, all threads), beside:

* a plain Python loop over the same pyarrow RecordBatches calling the same function
  (the floor: iteration and a call, nothing crosses a language boundary);
* Ray Data's `map_batches(identity, batch_format="pyarrow")` the same way, when `ray`
  is importable (it is not a dependency; the figures say "not installed" otherwise).

    .venv-pkg/bin/python bench/map_batches_overhead.py --rows 10000000
"""
import argparse
import resource
import statistics
import time

import numpy as np
import pyarrow as pa

import dlprep


def identity(batch):
    return batch


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fn, runs):
    """Median (wall, cpu) seconds of ``runs`` calls of ``fn``."""
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = cpu(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
    return statistics.median(walls), statistics.median(cpus)


def make_table(rows, batch_rows):
    rng = np.random.default_rng(0)
    base = pa.table({"id": np.arange(rows, dtype=np.int64), "x": rng.random(rows)})
    return pa.Table.from_batches(base.to_batches(max_chunksize=batch_rows))


def dlprep_runs(table, runs):
    plain = dlprep.from_arrow(table)
    mapped = plain.map_batches(identity, schema=table.schema)
    n = plain.count(workers=1)
    assert n == mapped.count(workers=1) == table.num_rows
    return measure(lambda: plain.count(workers=1), runs), \
        measure(lambda: mapped.count(workers=1), runs)


def loop_runs(table, runs):
    batches = table.to_batches()

    def without():
        for b in batches:
            pass

    def with_fn():
        for b in batches:
            identity(b)
    return measure(without, runs), measure(with_fn, runs)


def ray_runs(table, runs):
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    bs = len(table.column(0).chunks[0])

    def without():
        ray.data.from_arrow(table).materialize()

    def with_fn():
        ray.data.from_arrow(table).map_batches(identity, batch_format="pyarrow",
                                               batch_size=bs).materialize()
    return measure(without, runs), measure(with_fn, runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--batch-rows", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    try:
        import ray  # noqa: F401
        have_ray = True
    except ImportError:
        have_ray = False

    print(f"{args.rows} rows (int64 + float64), identity function, median of {args.runs} "
          "runs; overhead per batch in µs (wall / cpu)")
    print(f"{'batch rows':>10s} {'batches':>8s} {'dlprep without s':>17s} "
          f"{'dlprep with s':>14s} {'dlprep µs/batch':>17s} {'loop µs/batch':>15s} "
          f"{'ray µs/batch':>15s}")
    for bs in map(int, args.batch_rows.split(",")):
        table = make_table(args.rows, bs)
        batches = table.num_rows // bs + (table.num_rows % bs > 0)
        (w0, c0), (w1, c1) = dlprep_runs(table, args.runs)
        (lw0, lc0), (lw1, lc1) = loop_runs(table, args.runs)
        per = lambda a, b: (b - a) / batches * 1e6  # noqa: E731
        if have_ray:
            (rw0, rc0), (rw1, rc1) = ray_runs(table, args.runs)
            ray_text = f"{per(rw0, rw1):7.1f}/{per(rc0, rc1):<7.1f}"
        else:
            ray_text = "not installed"
        # The loop's figure is the whole loop per batch: iterating and calling.
        print(f"{bs:10d} {batches:8d} {w0:8.3f}/{c0:<8.3f} {w1:6.3f}/{c1:<7.3f} "
              f"{per(w0, w1):8.1f}/{per(c0, c1):<8.1f} "
              f"{lw1 / batches * 1e6:7.2f}/{lc1 / batches * 1e6:<7.2f} {ray_text:>15s}")


if __name__ == "__main__":
    main()
