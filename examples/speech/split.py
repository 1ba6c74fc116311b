"""Splits the featurized clips (dlprep audio output, Parquet) by speaker: clips of the
held-out voice are the test set, the rest (with their noisy copies) the training set.

    python split.py FEATURES_DIR OUT_DIR --test-voice en-us_f2

Writes OUT_DIR/train_x.npy (float32 [N, frames, n_mels]), train_y.npy (int64),
labels.txt (class index -> word) for train.py (Debian's Python with torch, which has no
pyarrow), and OUT_DIR/test/part-0.parquet (path, label, log_mel with its dlprep.shape)
for `dlprep score`.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features")
    ap.add_argument("out")
    ap.add_argument("--test-voice", default="en-us_f2")
    args = ap.parse_args()
    t = pq.read_table(args.features)
    shape = json.loads(t.schema.field("log_mel").metadata[b"dlprep.shape"])
    names = [Path(p).name for p in t.column("path").to_pylist()]
    is_test = np.array([n.startswith(args.test_voice + "_") for n in names])
    if not is_test.any() or is_test.all():
        raise SystemExit(f"split: voice {args.test_voice!r} gives an empty split")
    labels = sorted(set(t.column("label").to_pylist()))
    out = Path(args.out)
    (out / "test").mkdir(parents=True, exist_ok=True)
    train = t.filter(pa.array(~is_test))
    x = np.asarray(pc.list_flatten(train.column("log_mel")).to_numpy(), np.float32)
    np.save(out / "train_x.npy", x.reshape([train.num_rows] + shape))
    index = {w: i for i, w in enumerate(labels)}
    np.save(out / "train_y.npy", np.array([index[w] for w in train.column("label").to_pylist()]))
    (out / "labels.txt").write_text("\n".join(labels) + "\n")
    # Test set: the clean clips of the held-out voice.
    test = t.filter(pa.array(is_test)).filter(pc.equal(t.filter(pa.array(is_test))
                                                       .column("augment"), 0))
    pq.write_table(test.select(["path", "label", "log_mel"]), out / "test" / "part-0.parquet")
    print(f"split: {train.num_rows} training rows (voices other than {args.test_voice}, "
          f"with noisy copies), {test.num_rows} test clips, {len(labels)} words, "
          f"log_mel shape {shape}")


if __name__ == "__main__":
    main()
