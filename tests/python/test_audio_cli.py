"""`dlprep audio` against librosa 0.10 / soundfile: log-mel and MFCC parity on random
signals, lengths, rates and options; resampling vs librosa.load(sr=...); every supported
format; bad files; augmentation determinism and SNR; labels; TensorFlow read-back; the
pipeline-file step. Speech comes from espeak-ng (scripts/gen_speech.py)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, read_manifest

librosa = pytest.importorskip("librosa")
scipy = pytest.importorskip("scipy")
import scipy.fft  # noqa: E402
sf = pytest.importorskip("soundfile")

LABEL_RE = "([^/]+)/[^/]+$"


def read_rows(out):
    return pq.read_table(sorted(Path(out).glob("*.parquet"))).to_pylist()


def librosa_db(y, sr, n_fft=512, win=400, hop=160, n_mels=64, fmin=0.0, fmax=None,
               top_db=80.0):
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop,
                                       win_length=win, window="hann", center=True,
                                       pad_mode="constant", power=2.0, n_mels=n_mels,
                                       fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=top_db)


def assert_db_close(mine, ref, what):
    """The issue's tolerance: 0.01 dB where the power is above max - 60 dB, 0.1 dB
    everywhere."""
    assert mine.shape == ref.shape, what
    d = np.abs(mine - ref)
    loud = ref > ref.max() - 60
    assert d[loud].max() <= 0.01, f"{what}: {d[loud].max()} dB off above max-60"
    assert d.max() <= 0.1, f"{what}: {d.max()} dB off"


def assert_mfcc_close(mine, mine_db, ref_db, n_mfcc, what):
    """The DCT itself within 1e-3 (librosa's mfcc of our own dB spectrogram); against the
    whole librosa chain within 1e-3 (plus float32 rounding of the coefficient, 2e-6
    relative: c0 of a quiet clip is about -800) in frames whose every band is above
    max - 60 dB, and elsewhere within that plus what the dB differences (at most 0.1 dB,
    checked by assert_db_close) carry through the orthonormal DCT."""
    own = librosa.feature.mfcc(S=mine_db, n_mfcc=n_mfcc)
    assert mine.shape == own.shape, what
    assert np.abs(mine - own).max() <= 1e-3, f"{what}: DCT off by {np.abs(mine - own).max()}"
    ref = librosa.feature.mfcc(S=ref_db, n_mfcc=n_mfcc)
    d = np.abs(mine - ref)
    tol = 1e-3 + 2e-6 * np.abs(ref)
    loud = (ref_db > ref_db.max() - 60).all(axis=0)
    assert (d[:, loud] <= tol[:, loud]).all(), f"{what}: MFCC off by {d[:, loud].max()}"
    dct = np.abs(scipy.fft.dct(np.eye(ref_db.shape[0]), type=2, norm="ortho", axis=0))[:n_mfcc]
    carried = dct @ np.abs(mine_db.astype(np.float64) - ref_db)
    assert (d <= tol + carried).all(), f"{what}: MFCC off by {d.max()}"


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    out = tmp_path_factory.mktemp("speech")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_speech.py"), "--output",
                    str(out), "--words", "yes,no,stop", "--voices", "en-us,en-gb+f3",
                    "--speeds", "130,175"], check=True, capture_output=True)
    return out


def random_signal(rng, n, sr):
    kind = rng.integers(4)
    t = np.arange(n) / sr
    if kind == 0:
        y = rng.standard_normal(n) * 10 ** rng.uniform(-3, 0)
    elif kind == 1:
        y = 0.5 * np.sin(2 * np.pi * rng.uniform(50, sr / 2.2) * t)
    elif kind == 2:
        f0, f1 = rng.uniform(50, 500), rng.uniform(1000, sr / 2.2)
        y = 0.4 * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / max(t[-1], 1e-9) / 2) * t)
    else:  # a burst in silence: low-power regions that top_db clips
        y = np.zeros(n)
        a, b = sorted(rng.integers(0, n + 1, 2))
        y[a:b] = rng.standard_normal(b - a) * 0.2
    return np.clip(y, -1, 1).astype(np.float32)


# (sample rate, extra dlprep options, librosa keyword arguments)
OPTION_SETS = [
    (16000, [], {}),
    (16000, ["--mfcc", "13"], {"mfcc": 13}),
    (8000, ["--n-fft", "256", "--win-length", "200", "--hop-length", "80", "--n-mels", "40",
            "--mfcc", "20"], {"n_fft": 256, "win": 200, "hop": 80, "n_mels": 40, "mfcc": 20}),
    (22050, ["--n-fft", "1024", "--win-length", "1024", "--hop-length", "256", "--n-mels",
             "128", "--fmin", "20", "--fmax", "8000", "--top-db", "60"],
     {"n_fft": 1024, "win": 1024, "hop": 256, "n_mels": 128, "fmin": 20.0, "fmax": 8000.0,
      "top_db": 60.0}),
    (44100, ["--n-fft", "2048", "--win-length", "1764", "--hop-length", "441", "--n-mels",
             "80", "--fmin", "125", "--fmax", "7600", "--mfcc", "40"],
     {"n_fft": 2048, "win": 1764, "hop": 441, "n_mels": 80, "fmin": 125.0, "fmax": 7600.0,
      "mfcc": 40}),
]


@pytest.mark.parametrize("case", range(len(OPTION_SETS)))
def test_log_mel_and_mfcc_equal_librosa_on_random_signals(dlprep, tmp_path, case):
    sr, opts, kw = OPTION_SETS[case]
    rng = np.random.default_rng(case)
    n_fft = kw.get("n_fft", 512)
    lengths = [1, 37, n_fft // 2 - 1, n_fft - 1, n_fft, n_fft + 1, sr // 3, sr + 123]
    lengths += list(rng.integers(1, 2 * sr, 6))
    signals = {}
    (tmp_path / "in").mkdir()
    for i, n in enumerate(lengths):
        y = random_signal(rng, int(n), sr)
        path = tmp_path / "in" / f"s{i:02d}.wav"
        sf.write(path, y, sr, subtype="FLOAT")
        signals[str(path)] = y
    out = tmp_path / "out"
    dlprep("audio", "--input", tmp_path / "in" / "*.wav", "--sample-rate", sr, *opts,
           "--output", out, "--format", "parquet", "-q")
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(signals)
    n_mels = kw.get("n_mels", 64)
    for r in rows:
        y = signals[r["path"]]
        ref = librosa_db(y, sr, n_fft=n_fft, win=kw.get("win", 400), hop=kw.get("hop", 160),
                         n_mels=n_mels, fmin=kw.get("fmin", 0.0), fmax=kw.get("fmax"),
                         top_db=kw.get("top_db", 80.0))
        assert r["sample_rate"] == sr and r["num_samples"] == len(y)
        assert r["augment"] == 0 and r["snr_db"] is None
        mine = np.asarray(r["log_mel"], np.float32).reshape(-1, n_mels).T  # stored [T, M]
        assert_db_close(mine, ref, f"{r['path']} (n={len(y)})")
        if "mfcc" in kw:
            mm = np.asarray(r["mfcc"], np.float32).reshape(-1, kw["mfcc"]).T
            assert_mfcc_close(mm, mine, ref, kw["mfcc"], r["path"])
        else:
            assert "mfcc" not in r


def test_resampled_input_equals_librosa_load(dlprep, tmp_path, speech):
    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    files = []
    for sr in [8000, 11025, 22050, 44100, 48000]:
        for i in range(2):
            p = tmp_path / "in" / f"r{sr}_{i}.wav"
            sf.write(p, random_signal(rng, int(rng.integers(300, 2 * sr)), sr), sr,
                     subtype="PCM_16")
            files.append(p)
    files += sorted((speech / "speech").glob("*/*.wav"))[:4]  # espeak-ng: 22050 Hz
    out = tmp_path / "out"
    dlprep("audio", "--input", *files, "--mfcc", "13", "--waveform", "--output", out,
           "--format", "parquet", "-q")
    rows = read_rows(out)
    assert len(rows) == len(files)
    for r in rows:
        y, _ = librosa.load(r["path"], sr=16000)
        assert r["num_samples"] == len(y), r["path"]
        np.testing.assert_allclose(np.asarray(r["audio"], np.float32), y, atol=2e-5,
                                   err_msg=r["path"])
        ref = librosa_db(y, 16000)
        mine = np.asarray(r["log_mel"], np.float32).reshape(-1, 64).T
        assert_db_close(mine, ref, r["path"])
        assert_mfcc_close(np.asarray(r["mfcc"], np.float32).reshape(-1, 13).T, mine, ref, 13,
                          r["path"])


FORMATS = [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"),
           ("wav", "DOUBLE"), ("wav", "PCM_U8"), ("flac", "PCM_16"), ("flac", "PCM_24"),
           ("ogg", "VORBIS")]


def test_every_supported_format_and_stereo(dlprep, tmp_path):
    rng = np.random.default_rng(9)
    (tmp_path / "in").mkdir()
    y = 0.6 * np.sin(2 * np.pi * 440 * np.arange(20000) / 16000) + 0.05 * rng.standard_normal(20000)
    y = y.astype(np.float32)
    for ext, subtype in FORMATS:
        sf.write(tmp_path / "in" / f"x_{subtype}.{ext}", y, 16000, subtype=subtype)
    stereo = np.stack([y, 0.5 * rng.standard_normal(20000).astype(np.float32).clip(-1, 1)], 1)
    sf.write(tmp_path / "in" / "stereo.wav", stereo, 16000, subtype="FLOAT")
    out = tmp_path / "out"
    dlprep("audio", "--input", tmp_path / "in", "--output", out, "--format", "parquet",
           "--waveform", "-q")
    rows = read_rows(out)
    assert len(rows) == len(FORMATS) + 1
    for r in rows:
        # What soundfile decodes (ints scaled to [-1, 1)), averaged to mono, as librosa.load.
        ref_y, sr = sf.read(r["path"], dtype="float32", always_2d=True)
        ref_y = ref_y.mean(axis=1)
        mine = np.asarray(r["audio"], np.float32)
        atol = 1e-3 if r["path"].endswith(".ogg") else 1e-7
        np.testing.assert_allclose(mine, ref_y, atol=atol, err_msg=r["path"])
        assert_db_close(np.asarray(r["log_mel"], np.float32).reshape(-1, 64).T,
                        librosa_db(mine, 16000), r["path"])
        if not r["path"].endswith(".ogg"):
            assert_db_close(np.asarray(r["log_mel"], np.float32).reshape(-1, 64).T,
                            librosa_db(ref_y, 16000), r["path"])


def write_bad_files(d):
    d.mkdir()
    y = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    sf.write(d / "good.wav", y, 16000, subtype="PCM_16")
    sf.write(d / "long.wav", np.tile(y, 3), 16000, subtype="PCM_16")
    b = (d / "good.wav").read_bytes()
    (d / "trunc.wav").write_bytes(b[:len(b) // 2])
    sf.write(d / "x.flac", y, 16000)
    b = (d / "x.flac").read_bytes()
    (d / "x.flac").unlink()
    (d / "trunc.flac").write_bytes(b[:len(b) // 2])
    sf.write(d / "apple.aiff", y, 16000)
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is not audio, " * 20)
    return {"trunc.wav": "truncated: the WAV data chunk announces 32000 bytes",
            "trunc.flac": "decoding failed after",
            "apple.aiff": "unsupported audio format AIFF",
            "empty.wav": "empty file (0 bytes)",
            "text.wav": "not a readable audio file: Format not recognised",
            "long.wav": "too long: 3 s of audio exceeds --max-seconds 2"}


def test_bad_files_are_row_errors_and_good_ones_are_written(dlprep, tmp_path):
    expected = write_bad_files(tmp_path / "in")
    out, errors, stats = tmp_path / "out", tmp_path / "errors.jsonl", tmp_path / "stats.json"
    proc = dlprep("audio", "--input", tmp_path / "in", "--max-seconds", "2", "--output", out,
                  "--format", "parquet", "--errors", errors, "--stats", stats,
                  "--max-error-rate", "1")
    assert "7 clips -> 1 rows" in proc.stderr and "6 failed clip(s)" in proc.stderr
    rows = read_rows(out)
    assert [Path(r["path"]).name for r in rows] == ["good.wav"]
    lines = [json.loads(x) for x in errors.read_text().splitlines()]
    got = {Path(x["row"]["path"]).name: x["error"] for x in lines}
    assert set(got) == set(expected)
    for name, reason in expected.items():
        assert reason in got[name], (name, got[name])
        assert f"'{tmp_path / 'in' / name}'" in got[name]  # the path is in the message
    s = json.loads(stats.read_text())
    assert s["failed_clips"] == 6 and s["clips"] == 7 and s["rows"] == 1
    assert s["errors"]["rows"] == 6
    # --fail-on-error: the job fails and writes nothing.
    proc = dlprep("audio", "--input", tmp_path / "in", "--max-seconds", "2", "--output",
                  tmp_path / "out2", "--fail-on-error", check=False)
    assert proc.returncode == 1
    assert "audio: '" in proc.stderr and "nothing was written" in proc.stderr
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_labels_from_paths_and_mismatch_errors(dlprep, tmp_path, speech):
    out, errors = tmp_path / "out", tmp_path / "errors.jsonl"
    dlprep("audio", "--input", speech / "speech" / "**" / "*.wav", "--input",
           speech / "tones", "--label-regex", "speech/([^/]+)/[^/]+$", "--output", out,
           "--format", "parquet", "--errors", errors, "-q", "--max-error-rate", "0.25")
    rows = read_rows(out)
    assert len(rows) == 12
    for r in rows:
        assert r["label"] == Path(r["path"]).parent.name
    assert sorted({r["label"] for r in rows}) == ["no", "stop", "yes"]
    lines = [json.loads(x) for x in errors.read_text().splitlines()]
    assert len(lines) == 3  # the tones do not match
    for x in lines:
        assert "tones/tone_" in x["row"]["path"] and "--label-regex" in x["error"]


def run_augment(dlprep, speech, out, workers, seed=7, fmt="parquet"):
    dlprep("audio", "--input", speech / "speech" / "**" / "*.wav", "--clip-seconds", "1",
           "--label-regex", LABEL_RE, "--noise", speech / "noise", "--copies", "3",
           "--snr-db", "0:15", "--seed", seed, "--waveform", "--files-per-partition", "3",
           "--workers", workers, "--output", out, "--format", fmt, "-q")


def find_noise_stretch(added, noise):
    """(noise file, offset) of which `added` is a scaled, looped stretch, or None."""
    a = added[:64]
    for name, nz in noise.items():
        n = len(nz)
        windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([nz, nz[:64]]), 64)[:n]
        score = (windows @ a) / np.maximum(np.linalg.norm(windows, axis=1) * np.linalg.norm(a),
                                           1e-12)
        k = int(np.argmax(np.abs(score)))
        seg = nz[(k + np.arange(len(added))) % n]
        g = np.dot(seg, added) / np.dot(seg, seg)
        if np.max(np.abs(added - g * seg)) < 1e-3 * max(1.0, np.abs(added).max()):
            return name, k
    return None


def part_bytes(out):
    return [p.read_bytes() for p in sorted(Path(out).glob("part-*"),
                                           key=lambda p: int(p.name.split("-")[1]))]


def test_augmentation_deterministic_across_workers_and_snr_exact(dlprep, tmp_path, speech):
    for fmt in ["tfrecord", "parquet"]:
        run_augment(dlprep, speech, tmp_path / f"{fmt}1", 1, fmt=fmt)
        run_augment(dlprep, speech, tmp_path / f"{fmt}2", 2, fmt=fmt)
        a, b = part_bytes(tmp_path / f"{fmt}1"), part_bytes(tmp_path / f"{fmt}2")
        assert len(a) == 4 and a == b, fmt  # byte-identical, partition by partition
    rows = read_rows(tmp_path / "parquet1")
    assert len(rows) == 12 * 4
    noise = {}
    for p in sorted((speech / "noise").glob("*.wav")):
        y, _ = librosa.load(p, sr=16000)
        noise[p.name] = y
    by_path = {}
    for r in rows:
        by_path.setdefault(r["path"], []).append(r)
    snrs = []
    for path, rs in by_path.items():
        assert [r["augment"] for r in rs] == [0, 1, 2, 3]
        x = np.asarray(rs[0]["audio"], np.float64)
        assert len(x) == 16000 and rs[0]["snr_db"] is None
        for r in rs[1:]:
            assert r["label"] == rs[0]["label"]
            assert 0 <= r["snr_db"] < 15
            y = np.asarray(r["audio"], np.float64)
            added = y - x
            measured = 10 * np.log10(np.sum(x ** 2) / np.sum(added ** 2))
            assert abs(measured - r["snr_db"]) < 0.01, (path, measured, r["snr_db"])
            snrs.append(r["snr_db"])
            # The added signal is a looped stretch of one noise file, scaled.
            assert find_noise_stretch(added, noise) is not None, path
            # Its features are those of the mixed signal.
            assert_db_close(np.asarray(r["log_mel"], np.float32).reshape(-1, 64).T,
                            librosa_db(y.astype(np.float32), 16000), path)
    assert len(set(np.round(snrs, 4))) == len(snrs)  # every copy drew its own SNR
    # Another seed draws differently; the same seed again gives the same rows.
    run_augment(dlprep, speech, tmp_path / "seed8", 1, seed=8)
    other = read_rows(tmp_path / "seed8")
    assert [r["snr_db"] for r in other] != [r["snr_db"] for r in rows]
    assert [r["snr_db"] for r in other if r["augment"] == 0] == [None] * 12


def test_tfrecord_shapes_read_back_by_tensorflow(dlprep, tmp_path, speech):
    tf = pytest.importorskip("tensorflow")
    sys.path.insert(0, str(ROOT / "python"))
    import dlprep.tfrecord as dt

    out = tmp_path / "tfr"
    dlprep("audio", "--input", speech / "speech" / "**" / "*.wav", "--clip-seconds", "1",
           "--mfcc", "13", "--label-regex", LABEL_RE, "--output", out, "-q")
    spec = read_manifest(out)["features"]
    assert spec["log_mel"]["shape"] == [101, 64] and spec["log_mel"]["fixed_length"]
    assert spec["mfcc"]["shape"] == [101, 13] and spec["mfcc"]["fixed_length"]
    batch = next(iter(dt.dataset(str(out), batch_size=12)))
    assert tuple(batch["log_mel"].shape) == (12, 101, 64)
    assert tuple(batch["mfcc"].shape) == (12, 101, 13)
    labels = sorted(x.decode() for x in batch["label"].numpy())
    assert labels == sorted(["no", "stop", "yes"] * 4)
    # Without --clip-seconds the rows differ in length: shape [-1, 64], read as VarLen.
    out2 = tmp_path / "tfr2"
    dlprep("audio", "--input", speech / "speech" / "**" / "*.wav", "--output", out2, "-q")
    spec2 = read_manifest(out2)["features"]["log_mel"]
    assert spec2["shape"] == [-1, 64] and not spec2["fixed_length"]
    b2 = next(iter(dt.dataset(str(out2), batch_size=12)))
    lm = b2["log_mel"]
    dense = tf.sparse.to_dense(lm) if isinstance(lm, tf.SparseTensor) else lm
    assert dense.shape[0] == 12 and dense.shape[1] % 64 == 0
    del tf


def test_pipeline_file_step_equals_the_command(dlprep, tmp_path, speech):
    args = ["--input", speech / "speech" / "**" / "*.wav", "--clip-seconds", "0.8",
            "--mfcc", "13", "--label-regex", LABEL_RE, "--noise", speech / "noise",
            "--copies", "1", "--seed", "3", "--format", "parquet"]
    dlprep("audio", *args, "--output", tmp_path / "cmd", "-q")
    text = dlprep("audio", *args, "--output", tmp_path / "file", "--dry-run").stdout
    (tmp_path / "p.yaml").write_text(text)
    dlprep("run", tmp_path / "p.yaml", "-q")
    assert read_rows(tmp_path / "cmd") == read_rows(tmp_path / "file")
    # A hand-written step: relative noise folder, defaults filled in by --dry-run.
    (tmp_path / "hand.yaml").write_text(
        f"source: {{format: binary, paths: ['{speech}/speech/yes']}}\n"
        "steps:\n  - audio: {clip_seconds: 1, n_mels: 40, mfcc: 5}\n"
        "sink: {format: parquet, path: hand}\n")
    norm = dlprep("run", tmp_path / "hand.yaml", "--dry-run").stdout
    assert "sample_rate: 16000" in norm and "n_fft: 512" in norm
    dlprep("run", tmp_path / "hand.yaml", "-q")
    rows = read_rows(tmp_path / "hand")
    assert len(rows) == 4 and all(len(r["log_mel"]) == 101 * 40 for r in rows)
    (tmp_path / "bad.yaml").write_text(
        "source: {format: binary, paths: ['" + str(speech) + "/speech/yes']}\n"
        "steps:\n  - audio: {n_fft: 511}\nsink: {format: parquet, path: bad}\n")
    proc = dlprep("run", tmp_path / "bad.yaml", check=False)
    assert proc.returncode != 0 and "--n-fft must be an even number" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--copies", "2"], "audio: --copies 2 needs --noise DIR"),
    (["--noise", "NOISE", "--copies", "1", "--snr-db", "20:5"], "--snr-db: '20:5' is not a range"),
    (["--noise", "NOISE"], "option --noise needs --copies"),
    (["--noise", "EMPTY", "--copies", "1"], "has no files"),
    (["--noise", "BADNOISE", "--copies", "1"], "--noise file"),
    (["--label-regex", "(a)(b)"], "has 2 capture groups"),
    (["--win-length", "600"], "--win-length must be in [1, n_fft=512]"),
    (["--mfcc", "65"], "--mfcc must be in [0, n_mels=64]"),
    (["--fmax", "9000"], "--fmax must be at most half the sample rate"),
    (["--clip-seconds", "0.00001"], "less than one sample"),
])
def test_option_errors(dlprep, tmp_path, speech, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "badnoise").mkdir()
    (tmp_path / "badnoise" / "x.wav").write_text("not audio")
    subst = {"NOISE": str(speech / "noise"), "EMPTY": str(tmp_path / "empty"),
             "BADNOISE": str(tmp_path / "badnoise")}
    args = [subst.get(a, a) for a in args]
    proc = dlprep("audio", "--input", speech / "speech" / "yes", *args, "--output",
                  tmp_path / "out", check=False)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_non_binary_input_is_refused(dlprep, tmp_path):
    # path + content are needed: a folder of Parquet read as binary has them, a Parquet
    # table without them does not.
    import pyarrow as pa
    pq.write_table(pa.table({"x": [1]}), tmp_path / "t.parquet")
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [t.parquet]}\nsteps:\n  - audio: {}\n"
        "sink: {format: parquet, path: o}\n")
    proc = dlprep("run", tmp_path / "p.yaml", check=False)
    assert proc.returncode == 1
    assert "audio: expected a string column 'path'" in proc.stderr


def test_example_pipeline_file(dlprep, tmp_path, speech):
    import shutil
    shutil.copy(ROOT / "examples" / "pipelines" / "speech.yaml", tmp_path)
    shutil.copytree(speech, tmp_path / "data" / "speech")
    dlprep("run", tmp_path / "speech.yaml", "--workers", "2", "-q")
    m = read_manifest(tmp_path / "out" / "speech")
    assert m["rows"] == 12 * 3
    assert m["features"]["log_mel"]["shape"] == [101, 64]
