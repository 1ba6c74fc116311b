"""Builds small TorchScript models and computes PyTorch's reference outputs.

Run with a Python that has torch (Debian's /usr/bin/python3 with python3-torch), not
the .venv (which has pyarrow but no torch); the tests exchange arrays as .npy files:

    python3 torch_models.py make KIND OUT.pt
    python3 torch_models.py make-all DIR          (every KIND as DIR/<KIND>.pt)
    python3 torch_models.py ref MODEL.pt OUT_DIR IN.npy [IN.npy ...] [--softmax]

`ref` writes one OUT_DIR/<name>.npy per output (name: scores / the dict keys /
scores_<i> for a tuple) in output order, and OUT_DIR/names.txt listing them.
"""
import os
import sys
import zipfile

import numpy as np
import torch

torch.manual_seed(0)


class Linear(torch.nn.Module):
    """[B, 8, 4] -> logits [B, 5]."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Conv(torch.nn.Module):
    """A small CNN over log-mel-like input [B, 12, 8] -> logits [B, 3]."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 6 * 4, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x.unsqueeze(1)))
        h = torch.nn.functional.max_pool2d(h, 2)
        return self.fc(h.flatten(1))


class TwoInputs(torch.nn.Module):
    """forward(a [B, 8, 4], b [B, 3]) -> [B, 2]."""

    def __init__(self):
        super().__init__()
        self.fa = torch.nn.Linear(32, 2)
        self.fb = torch.nn.Linear(3, 2)

    def forward(self, a, b):
        return torch.tanh(self.fa(a.flatten(1))) + self.fb(b)


class TupleOut(torch.nn.Module):
    """[B, 8, 4] -> (logits [B, 5], embedding [B, 2, 3])."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(32, 5)
        self.emb = torch.nn.Linear(32, 6)

    def forward(self, x):
        f = x.flatten(1)
        return self.fc(f), self.emb(f).reshape(-1, 2, 3)


class DictOut(torch.nn.Module):
    """[B, 8, 4] -> {"logits": [B, 5], "energy": [B] (float64)}."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        f = x.flatten(1)
        return {"logits": self.fc(f), "energy": (f * f).sum(1).double()}


class BatchRows(torch.nn.Module):
    """[B, 8, 4] -> [B, 2]: (rows in the forward() call, row sum): shows the batching."""

    def forward(self, x):
        n = torch.full([x.size(0)], float(x.size(0)))
        return torch.stack([n, x.flatten(1).sum(1)], 1)


class Rank4(torch.nn.Module):
    """Wants [B, 1, 8, 4] (a conv over images): rank 3 input does not fit."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x).flatten(1)


class Wide(torch.nn.Module):
    """Wants 100 features per row: [B, 8, 4] (32 per row) does not fit."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(100, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Mlp(torch.nn.Module):
    """The benchmark model: [B, 40, 32] -> 1280 -> 256 -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(1280, 256)
        self.fc2 = torch.nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class Tiny(torch.nn.Module):
    """A benchmark model whose compute is small next to moving the data:
    [B, 40, 32] -> 10 logits, one linear layer."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1280, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class ListOut(torch.nn.Module):
    def forward(self, x):
        return [str(x.size(0))]


KINDS = {"linear": Linear, "conv": Conv, "two_inputs": TwoInputs, "tuple": TupleOut,
         "dict": DictOut, "batch_rows": BatchRows, "rank4": Rank4, "wide": Wide,
         "list_out": ListOut, "mlp": Mlp,
         "tiny": Tiny}


def rewrite(out, edit):
    """Saves Linear as TorchScript to `out`, with edit(name, data) applied to each
    record of the archive: how files written by a newer PyTorch look to torch 1.13."""
    tmp = out + ".tmp"
    torch.jit.script(Linear().eval()).save(tmp)
    with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, edit(info.filename, src.read(info.filename)))
    os.remove(tmp)


def make(kind, out):
    if kind == "state_dict":
        torch.save(Linear().state_dict(), out)
        return
    if kind == "future_version":
        # The archive's file-format version record says 11; libtorch 1.13 reads 1..10.
        rewrite(out, lambda name, data: b"11\n" if name.endswith("/version") else data)
        return
    if kind == "future_op":
        # Version 3 (as most files from any torch), but calling an operator that came
        # with torch 2.0 (F.scaled_dot_product_attention).
        def edit(name, data):
            if name.endswith("code/__torch__.py"):
                return data.replace(
                    b"return (fc).forward(torch.flatten(x, 1), )",
                    b"y = torch.scaled_dot_product_attention(x, x, x)\n"
                    b"    return (fc).forward(torch.flatten(y, 1), )")
            return data
        rewrite(out, edit)
        return
    m = KINDS[kind]().eval()
    torch.jit.script(m).save(out)


def ref(model_path, out_dir, inputs, softmax):
    m = torch.jit.load(model_path).eval()
    xs = [torch.from_numpy(np.load(p)) for p in inputs]
    with torch.no_grad():
        out = m(*xs)
    if isinstance(out, torch.Tensor):
        named = [("scores", out)]
    elif isinstance(out, dict):
        named = list(out.items())
    else:
        named = [(f"scores_{i}", t) for i, t in enumerate(out)]
    os.makedirs(out_dir, exist_ok=True)
    names = []
    for name, t in named:
        t = t.float()
        if softmax and t.dim() > 1:
            t = torch.softmax(t, -1)
        np.save(os.path.join(out_dir, name + ".npy"), t.numpy())
        names.append(name)
    with open(os.path.join(out_dir, "names.txt"), "w") as f:
        f.write("\n".join(names))


def main(argv):
    if argv[0] == "make":
        make(argv[1], argv[2])
    elif argv[0] == "make-all":
        os.makedirs(argv[1], exist_ok=True)
        for kind in [*KINDS, "state_dict", "future_version", "future_op"]:
            make(kind, os.path.join(argv[1], kind + ".pt"))
    elif argv[0] == "ref":
        softmax = "--softmax" in argv
        args = [a for a in argv[1:] if a != "--softmax"]
        ref(args[0], args[1], args[2:], softmax)
    elif argv[0] == "version":
        print(torch.__version__)
    else:
        raise SystemExit(f"unknown command {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
