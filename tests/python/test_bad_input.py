"""Corrupt, truncated, garbage and mislabelled TFRecord files give clear errors (or are
skipped and counted with --skip-corrupt); jobs that fail or die leave no visible output."""
import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# Regression seeds: hostile inputs that once crashed or misled dlprep
# (tests/fuzz/make_tfrecord_corpus.py says how each was made).
CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"


def write_plain_records(path, payloads):
    tf = pytest.importorskip("tensorflow")
    with tf.io.TFRecordWriter(str(path)) as w:
        for p in payloads:
            w.write(p)
    offsets, off = [], 0
    for p in payloads:
        offsets.append(off)
        off += 8 + 4 + len(p) + 4
    return offsets


def example_bytes(i):
    tf = pytest.importorskip("tensorflow")
    f = {"id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
         "pad": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x" * 40]))}
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.tfrecord"
    payloads = [example_bytes(i) for i in range(5)]
    offsets = write_plain_records(path, payloads)
    return path, offsets


def flip(path, pos, bit=0x10):
    data = bytearray(path.read_bytes())
    data[pos] ^= bit
    path.write_bytes(bytes(data))


def run_convert(dlprep, src, out, *extra):
    return dlprep("convert", "-i", src, "-o", out, "--format", "parquet", "-q", *extra,
                  check=False)


def assert_job_error(proc, out, *needles):
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    for n in needles:
        assert str(n) in line, (n, line)
    assert not out.exists(), "a failed job must leave no output folder"
    leftovers = [p for p in out.parent.iterdir() if "dlprep-attempt" in p.name]
    assert leftovers == [], "a failed job must remove its attempt folder"


def test_good_file_reads(dlprep, tmp_path, good_file):
    path, _ = good_file
    out = tmp_path / "o"
    assert run_convert(dlprep, path, out).returncode == 0
    assert pq.read_table(out).column("id").to_pylist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("where", ["length", "length_crc", "data", "data_crc"])
def test_flipped_bit_names_file_and_offset(dlprep, tmp_path, good_file, where):
    path, offsets = good_file
    rec = 2
    start = offsets[rec]
    pos = {"length": start + 1, "length_crc": start + 9, "data": start + 12 + 5,
           "data_crc": offsets[rec + 1] - 2}[where]
    flip(path, pos)
    out = tmp_path / "o"
    proc = run_convert(dlprep, path, out)
    assert_job_error(proc, out, path.name, "offset", start)


def test_skip_corrupt_counts_and_keeps_good_records(dlprep, tmp_path, good_file):
    path, offsets = good_file
    flip(path, offsets[2] + 12 + 5)
    out = tmp_path / "o"
    stats = tmp_path / "stats.json"
    proc = dlprep("convert", "-i", path, "-o", out, "--format", "parquet", "--skip-corrupt",
                  "--stats", stats)
    assert proc.returncode == 0
    assert pq.read_table(out).column("id").to_pylist() == [0, 1, 3, 4]
    s = json.loads(stats.read_text())
    assert s["input"]["skipped_records"] == 1
    assert str(offsets[2]) in s["input"]["skipped"][0]
    assert "skipped 1 corrupt record" in proc.stderr


@pytest.mark.parametrize("cut", [3, 14, 30])
def test_truncated_file(dlprep, tmp_path, good_file, cut):
    path, offsets = good_file
    data = path.read_bytes()
    path.write_bytes(data[: offsets[4] + cut])  # cut inside the last record
    out = tmp_path / "o"
    proc = run_convert(dlprep, path, out)
    assert_job_error(proc, out, path.name, offsets[4])
    assert "truncat" in proc.stderr.lower()


def test_garbage_file(dlprep, tmp_path):
    path = tmp_path / "garbage.tfrecord"
    path.write_bytes(np.random.default_rng(3).bytes(1000))
    out = tmp_path / "o"
    proc = run_convert(dlprep, path, out, "--input-compression", "none")
    assert_job_error(proc, out, path.name, "offset 0")


def test_empty_file_is_zero_rows(dlprep, tmp_path):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    # An empty file has no records to infer a schema from; with other data it is fine.
    other = tmp_path / "good.tfrecord"
    write_plain_records(other, [example_bytes(9)])
    out = tmp_path / "o"
    proc = dlprep("convert", "-i", path, "-i", other, "-o", out, "--format", "parquet", "-q")
    assert proc.returncode == 0
    assert pq.read_table(out).column("id").to_pylist() == [9]


def test_wrong_compression_flag(dlprep, tmp_path, good_file):
    path, _ = good_file
    out = tmp_path / "o"
    proc = run_convert(dlprep, path, out, "--input-compression", "gzip")
    assert_job_error(proc, out, path.name)
    assert "gzip" in proc.stderr.lower()
    gz = tmp_path / "plain_name.tfrecord"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    proc = run_convert(dlprep, gz, out, "--input-compression", "none")
    assert_job_error(proc, out, gz.name)
    assert "gzip" in proc.stderr.lower()
    # Auto-detection reads it.
    assert run_convert(dlprep, gz, out).returncode == 0


def test_inspect_verify(dlprep, tmp_path, good_file):
    path, offsets = good_file
    ok = dlprep("inspect", path, "--verify", "-q")
    assert "rows: 5" in ok.stdout and "verify: OK" in ok.stdout
    flip(path, offsets[3] + 12 + 2)
    bad = dlprep("inspect", path, "--verify", "-q", check=False)
    assert bad.returncode == 1
    assert path.name in bad.stderr and str(offsets[3]) in bad.stderr


def record_offsets(data):
    """Start offsets of the records of an uncompressed TFRecord file's bytes."""
    offsets, off = [], 0
    while off < len(data):
        offsets.append(off)
        off += 16 + int.from_bytes(data[off:off + 8], "little")
    return offsets


def test_inspect_verify_checks_the_manifest(dlprep, tmp_path, good_file):
    path, _ = good_file
    out = tmp_path / "tfr"
    dlprep("convert", "-i", path, "-o", out, "--max-rows-per-file", "3", "-q")
    ok = dlprep("inspect", out, "--verify", "-q")
    assert "verify: OK" in ok.stdout and "match _manifest.json (2 files)" in ok.stdout
    first, second = sorted(out.glob("part-*.tfrecord"))
    # A whole record removed from the first file: every CRC still checks out.
    data = first.read_bytes()
    first.write_bytes(data[:record_offsets(data)[-1]])
    bad = dlprep("inspect", out, "--verify", "-q", check=False)
    assert bad.returncode == 1, bad.stdout
    line = bad.stderr.strip().splitlines()[-1]
    assert line.startswith("dlprep inspect: error: verify failed: ")
    assert f"{first.name}: _manifest.json lists 3 rows, read 2" in line
    assert f"{first.name}: _manifest.json lists {len(data)} bytes, the file has " in line
    assert "verify: OK" not in bad.stdout
    # A file gone, and one that the manifest does not list.
    first.write_bytes(data)
    second.rename(out / "part-extra.tfrecord")
    bad = dlprep("inspect", out, "--verify", "-q", check=False)
    assert bad.returncode == 1
    assert f"{second.name}: listed in _manifest.json but missing" in bad.stderr
    assert "part-extra.tfrecord: not listed in _manifest.json" in bad.stderr


def big_parquet(tmp_path, rows=200_000):
    rng = np.random.default_rng(0)
    vec = pa.FixedSizeListArray.from_arrays(
        pa.array(rng.standard_normal(rows * 256).astype(np.float32)), 256)
    t = pa.table({"id": pa.array(np.arange(rows)), "vec": vec})
    path = tmp_path / "big.parquet"
    pq.write_table(t, path, row_group_size=10_000)
    return path


def wait_for_attempt(parent, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any("dlprep-attempt" in p.name for p in parent.iterdir()):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_killed_job_leaves_no_visible_output(dlprep, tmp_path):
    src = big_parquet(tmp_path)
    parent = tmp_path / "jobs"
    parent.mkdir()
    out = parent / "out"
    proc = subprocess.Popen([dlprep.exe, "convert", "-i", str(src), "-o", str(out),
                             "--compression", "gzip", "--max-rows-per-file", "5000", "-q"])
    assert wait_for_attempt(parent, proc), "job finished before it could be killed"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    leftovers = [p for p in parent.iterdir() if "dlprep-attempt" in p.name]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")
    # The next job names the leftover folder and how to remove it.
    small = tmp_path / "small.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3]}), small)
    again = dlprep("convert", "-i", small, "-o", out, "-q")
    assert str(leftovers[0]) in again.stderr and "rm -rf" in again.stderr
    assert (out / "_SUCCESS").exists()


def test_interrupted_job_cleans_up(dlprep, tmp_path):
    src = big_parquet(tmp_path)
    parent = tmp_path / "jobs"
    parent.mkdir()
    out = parent / "out"
    proc = subprocess.Popen([dlprep.exe, "convert", "-i", str(src), "-o", str(out),
                             "--compression", "gzip", "-q"], stderr=subprocess.PIPE, text=True)
    assert wait_for_attempt(parent, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "nothing was written" in err
    assert not out.exists()
    assert list(parent.iterdir()) == []


def test_existing_output_needs_overwrite(dlprep, tmp_path, good_file):
    path, _ = good_file
    out = tmp_path / "o"
    assert run_convert(dlprep, path, out).returncode == 0
    proc = run_convert(dlprep, path, out)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr and str(out) in proc.stderr
    assert run_convert(dlprep, path, out, "--overwrite").returncode == 0
    assert pq.read_table(out).num_rows == 5


def test_usage_errors_name_the_option(dlprep, tmp_path, good_file):
    path, _ = good_file
    out = tmp_path / "o"
    p = dlprep("convert", "-i", path, "-o", out, "--max-bytes-per-file", "lots", check=False)
    assert p.returncode == 1 and "--max-bytes-per-file" in p.stderr
    p = dlprep("convert", "-i", path, "-o", out, "--shards", "2", "--max-rows-per-file", "5",
               check=False)
    assert p.returncode == 1 and "--shards" in p.stderr
    p = dlprep("convert", "-i", tmp_path / "data.xyz", "-o", out, check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr
    (tmp_path / "data.xyz").write_text("?")
    p = dlprep("convert", "-i", tmp_path / "data.xyz", "-o", out, check=False)
    assert p.returncode == 1 and "--input-format" in p.stderr
    p = dlprep("convert", "-i", path, "-o", out, "--format", "avro", check=False)
    assert p.returncode != 0 and "--format" in p.stderr


@pytest.mark.parametrize("name", sorted(
    p.name for p in (CORPUS / "tfrecord_framing").glob("length_*")))
def test_huge_record_length_is_an_error_not_a_crash(dlprep, tmp_path, name):
    # Two good records, then a header whose length (2^63, or a few below 2^64) has a
    # valid CRC: length + footer wrapped around and every reader died with SIGSEGV.
    src = CORPUS / "tfrecord_framing" / name
    verify = dlprep("inspect", src, "--verify", "-q", check=False)
    assert verify.returncode == 1, verify.stderr
    assert name in verify.stderr and "at byte offset 100" in verify.stderr
    out = tmp_path / "o"
    assert_job_error(run_convert(dlprep, src, out), out, name, "at byte offset 100")
    stats = tmp_path / "stats.json"
    proc = run_convert(dlprep, src, out, "--skip-corrupt", "--stats", stats)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out).column("id").to_pylist() == [0, 1]
    s = json.loads(stats.read_text())
    assert s["input"]["skipped_records"] == 1
    assert "at byte offset 100; skipped the rest of the file" in s["input"]["skipped"][0]


@pytest.mark.parametrize("name, kept, lost", [
    ("gzip_corrupt_block_after_10.tfrecord.gz", list(range(10)), "corrupt gzip data"),
    ("gzip_trailing_garbage.tfrecord.gz", [0, 1], "16 bytes after the end of the gzip data"),
])
def test_damaged_gzip(dlprep, tmp_path, name, kept, lost):
    src = CORPUS / "tfrecord_framing" / name
    other = tmp_path / "more.tfrecord"
    write_plain_records(other, [example_bytes(i) for i in (100, 101)])
    out = tmp_path / "o"
    proc = dlprep("convert", "-i", src, "-i", other, "-o", out, "--format", "parquet", "-q",
                  check=False)
    assert_job_error(proc, out, name, lost, "at byte offset")
    # --skip-corrupt keeps every record before the damage, reports the rest of the file
    # as skipped and goes on with the next file (it failed the job before).
    stats = tmp_path / "stats.json"
    proc = dlprep("convert", "-i", src, "-i", other, "-o", out, "--format", "parquet",
                  "--skip-corrupt", "--stats", stats)
    assert pq.read_table(out).column("id").to_pylist() == kept + [100, 101]
    s = json.loads(stats.read_text())
    assert s["input"]["skipped_records"] == 1
    assert name in s["input"]["skipped"][0] and lost in s["input"]["skipped"][0]
    assert "skipped the rest of the file" in s["input"]["skipped"][0]
    assert "skipped 1 corrupt record" in proc.stderr


def test_feature_key_not_utf8_is_refused(dlprep, tmp_path):
    # Records 0 and 2 are fine; record 1 has a feature key b"bad\xff\xfekey". Protobuf
    # refuses such an Example (map keys are proto3 strings); dlprep wrote it to Parquet
    # that pyarrow could not read.
    src = CORPUS / "tfrecord_framing" / "key_not_utf8.tfrecord"
    out = tmp_path / "o"
    proc = run_convert(dlprep, src, out)
    assert_job_error(proc, out, src.name, "record at byte offset 50",
                     "feature key 'bad\\xff\\xfekey' is not valid UTF-8")
    stats = tmp_path / "stats.json"
    proc = run_convert(dlprep, src, out, "--skip-corrupt", "--stats", stats)
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out)
    assert table.column_names == ["id", "name"]
    assert table.column("id").to_pylist() == [0, 2]
    s = json.loads(stats.read_text())
    assert s["input"]["skipped_records"] == 1
    assert "record at byte offset 50" in s["input"]["skipped"][0]


PIPELINE_HEAD = b"source: {format: tfrecord, paths: [%s]}\nsteps:\n"


@pytest.mark.parametrize("steps", [
    b'  - filter: {expr: "id > \xc3\xa9"}\nsink: {format: parquet, path: out}\n',
    b"  - filter: {expr: id > 1 \xc3}\nsink: {format: parquet, path: out}\n",
    b"  - filter: {expr: id > 1 \xc3}",  # the file ends in half a UTF-8 character
    b"sink: {format: parquet, path: out}\nb\xffd: 1\n",
])
def test_pipeline_errors_on_bytes_beyond_ascii_are_clean(dlprep, tmp_path, steps):
    # Error messages naming these bytes made the --stats JSON writer throw: abort (134).
    src = tmp_path / "in.tfrecord"
    write_plain_records(src, [example_bytes(i) for i in range(3)])
    pipeline = tmp_path / "p.yaml"
    pipeline.write_bytes(PIPELINE_HEAD % str(src).encode() + steps)
    stats = tmp_path / "stats.json"
    proc = dlprep("run", pipeline, "--stats", stats, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("dlprep run: error: ") and "p.yaml" in proc.stderr
    assert "terminate" not in proc.stderr
    s = json.loads(stats.read_text(encoding="utf-8"))
    assert s["status"] == "error" and "p.yaml" in s["error"]


def catches_sigint(pid):
    """Whether process `pid` has a SIGINT handler installed (SigCgt in /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return (int(line.split()[1], 16) >> (signal.SIGINT - 1)) & 1 == 1
    except OSError:
        pass
    return False


def sigint_after(cmd, delay):
    """Starts `cmd`, sends SIGINT `delay` seconds later and returns (exit code, stderr).
    The time the dynamic loader takes before main() does not count: the signal waits up
    to 0.3 s more for the process to catch SIGINT (dlprep installs its handler first
    thing in main, so only a process that does it later is still signalled unprepared)."""
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline and proc.poll() is None and not catches_sigint(proc.pid):
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("command", ["windows", "convert"])
def test_sigint_right_after_the_start_exits_130_and_leaves_nothing(dlprep, tmp_path, command):
    """Ctrl-C in the first moments (flags, globbing, opening inputs, the windows scan)
    exits 130 saying "interrupted", like one during the run, and leaves no output."""
    data = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 3000, "--days", 120, "-o", data, "-q")
    if command == "convert":
        # Many files, so that globbing and opening them takes a while.
        events = pq.read_table(data / "events")
        many = tmp_path / "many"
        many.mkdir()
        step = -(-events.num_rows // 400)
        for i in range(400):
            pq.write_table(events.slice(i * step, step), many / f"part-{i:04d}.parquet")
        args = ["convert", "-i", str(many / "*.parquet"), "--compression", "gzip"]
    else:
        args = ["windows", "--events", data / "events", "--labels", data / "labels",
                "--key", "customer_id", "--time", "ts", "--category", "event_type",
                "--values", "amount,duration", "--window", "14d", "--stride", "7d",
                "--step", "1d", "--label-time", "churn_ts"]
    parent = tmp_path / "jobs"
    parent.mkdir()
    for delay in [0.05, 0.1, 0.15, 0.2]:
        out = parent / f"out-{int(delay * 1000)}"
        code, err = sigint_after([dlprep.exe, *args, "-o", out, "-q"], delay)
        assert code == 130, (delay, code, err)
        assert err.strip().splitlines()[-1].startswith(f"dlprep {command}: interrupted"), err
        assert list(parent.iterdir()) == [], (delay, err)  # no output, no attempt folder
