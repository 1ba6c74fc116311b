"""Generates the demo's sample data: a hive-partitioned Parquet folder of customer
events with a few scalar columns and a [8, 4] float feature matrix per row."""
import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--output", required=True)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    per_day = args.rows // args.days
    history = pa.field("history", pa.list_(pa.float32(), 32), nullable=False,
                       metadata={"dlprep.shape": "[8,4]"})
    schema = pa.schema([
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("s", tz="UTC"), nullable=False),
        pa.field("event_type", pa.string()),
        pa.field("amount", pa.float32()),
        pa.field("churned", pa.bool_(), nullable=False),
        history,
    ])
    types = np.array(["call", "sms", "data", "topup", "support"])
    for day in range(args.days):
        n = per_day
        base = 1_700_000_000 + day * 86_400
        t = pa.table({
            "customer_id": rng.zipf(1.5, n).astype(np.int64) % 5000,
            "ts": pa.array(base + np.sort(rng.integers(0, 86_400, n)), pa.timestamp("s", tz="UTC")),
            "event_type": pa.array(types[rng.integers(0, len(types), n)]),
            "amount": pa.array(np.where(rng.random(n) < 0.1, np.nan,
                                        rng.gamma(2.0, 3.0, n)).astype(np.float32),
                               from_pandas=True),
            "churned": rng.random(n) < 0.05,
            "history": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.standard_normal(n * 32).astype(np.float32)), 32),
        }, schema=schema)
        d = os.path.join(args.output, f"day=2023-11-{14 + day:02d}")
        os.makedirs(d, exist_ok=True)
        pq.write_table(t, os.path.join(d, "events.parquet"))
    print(f"wrote {per_day * args.days} events to {args.output}")


if __name__ == "__main__":
    main()
