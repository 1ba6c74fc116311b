"""Accuracy of `dlprep score --argmax` output: its `prediction` (class index) against the
`label` column (the word), with labels.txt mapping indices to words.

    python accuracy.py SCORES_DIR LABELS.txt
"""
import sys
from collections import Counter

import pyarrow.parquet as pq


def main():
    t = pq.read_table(sys.argv[1])
    words = open(sys.argv[2]).read().split()
    pred = [words[i] for i in t.column("prediction").to_pylist()]
    truth = t.column("label").to_pylist()
    right = sum(p == w for p, w in zip(pred, truth))
    confused = Counter((w, p) for p, w in zip(pred, truth) if p != w).most_common(3)
    print(f"accuracy: {right}/{len(truth)} = {right / len(truth):.3f} on held-out clips"
          + (f"; most confused (word, predicted): {confused}" if confused else ""))
    return right / len(truth)


if __name__ == "__main__":
    main()
