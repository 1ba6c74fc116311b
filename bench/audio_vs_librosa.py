"""Speech features: `dlprep audio` vs the talk's Python UDF body, one core each.

Generates real speech with espeak-ng (scripts/gen_speech.py, resampled to 16 kHz so
neither side resamples), then times on the same files:
  * Python: a loop of soundfile.read + librosa.feature.melspectrogram + power_to_db
    (OMP/OpenBLAS/MKL/Numba threads = 1, warmed up first);
  * dlprep audio --workers 1 and --workers 2 (TFRecord output, the whole process).
The first --check files of dlprep's output are compared with librosa's (max |dB|
difference printed), so both sides do the same work. Rates are audio seconds per
second; medians of --repeat runs.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_THREAD = {k: "1" for k in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"]}


def librosa_loop(files):
    import librosa
    import numpy as np
    import soundfile as sf

    def run(fs):
        out = []
        for f in fs:
            y, sr = sf.read(f, dtype="float32")
            S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=160,
                                               win_length=400, n_mels=64, pad_mode="constant")
            out.append(librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80))
        return out

    run(files[:20])  # warm-up (numba JIT, caches)
    t, c = time.perf_counter(), time.process_time()
    run(files)
    return time.perf_counter() - t, time.process_time() - c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "dlprep-bench-speech"))
    ap.add_argument("--copies", type=int, default=48, help="copies of each spoken file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--check", type=int, default=8)
    ap.add_argument("--librosa-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.librosa_worker:
        files = json.load(sys.stdin)
        print(json.dumps(librosa_loop(files)))
        return
    speech = os.path.join(args.data, "speech")
    if not os.path.isdir(speech):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_speech.py"),
                        "--output", args.data, "--sample-rate", "16000",
                        "--copies", str(args.copies)], check=True)
    import soundfile as sf

    files = sorted(glob.glob(os.path.join(speech, "*", "*.wav")))
    audio_s = sum(sf.info(f).duration for f in files)
    print(f"{len(files)} files, {audio_s:.1f} s of 16 kHz speech in {speech}")
    env = dict(os.environ, **ONE_THREAD)

    py, py_cpu = [], []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, __file__, "--librosa-worker"], env=env,
                             input=json.dumps(files), capture_output=True, text=True,
                             check=True)
        wall, cpu = json.loads(out.stdout.strip().splitlines()[-1])
        py.append(wall)
        py_cpu.append(cpu)
    out_dir = tempfile.mkdtemp(prefix="dlprep-bench-audio-")
    dl, dl_cpu = {}, {}
    for workers in (1, 2):
        times, cpus = [], []
        for _ in range(args.repeat):
            cmd = [os.path.join(args.build, "dlprep"), "audio", "--input",
                   os.path.join(speech, "**", "*.wav"), "--workers", str(workers),
                   "--files-per-partition", "64", "--output", os.path.join(out_dir, "tfr"),
                   "--overwrite", "-q"]
            r0 = os.times()
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True)
            times.append(time.perf_counter() - t)
            r1 = os.times()
            cpus.append(r1.children_user + r1.children_system - r0.children_user -
                        r0.children_system)
        dl[workers] = statistics.median(times)
        dl_cpu[workers] = statistics.median(cpus)

    # Same work: dlprep's log-mel of the first files equals librosa's.
    import librosa
    import numpy as np
    import pyarrow.parquet as pq

    check = os.path.join(out_dir, "check")
    subprocess.run([os.path.join(args.build, "dlprep"), "audio", "--input", *files[:args.check],
                    "--format", "parquet", "--output", check, "-q"], check=True)
    rows = pq.read_table(check).to_pylist()
    worst = 0.0
    for r in rows:
        y, sr = sf.read(r["path"], dtype="float32")
        S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=160,
                                           win_length=400, n_mels=64, pad_mode="constant")
        ref = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80)
        worst = max(worst, float(np.abs(np.asarray(r["log_mel"]).reshape(-1, 64).T - ref).max()))
    shutil.rmtree(out_dir, ignore_errors=True)

    py_med, py_cpu_med = statistics.median(py), statistics.median(py_cpu)
    rate_py, rate1, rate2 = audio_s / py_med, audio_s / dl[1], audio_s / dl[2]
    print("wall time (whole dlprep process: start-up, listing, writing, commit with fsync)")
    print(f"  python soundfile+librosa, 1 core: {py_med:7.3f} s  {rate_py:9.0f} audio-s/s")
    print(f"  dlprep audio --workers 1:         {dl[1]:7.3f} s  {rate1:9.0f} audio-s/s")
    print(f"  dlprep audio --workers 2:         {dl[2]:7.3f} s  {rate2:9.0f} audio-s/s")
    print(f"  ratio dlprep/librosa (1 core):  {rate1 / rate_py:6.1f}x  (goal >= 30x)")
    print(f"  scaling 1 -> 2 workers:         {rate2 / rate1:6.2f}x  (goal >= 1.8x)")
    print("CPU time (user + system; robust on a shared machine)")
    print(f"  python soundfile+librosa:       {py_cpu_med:7.3f} s  "
          f"{audio_s / py_cpu_med:9.0f} audio-s/cpu-s")
    print(f"  dlprep audio --workers 1:       {dl_cpu[1]:7.3f} s  "
          f"{audio_s / dl_cpu[1]:9.0f} audio-s/cpu-s")
    print(f"  ratio dlprep/librosa per CPU second: {py_cpu_med / dl_cpu[1]:6.1f}x")
    print(f"max |log-mel dB - librosa| on {len(rows)} files: {worst:.5f}")


if __name__ == "__main__":
    main()
