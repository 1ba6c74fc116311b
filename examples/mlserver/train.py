"""Trains the example's churn model on the windows (Parquet), with NumPy only.

Customers whose id % 5 == 0 are held out. Writes the weights (an .npz MLServer's runtime
loads) and prints the held-out AUC. Usage: train.py WINDOWS_DIR WEIGHTS.npz
"""

import sys

import numpy as np
import pyarrow.parquet as pq

from churn_model import predict


def load(path):
    t = pq.read_table(path, columns=["customer_id", "label", "features"])
    x = np.array(t.column("features").to_pylist(), dtype=np.float64)
    return t.column("customer_id").to_numpy(), t.column("label").to_numpy(), x


def auc(y, p):
    """Probability that a random positive scores above a random negative."""
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def main():
    windows, out = sys.argv[1], sys.argv[2]
    ids, y, x = load(windows)
    train = ids % 5 != 0
    lx = np.log1p(np.maximum(x, 0))
    mean, std = lx[train].mean(0), lx[train].std(0) + 1e-6
    z = (lx[train] - mean) / std
    yt = y[train].astype(np.float64)
    coef, bias = np.zeros(z.shape[1]), 0.0
    # Weighted classes (churn is rare), L2, plain gradient descent: a few seconds.
    wpos = 0.5 / max(yt.mean(), 1e-6)
    wneg = 0.5 / max(1 - yt.mean(), 1e-6)
    sw = np.where(yt == 1, wpos, wneg)
    for _ in range(300):
        p = 1 / (1 + np.exp(-(z @ coef + bias)))
        g = sw * (p - yt)
        coef -= 0.5 * (z.T @ g / len(yt) + 1e-3 * coef)
        bias -= 0.5 * g.mean()
    np.savez(out, mean=mean, std=std, coef=coef, bias=bias)
    p = predict(x[~train], mean, std, coef, bias)
    print(f"trained on {train.sum()} windows; held-out customers: {(~train).sum()} "
          f"windows, AUC {auc(y[~train], p):.3f}")


if __name__ == "__main__":
    main()
