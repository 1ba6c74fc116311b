"""The churn pipeline from Python: events -> 14-day windows -> TFRecord -> training input.

    python examples/python/churn.py OUT [--customers 400] [--days 90]

1. ``dlprep gen churn`` (the command the wheel installs) writes synthetic telecom
   events and churn labels as Parquet to OUT/data.
2. ``dlprep.read_parquet(...).windows(...)`` turns every customer's history into
   sliding 14-day windows (one row per customer and window end: a [14, F] feature
   tensor per window and a label "churned within 30 days") and ``write_tfrecord``
   writes them to OUT/windows in 4 shards, with a _manifest.json.
3. tf.data reads the shards through ``dlprep.tfrecord`` (when TensorFlow is installed).
4. PyTorch reads them through ``dlprep.torch`` with 2 DataLoader workers, shuffled,
   and fits a logistic regression for two epochs.

The same featurization as a command: ``dlprep windows --events OUT/data/events ...``
(``ds.explain()`` prints the pipeline file both run).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import dlprep
import dlprep.tfrecord


def dlprep_command():
    """The ``dlprep`` command installed with the wheel: beside this Python, else on PATH."""
    exe = os.path.join(os.path.dirname(sys.executable), "dlprep")
    if os.path.exists(exe):
        return exe
    exe = shutil.which("dlprep")
    if exe is None:
        sys.exit("churn.py: the dlprep command is not installed (pip install dlprep)")
    return exe


def generate(out, customers, days):
    data = os.path.join(out, "data")
    subprocess.run([dlprep_command(), "gen", "churn", "--customers", str(customers),
                    "--days", str(days), "--output", data, "--overwrite"], check=True)
    return os.path.join(data, "events"), os.path.join(data, "labels")


def featurize(events, labels, out):
    ds = dlprep.read_parquet(events).windows(
        key="customer_id", time="ts", category="event_type",
        values=["amount", "duration"], aggs=["sum", "mean", "max"],
        window="14d", stride="7d", step="1d", horizon="30d",
        labels=dlprep.read_parquet(labels), label_time="churn_ts")
    path = os.path.join(out, "windows")
    stats = ds.write_tfrecord(path, shards=4, overwrite=True)
    field = ds.schema.field("features")
    shape = field.metadata[b"dlprep.shape"].decode()
    print(f"windows: {stats['rows_written']} rows in {len(dlprep.tfrecord.files(path))} "
          f"files, features {shape} -> {path}")
    return path


def read_with_tensorflow(path):
    try:
        import tensorflow as tf  # noqa: F401
    except ImportError:
        print("tf.data: skipped (tensorflow is not installed)")
        return
    n = positives = 0
    shape = None
    for batch in dlprep.tfrecord.dataset(path, batch_size=512):
        n += int(batch["label"].shape[0])
        positives += int(batch["label"].numpy().sum())
        shape = tuple(batch["features"].shape[1:])
    print(f"tf.data: {n} windows, {positives} churn labels, features {shape}")


def train_with_torch(path):
    import torch
    import dlprep.torch

    torch.manual_seed(0)
    ds = dlprep.torch.dataset(path, batch_size=256, columns=["features", "label"],
                              shuffle_buffer=2048, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    model = None
    for epoch in range(2):
        ds.set_epoch(epoch)
        total = rows = batches = 0
        for batch in loader:
            x = torch.log1p(batch["features"].clamp(min=0)).flatten(1)
            y = batch["label"].float()
            if model is None:
                model = torch.nn.Linear(x.shape[1], 1)
                opt = torch.optim.Adam(model.parameters(), lr=0.01)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(y)
            rows += len(y)
            batches += 1
        print(f"torch: epoch {epoch}: {rows} windows in {batches} batches "
              f"(features {tuple(batch['features'].shape[1:])}), "
              f"mean loss {total / rows:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--customers", type=int, default=400)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    events, labels = generate(args.out, args.customers, args.days)
    path = featurize(events, labels, args.out)
    read_with_tensorflow(path)
    train_with_torch(path)
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
