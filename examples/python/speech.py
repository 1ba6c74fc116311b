"""The speech pipeline from Python: WAV files -> log-mel spectrograms -> a PyTorch model
inside the pipeline -> predictions.

    python examples/python/speech.py OUT

1. WAVs in one folder per label: espeak-ng speaks a few words (OUT/wavs/<word>/
   <voice>_<speed>.wav); without espeak-ng, sine tones written with Python's ``wave``
   module stand in (OUT/wavs/<low|mid|high>/tone_<hz>.wav).
2. ``read_binary_files -> audio -> to_arrow``: 1-second log-mel spectrograms
   ([frames, 40], librosa-equal), labelled by their folder (``label_regex``), in memory.
3. A tiny PyTorch model, a nearest-centroid classifier over the time-averaged
   spectrum, is fitted to some of the files: one voice (or two tones per label); the
   rest are held out.
4. ``read_binary_files -> audio -> map_batches(Classifier) -> to_arrow`` scores every
   file: ``map_batches`` constructs the class once per engine worker (where a real job
   loads its model) and calls it per batch of spectrograms. The predictions are printed
   and written to OUT/predictions.parquet.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import time
import wave

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import dlprep

RATE = 16000
WORDS = ["yes", "no", "up", "down"]
VOICES = ["en-us", "en-gb", "en-us+f2"]
SPEEDS = [140, 180]
TONES = {"low": [220, 260, 300], "mid": [900, 1000, 1100], "high": [2800, 3000, 3200]}
LABEL_REGEX = r"([^/]+)/[^/]+$"  # the folder a file is in
# What the model step returns (declared, so the engine need not call it to find out).
PREDICTIONS = pa.schema([("path", pa.string()), ("label", pa.string()),
                         ("prediction", pa.string())])


def speak(folder):
    """espeak-ng speaks every word in every voice and speed (16-bit WAV, 22050 Hz)."""
    for word in WORDS:
        os.makedirs(os.path.join(folder, word), exist_ok=True)
        for voice in VOICES:
            for speed in SPEEDS:
                path = os.path.join(folder, word, f"{voice.replace('+', '_')}_{speed}.wav")
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", path, word],
                               check=True, capture_output=True)
    # The model is fitted to the first voice; the others are held out.
    return {f"{VOICES[0]}_{speed}.wav" for speed in SPEEDS}


def tones(folder):
    """One-second sine tones, a little noise on each, 16-bit mono at 16 kHz."""
    fit = set()
    rng = np.random.default_rng(0)
    for label, freqs in TONES.items():
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for hz in freqs:
            t = np.arange(RATE) / RATE
            y = 0.5 * np.sin(2 * math.pi * hz * t) + 0.02 * rng.standard_normal(RATE)
            pcm = np.clip(y * 32767, -32768, 32767).astype("<i2")
            with wave.open(os.path.join(folder, label, f"tone_{hz}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(pcm.tobytes())
        fit.update(f"tone_{hz}.wav" for hz in freqs[:2])  # the third is held out
    return fit


def spectrograms(wavs):
    """The featurization both passes share: WAV files -> labelled log-mel spectrograms."""
    return (dlprep.read_binary_files(wavs, name_filter="*.wav", recursive=True)
            .audio(sample_rate=RATE, clip_seconds=1, n_mels=40, label_regex=LABEL_REGEX))


class NearestCentroid(torch.nn.Module):
    """Time-averaged log-mel spectrum -> the label of the closest centroid."""

    def __init__(self, centroids):
        super().__init__()
        self.register_buffer("centroids", torch.as_tensor(centroids, dtype=torch.float32))

    def forward(self, log_mel):  # [batch, frames, n_mels]
        spectrum = log_mel.mean(dim=1)
        return -torch.cdist(spectrum, self.centroids)  # higher = closer


class Classifier:
    """The ``map_batches`` step: built once per worker, then called per batch."""

    def __init__(self, centroids, labels, shape):
        torch.set_num_threads(1)  # the engine runs one of these per worker
        self.model = NearestCentroid(centroids).eval()
        self.labels = labels
        self.shape = shape

    def __call__(self, batch):
        mel = batch.column("log_mel").flatten().to_numpy()
        x = torch.from_numpy(mel.copy()).reshape((batch.num_rows,) + self.shape)
        with torch.inference_mode():
            scores = self.model(x)
        best = scores.argmax(dim=1).numpy()
        return pa.record_batch({
            "path": batch.column("path"),
            "label": batch.column("label"),
            "prediction": pa.array([self.labels[i] for i in best], pa.string()),
        })


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--tones", action="store_true",
                    help="use sine tones even when espeak-ng is installed")
    args = ap.parse_args()
    start = time.perf_counter()
    wavs = os.path.join(args.out, "wavs")
    shutil.rmtree(wavs, ignore_errors=True)
    if shutil.which("espeak-ng") and not args.tones:
        fit_names, source = speak(wavs), "espeak-ng words"
    else:
        fit_names, source = tones(wavs), "sine tones (wave module)"
    n_files = sum(len(f) for _, _, f in os.walk(wavs))
    print(f"wavs: {n_files} files of {source} in {wavs}")

    # Pass 1: spectrograms in memory; fit the centroids on some of the files.
    feats = spectrograms(wavs).to_arrow()
    field = feats.schema.field("log_mel")
    shape = tuple(json.loads(field.metadata[b"dlprep.shape"]))  # e.g. [101, 40]
    print(f"audio: {feats.num_rows} spectrograms of shape {list(shape)}")
    mel = np.asarray(feats.column("log_mel").combine_chunks().flatten().to_numpy())
    spectra = mel.reshape((feats.num_rows,) + shape).mean(axis=1)
    labels = sorted(set(feats.column("label").to_pylist()))
    names = [os.path.basename(p) for p in feats.column("path").to_pylist()]
    fit = np.array([n in fit_names for n in names])
    label_of = np.array(feats.column("label").to_pylist())
    centroids = np.stack([spectra[fit & (label_of == lab)].mean(axis=0) for lab in labels])
    print(f"model: nearest centroid over {len(labels)} labels {labels}, fitted to "
          f"{int(fit.sum())} of the files ({', '.join(sorted(fit_names))})")

    # Pass 2: the whole pipeline, the model inside it.
    scored = (spectrograms(wavs)
              .map_batches(Classifier, schema=PREDICTIONS, fn_constructor_kwargs={
                  "centroids": centroids, "labels": labels, "shape": shape})
              .to_arrow(workers=2))
    out = os.path.join(args.out, "predictions.parquet")
    pq.write_table(scored, out)
    rows = sorted(zip(scored.column("path").to_pylist(), scored.column("label").to_pylist(),
                      scored.column("prediction").to_pylist()))
    for path, label, pred in rows:
        print(f"  {os.path.relpath(path, wavs):28s} label {label:5s} predicted {pred}")
    right = sum(label == pred for _, label, pred in rows)
    held = [(label, pred) for path, label, pred in rows
            if os.path.basename(path) not in fit_names]
    print(f"predictions: {len(rows)} files, {right} correct ({sum(a == b for a, b in held)} "
          f"of the {len(held)} held out) -> {out}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
