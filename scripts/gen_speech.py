#!/usr/bin/env python3
"""Generates a small labelled speech corpus with espeak-ng, plus tones and noise.

Layout (what `dlprep audio --label-regex '([^/]+)/[^/]+$'` expects):
    OUTPUT/speech/<word>/<voice>_<speed>[_<copy>].wav   real synthesized speech
    OUTPUT/tones/tone_<hz>hz.wav                        sine tones
    OUTPUT/noise/{white,pink,hum}.wav                   noise for augmentation

espeak-ng writes 16-bit mono WAV at 22050 Hz; --sample-rate resamples (soxr HQ, as
librosa) and writes 16-bit PCM at that rate instead. --copies duplicates each spoken
file under new names (for benchmarks that need many files).
"""
import argparse
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

WORDS = ["yes", "no", "up", "down", "left", "right", "stop", "go"]
VOICES = ["en-us", "en-gb+f3", "en+m3", "en-us+f2"]
SPEEDS = [130, 175]


def speak(word, voice, speed, path, rate):
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), word],
                   check=True, capture_output=True)
    if rate:
        import soxr
        y, sr = sf.read(path, dtype="float32")
        if sr != rate:
            y = soxr.resample(y, sr, rate, quality="soxr_hq")
        sf.write(path, y, rate, subtype="PCM_16")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", "-o", required=True)
    ap.add_argument("--words", default=",".join(WORDS))
    ap.add_argument("--voices", default=",".join(VOICES))
    ap.add_argument("--speeds", default=",".join(map(str, SPEEDS)))
    ap.add_argument("--sample-rate", type=int, default=0,
                    help="resample to this rate (default: espeak-ng's 22050 Hz)")
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--tones", default="440,1000,3000", help="tone frequencies (Hz)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("gen_speech: espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    out = Path(args.output)
    jobs = []
    for word in args.words.split(","):
        (out / "speech" / word).mkdir(parents=True, exist_ok=True)
        for voice in args.voices.split(","):
            for speed in map(int, args.speeds.split(",")):
                name = f"{voice.replace('+', '_')}_{speed}.wav"
                jobs.append((word, voice, speed, out / "speech" / word / name))
    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(speak, w, v, s, p, args.sample_rate) for w, v, s, p in jobs]:
            f.result()
    for _, _, _, p in jobs:
        for c in range(1, args.copies):
            shutil.copyfile(p, p.with_name(f"{p.stem}_{c}.wav"))
    rate = args.sample_rate or 22050
    rng = np.random.default_rng(args.seed)
    (out / "tones").mkdir(parents=True, exist_ok=True)
    t = np.arange(rate) / rate
    for hz in map(float, args.tones.split(",")):
        sf.write(out / "tones" / f"tone_{int(hz)}hz.wav",
                 (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate, subtype="PCM_16")
    (out / "noise").mkdir(parents=True, exist_ok=True)
    n = 3 * rate
    white = rng.standard_normal(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(spec.size), 1))
    pink = np.fft.irfft(spec, n)
    hum = np.sin(2 * np.pi * 50 * np.arange(n) / rate) + 0.3 * rng.standard_normal(n)
    for name, y in [("white", white), ("pink", pink), ("hum", hum)]:
        sf.write(out / "noise" / f"{name}.wav", (0.3 * y / np.abs(y).max()).astype(np.float32),
                 rate, subtype="PCM_16")
    print(f"gen_speech: {len(jobs) * args.copies} speech files, tones and noise in {out}")


if __name__ == "__main__":
    main()
