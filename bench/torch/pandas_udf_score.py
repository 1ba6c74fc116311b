"""The talk's scalar-iterator pandas UDF pattern for batch inference, outside Spark.

    @pandas_udf(ArrayType(FloatType()))
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        model = torch.jit.load(path)            # once per Python worker
        for s in batches:                         # one Arrow batch each
            x = torch.from_numpy(np.stack(s.to_numpy()).reshape(-1, *shape))
            yield pd.Series(list(model(x).numpy()))

Here the iterator is fed the way Spark feeds it: Arrow record batches of
--batch-size rows (spark.sql.execution.arrow.maxRecordsPerBatch) converted to
pandas; the UDF's Series are converted back to Arrow and written as Parquet. One
process is one Spark Python worker (one task slot); the benchmark runs several side by
side on different files, as Spark would. What is left out, in Python's favour: Spark's
JVM <-> Python socket transfer.

Needs torch, numpy, pandas and pyarrow in one Python: bench/score_vs_pandas_udf.py runs
it in .venv-torch (Debian's python3-torch plus pyarrow and pandas from pip).
Prints one JSON line: {"seconds": ..., "rows": ...}.
"""
import argparse
import json
import time
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True, nargs="+", help="Parquet files, in order")
    ap.add_argument("--output", required=True)
    ap.add_argument("--column", default="x")
    ap.add_argument("--shape", default="40,32")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        model = torch.jit.load(args.model).eval()
        with torch.no_grad():
            for s in batches:
                x = torch.from_numpy(np.stack(s.to_numpy()).reshape(-1, *shape))
                y = model(x).numpy()
                yield pd.DataFrame({"scores": list(y), "prediction": y.argmax(1)})

    ids = []

    def series():
        for path in args.input:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=args.batch_size):
                ids.append(batch.column("id"))
                yield batch.column(args.column).to_pandas()

    writer = None
    rows = 0
    for i, df in enumerate(predict(series())):
        out = pa.record_batch(
            [ids[i], pa.array(df["scores"], pa.list_(pa.float32())),
             pa.array(df["prediction"], pa.int64())],
            names=["id", "scores", "prediction"])
        if writer is None:
            writer = pq.ParquetWriter(args.output, out.schema)
        writer.write_batch(out)
        rows += out.num_rows
    writer.close()
    print(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows}))


if __name__ == "__main__":
    main()
