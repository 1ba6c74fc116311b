"""Checks the scores MLServer returned through `dlprep score-http` against the model
computed here, and prints the held-out AUC. Usage: check.py SCORES_DIR WEIGHTS.npz"""

import sys

import numpy as np
import pyarrow.parquet as pq

from churn_model import predict
from train import auc


def main():
    t = pq.read_table(sys.argv[1])
    w = np.load(sys.argv[2])
    x = np.array(t.column("features").to_pylist(), dtype=np.float64)
    served = t.column("churn_probability").to_numpy()
    local = predict(x, w["mean"], w["std"], w["coef"], float(w["bias"]))
    diff = float(np.abs(served - local).max())
    if diff > 1e-6:
        sys.exit(f"served scores differ from the local model by up to {diff}")
    held = t.column("customer_id").to_numpy() % 5 == 0
    y = t.column("label").to_numpy()
    print(f"scored {t.num_rows} windows through MLServer (max |served - local| = "
          f"{diff:.1e}); held-out AUC {auc(y[held], served[held]):.3f}")


if __name__ == "__main__":
    main()
