"""Batch inference inside Spark: WAV files -> log-mel -> a TorchScript model, with
dlprep.spark.

    python examples/spark/score.py OUT [--master local[2]] [--wavs DIR] [--model M.pt]
    spark-submit --master spark://HOST:7077 examples/spark/score.py OUT --model M.pt

1. Without ``--wavs``, writes sine-tone WAVs to OUT/wavs (as speech.py does).
2. Without ``--model``, makes a tiny TorchScript model with PyTorch (Debian:
   python3-torch; a venv made with --system-site-packages sees it): the mean of each
   mel band over time, then one linear layer with one output per label, initialised
   to the bands' mean per label of a few clips (a nearest-mean classifier), saved as
   OUT/model.pt.
3. ``dlprep.spark.audio`` computes the [101, 64] log-mel spectrograms;
   ``dlprep.spark.score`` runs the model on them in ``mapInArrow`` (the model is loaded
   once per Python worker, batches of ``--batch-size`` rows) and adds ``prediction``
   (argmax); ``dlprep.spark.write_parquet`` commits OUT/scores.

The model must be readable at the same path on the driver and every worker, and dlprep
must be a build with the TorchScript backend (libtorch). PYSPARK_PYTHON defaults to this
Python.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speech import PITCHES, session, write_tones  # noqa: E402

LABELS = sorted(PITCHES)


def make_model(wavs, path):
    """A nearest-mean classifier over the time-averaged log-mel bands as TorchScript,
    fitted on up to four clips per label (features from dlprep on this machine)."""
    try:
        import torch
    except ImportError:
        sys.exit("score.py: PyTorch is not importable; pass --model M.pt (a TorchScript "
                 "model taking float32 [batch, 101, 64])")
    import numpy as np

    import dlprep
    feats = dlprep.read_binary_files(wavs, recursive=True, name_filter="*.wav") \
        .audio(clip_seconds=1, label_regex=r"([^/]+)/[^/]+$") \
        .select(["label", "log_mel"]).to_arrow()
    x = np.array(feats.column("log_mel").to_pylist(), np.float32).reshape(-1, 101, 64)
    y = feats.column("label").to_pylist()
    first = {label: [i for i, lab in enumerate(y) if lab == label][:4] for label in LABELS}
    means = np.stack([x[first[label]].mean(axis=(0, 1)) for label in LABELS])

    class NearestMean(torch.nn.Module):
        def __init__(self, means):
            super().__init__()
            m = torch.tensor(means)
            self.linear = torch.nn.Linear(m.shape[1], m.shape[0])
            with torch.no_grad():  # -|x - m|^2 up to a term equal for every label
                self.linear.weight.copy_(2 * m)
                self.linear.bias.copy_(-(m * m).sum(dim=1))

        def forward(self, log_mel):  # [batch, frames, bands]
            return self.linear(log_mel.mean(dim=1))

    torch.jit.script(NearestMean(means)).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--master", help="Spark master (default local[2]; under spark-submit "
                                     "its --master)")
    ap.add_argument("--wavs", help="folder of WAVs, one subfolder per label (default: "
                                   "generated tones)")
    ap.add_argument("--model", help="TorchScript model (default: made here with torch)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    wavs = args.wavs
    if wavs is None:
        wavs = os.path.join(out, "wavs")
        print(f"wavs: {write_tones(wavs, 8)} sine tones -> {wavs}")
    wavs = os.path.abspath(wavs)
    model = args.model
    if model is None:
        model = os.path.join(out, "model.pt")
        make_model(wavs, model)
        print(f"model: a nearest-mean classifier over {len(LABELS)} labels -> {model}")
    model = os.path.abspath(model)

    from pyspark.sql import functions as F

    from dlprep import spark as dsp

    spark = session("dlprep-score", args.master, args.partitions)
    start = time.perf_counter()
    try:
        files = (spark.read.format("binaryFile").option("pathGlobFilter", "*.wav")
                 .option("recursiveFileLookup", "true").load(wavs))
        feats = dsp.audio(files, clip_seconds=1, label_regex=r"([^/]+)/[^/]+$",
                          partitions=args.partitions).select("path", "label", "log_mel")
        scores = dsp.score(feats, model=model, column="log_mel", argmax=True,
                           batch_size=args.batch_size, keep=["path", "label"])
        path = os.path.join(out, "scores")
        stats = dsp.write_parquet(scores, path, overwrite=True)
        print(f"score: {stats['rows']} clips scored in {stats['files']} files -> {path}; "
              f"operators (audio, model) opened {dsp.operator_opens(spark)} times")
        back = spark.read.parquet(path)
        if args.model is None:
            names = F.array(*map(F.lit, LABELS))
            back = back.withColumn("predicted", F.element_at(
                names, (F.col("prediction") + 1).cast("int")))
            right = back.where("predicted = label").count()
            print(f"predictions: {right} of {back.count()} match the label")
        else:
            counts = back.groupBy("prediction").count().orderBy("prediction").collect()
            print("rows per prediction:", {r["prediction"]: r["count"] for r in counts})
    finally:
        spark.stop()
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
