"""Trains a tiny keyword classifier on log-mel features and exports it as TorchScript.

    /usr/bin/python3 train.py DATA_DIR MODEL.pt

Reads DATA_DIR/train_x.npy [N, frames, n_mels] and train_y.npy (from split.py); runs in
seconds on a CPU. Uses Debian's python3-torch, the same libtorch 1.13 `dlprep score`
loads.
"""
import sys
import time

import numpy as np
import torch


class KeywordNet(torch.nn.Module):
    """log-mel [B, frames, n_mels] (dB) -> logits [B, classes]: a 1-D convolution over
    time, average-pooled to 10 time steps (keeping the word's shape in time), two linear
    layers."""

    def __init__(self, n_mels: int, classes: int):
        super().__init__()
        self.conv = torch.nn.Conv1d(n_mels, 64, 5, padding=2)
        self.fc1 = torch.nn.Linear(64 * 10, 64)
        self.fc2 = torch.nn.Linear(64, classes)

    def forward(self, x):
        x = (x + 40.0) / 20.0  # log-mel dB (about -80..0) to about -2..2
        h = torch.relu(self.conv(x.transpose(1, 2)))
        h = torch.nn.functional.adaptive_avg_pool1d(h, 10)
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


def main():
    data, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    x = torch.from_numpy(np.load(f"{data}/train_x.npy"))
    y = torch.from_numpy(np.load(f"{data}/train_y.npy"))
    classes = int(y.max()) + 1
    model = KeywordNet(x.shape[2], classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    t0 = time.time()
    for epoch in range(40):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    torch.jit.script(model).save(out)
    print(f"train: {len(x)} rows, {classes} classes, 40 epochs in {time.time() - t0:.1f} s, "
          f"training accuracy {acc:.3f} -> {out}")


if __name__ == "__main__":
    main()
