"""Speech features on Spark: WAV files -> log-mel + MFCC -> TFRecord, with dlprep.spark.

    python examples/spark/speech.py OUT [--master local[2]] [--wavs DIR]
    spark-submit --master spark://HOST:7077 examples/spark/speech.py OUT --wavs DIR

1. Without ``--wavs``, writes sine-tone WAVs (16 kHz, 1 s, three pitches: low, mid,
   high) to OUT/wavs/<label>/<n>.wav with Python's ``wave`` module.
2. Spark reads them with ``spark.read.format("binaryFile")`` (path, content);
   ``dlprep.spark.audio`` decodes each clip and computes a [101, 64] log-mel
   spectrogram and [101, 13] MFCCs in ``mapInArrow``, opening the operator once per
   Python worker; the label is the WAV's folder name.
3. ``dlprep.spark.write_tfrecord`` writes one gzip TFRecord file per Spark partition to
   OUT/features and commits on the driver (``_manifest.json`` with the TF feature spec,
   ``_SUCCESS``).

OUT (and --wavs) must be folders the driver and every worker see at the same path. The
Python workers must run a Python with dlprep installed: PYSPARK_PYTHON (default here:
this Python). The same features on one machine: ``dlprep audio``.
"""
import argparse
import math
import os
import struct
import sys
import time
import wave

RATE = 16000
PITCHES = {"low": 220.0, "mid": 440.0, "high": 880.0}


def write_tones(folder, per_label):
    """per_label one-second sine WAVs (16-bit mono, 16 kHz) per pitch, each a few Hz
    apart, under folder/<label>/; returns how many."""
    n = 0
    for label, hz in PITCHES.items():
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for i in range(per_label):
            f = hz * (1 + 0.01 * i)
            frames = b"".join(
                struct.pack("<h", int(12000 * math.sin(2 * math.pi * f * t / RATE)))
                for t in range(RATE))
            with wave.open(os.path.join(folder, label, f"{i}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(frames)
            n += 1
    return n


def session(app, master, partitions):
    """A SparkSession: under spark-submit its --master, else --master or local[2]."""
    from pyspark.sql import SparkSession
    builder = (SparkSession.builder.appName(app)
               .config("spark.sql.shuffle.partitions", str(partitions))
               .config("spark.ui.showConsoleProgress", "false"))
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        builder = builder.master(master or "local[2]")
    return builder.getOrCreate()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--master", help="Spark master (default local[2]; under spark-submit "
                                     "its --master)")
    ap.add_argument("--wavs", help="folder of WAVs, one subfolder per label (default: "
                                   "generated tones)")
    ap.add_argument("--per-label", type=int, default=8, help="generated WAVs per pitch")
    ap.add_argument("--partitions", type=int, default=4,
                    help="Spark partitions (= TFRecord files)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    wavs = args.wavs
    if wavs is None:
        wavs = os.path.join(out, "wavs")
        print(f"wavs: {write_tones(wavs, args.per_label)} sine tones -> {wavs}")
    wavs = os.path.abspath(wavs)

    from dlprep import spark as dsp

    spark = session("dlprep-speech", args.master, args.partitions)
    start = time.perf_counter()
    try:
        files = (spark.read.format("binaryFile").option("pathGlobFilter", "*.wav")
                 .option("recursiveFileLookup", "true").load(wavs))
        # partitions: the tasks (and TFRecord files); the tasks read the WAVs
        feats = dsp.audio(files, clip_seconds=1, mfcc=13, label_regex=r"([^/]+)/[^/]+$",
                          partitions=args.partitions)
        path = os.path.join(out, "features")
        stats = dsp.write_tfrecord(feats, path, compression="gzip", overwrite=True)
        shapes = {c: feats.schema[c].metadata.get("dlprep.shape")
                  for c in ("log_mel", "mfcc")}
        print(f"audio: {stats['rows']} clips in {stats['files']} files, log_mel "
              f"{shapes['log_mel']}, mfcc {shapes['mfcc']} -> {path}")
        print(f"operator opens: {dsp.operator_opens(spark)}, failed clips: "
              f"{dsp.row_error_count(spark)}")
        labels = dsp.read_tfrecord(spark, path, columns="label").groupBy("label").count()
        print("clips per label:", {r["label"]: r["count"] for r in labels.collect()})
    finally:
        spark.stop()
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
