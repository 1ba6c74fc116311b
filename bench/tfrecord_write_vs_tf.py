"""TFRecord writing: dlprep vs a Python loop of tf.train.Example + tf.io.TFRecordWriter.

Same data for both: a Parquet file of N rows with three scalar columns (int64, float32,
string) and one list of 256 float32. dlprep runs as one process on one core (`taskset`
pins it); the TensorFlow loop reads the same Parquet with pyarrow and writes every row
as TensorFlow's documentation shows. The TF loop runs on the first --tf-rows rows (it
is slow) and rows/s are compared. Prints medians of --repeat runs and the ratio.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(path, rows):
    rng = np.random.default_rng(0)
    t = pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "score": pa.array(rng.random(rows, dtype=np.float32)),
        "label": pa.array(np.array(["cat", "dog", "bird", "fish"])[rng.integers(0, 4, rows)]),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal(rows * 256).astype(np.float32)), 256),
    })
    pq.write_table(t, path, row_group_size=64 * 1024)


def tf_loop(src, dst, rows):
    import tensorflow as tf
    t = pq.read_table(src).slice(0, rows)
    ids = t.column("id").to_numpy()
    scores = t.column("score").to_numpy()
    labels = t.column("label").to_pylist()
    emb = t.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, 256)
    start = time.perf_counter()
    with tf.io.TFRecordWriter(dst) as w:
        for i in range(rows):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[ids[i]])),
                "score": tf.train.Feature(float_list=tf.train.FloatList(value=[scores[i]])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[labels[i].encode()])),
                "embedding": tf.train.Feature(float_list=tf.train.FloatList(value=emb[i])),
            }))
            w.write(ex.SerializeToString())
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tf-rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    exe = os.path.join(args.build, "dlprep")
    work = tempfile.mkdtemp(prefix="dlprep-bench-")
    try:
        src = os.path.join(work, "data.parquet")
        make_data(src, args.rows)
        out = os.path.join(work, "out")
        dl = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(["taskset", "-c", "0", exe, "convert", "-i", src, "-o", out,
                            "--overwrite", "-q"], check=True)
            dl.append(time.perf_counter() - start)
        tfs = []
        for _ in range(args.repeat):
            tfs.append(tf_loop(src, os.path.join(work, "tf.tfrecord"), args.tf_rows))
        dl_rate = args.rows / statistics.median(dl)
        tf_rate = args.tf_rows / statistics.median(tfs)
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)
                   if f.startswith("part-"))
        print(f"dlprep convert (1 core, whole process incl. Parquet read): "
              f"{args.rows} rows, median {statistics.median(dl):.2f} s -> {dl_rate:,.0f} rows/s "
              f"({size / statistics.median(dl) / 1e6:.0f} MB/s written)")
        print(f"tf.train.Example + TFRecordWriter loop: {args.tf_rows} rows, "
              f"median {statistics.median(tfs):.2f} s -> {tf_rate:,.0f} rows/s")
        print(f"ratio dlprep/tf: {dl_rate / tf_rate:.1f}x (goal >= 30x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
