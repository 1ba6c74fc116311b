"""What dlprep shows a person: the progress line on a terminal, per-row error messages,
help texts and `inspect`'s rendering of values."""
import os
import pty
import re
import select
import socket
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, dlprep_binary

DAY = 86400
T0 = 1_700_006_400


def run_on_terminal(args, timeout=120):
    """Runs dlprep with stderr on a pseudo-terminal; returns (exit code, stderr text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([dlprep_binary(), *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"dlprep {args[0]} did not finish in {timeout} s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout), b"".join(chunks).decode("utf-8", "replace")


def progress_lines(text, label):
    """Every state the progress line of `label` was drawn in, in order."""
    text = text.replace("\x1b[K", "").replace("\r\n", "\n")
    return [s for s in re.split(r"[\r\n]", text) if s.startswith(f"[{label}] ")]


def assert_sane(lines):
    assert lines
    for line in lines:
        for k, n in re.findall(r"(?:part|bucket) (\d+)/(\d+)", line):
            assert int(k) <= int(n), line
        for eta in re.findall(r"ETA (\S+)", line):
            assert re.fullmatch(r"\d+:\d\d(:\d\d)?,?", eta), line
        assert "-" not in line.split("] ", 1)[1], line


def test_windows_progress_line_shows_the_phases_and_rows_read(tmp_path):
    ev = pa.table({
        "customer_id": pa.array([1 + i % 40 for i in range(2000)], pa.int64()),
        "ts": pa.array([T0 + (i * 7919) % (30 * DAY) for i in range(2000)],
                       pa.timestamp("s", tz="UTC")),
        "amount": pa.array([float(i % 13) for i in range(2000)]),
    })
    pq.write_table(ev, tmp_path / "events.parquet", row_group_size=500)
    rc, err = run_on_terminal([
        "windows", "--events", tmp_path / "events.parquet", "--key", "customer_id",
        "--time", "ts", "--values", "amount", "--aggs", "sum", "--window", "7d",
        "--stride", "7d", "--step", "1d", "--output", tmp_path / "out", "--workers", "2"])
    assert rc == 0, err
    lines = progress_lines(err, "windows")
    assert_sane(lines)
    reading = [ln for ln in lines if ln.startswith("[windows] read+shuffle: ")]
    # Rows read are counted during the read and shuffle phase, against the row count
    # from the Parquet metadata.
    counts = [int(m.group(1)) for ln in reading
              if (m := re.match(r"\[windows\] read\+shuffle: (\d+) of 2000 rows read", ln))]
    assert counts and max(counts) == 2000, reading
    assert any(re.search(r", part 4/4", ln) for ln in reading), reading
    groups = [ln for ln in lines if ln.startswith("[windows] groups: ")]
    assert groups and all(re.search(r"bucket \d+/64", ln) for ln in groups), groups
    # The line is cleared before the summary.
    last = [s for s in re.split(r"[\r\n]", err.replace("\x1b[K", "")) if s.strip()][-1]
    assert last.startswith("dlprep windows: 2000 events -> "), err


def test_quiet_and_pipes_get_no_progress_line(dlprep, tmp_path):
    pq.write_table(pa.table({"x": list(range(10))}), tmp_path / "in.parquet")
    rc, err = run_on_terminal(["convert", "-i", tmp_path / "in.parquet", "-o",
                               tmp_path / "out", "-q"])
    assert rc == 0 and err == ""
    p = dlprep("convert", "-i", tmp_path / "in.parquet", "-o", tmp_path / "out2")
    assert "[convert]" not in p.stderr and "\r" not in p.stderr


def refused_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/records"


def write_features(path, n):
    path.mkdir(parents=True, exist_ok=True)
    f = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    pq.write_table(pa.table({"features": pa.array(list(f), pa.list_(pa.float32()))}),
                   path / "in.parquet")


def test_score_http_progress_line_shows_scored_failed_retries_in_flight(tmp_path):
    write_features(tmp_path / "in", 20)
    rc, err = run_on_terminal([
        "score-http", "--url", refused_url(), "--protocol", "records", "--input",
        tmp_path / "in", "--column", "features", "--output", tmp_path / "out",
        "--retries", "3", "--backoff", "0.2"])
    lines = progress_lines(err, "score-http")
    assert_sane(lines)
    # The line is redrawn while the job waits between retries.
    details = [re.search(r", (\d+) scored, (\d+) failed, (\d+) retr(?:y|ies), (\d+) "
                         r"requests? in flight$", ln) for ln in lines]
    assert details and all(details), lines
    for m in details:
        scored, failed, retries, in_flight = map(int, m.groups()[:4])
        assert scored == 0 and failed in (0, 20) and retries <= 3 and in_flight <= 1, lines
    assert any(int(m.group(3)) >= 1 for m in details), lines


def test_rows_failing_with_the_same_message_are_folded(dlprep, tmp_path):
    write_features(tmp_path / "in", 20)
    p = dlprep("score-http", "--url", refused_url(), "--protocol", "records", "--input",
               tmp_path / "in", "--column", "features", "--output", tmp_path / "out",
               "--retries", "0", check=False)
    # One request of 20 rows failed: one message, with the count of the other rows.
    assert p.stderr.count("curl error 7") == 1, p.stderr
    assert "(... and 19 more rows with the same error)" in p.stderr, p.stderr


def write_broken_audio(d):
    d.mkdir(parents=True)
    (d / "a.wav").write_bytes(b"not audio at all")
    (d / "b.wav").write_bytes(b"RIFF" + bytes(100))
    (d / "c.wav").write_bytes(b"\x00" * 64)


def test_audio_error_names_its_path_once(dlprep, tmp_path):
    write_broken_audio(tmp_path / "clips")
    # One good clip, so that the job (with the failed-row limit off) succeeds and lists
    # every failed file: a job whose every row failed reports only the first.
    import wave
    with wave.open(str(tmp_path / "clips" / "d.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, np.int16).tobytes())
    p = dlprep("audio", "--input", tmp_path / "clips", "--output", tmp_path / "out",
               "--files-per-partition", "1", "--max-error-rate", "1", check=False)
    assert p.returncode == 0, p.stderr
    for name in ["a.wav", "b.wav", "c.wav"]:
        path = str(tmp_path / "clips" / name)
        lines = [ln for ln in p.stderr.splitlines() if path in ln]
        assert len(lines) == 1 and lines[0].count(path) == 1, p.stderr
        assert "not a readable audio file" in lines[0]


def test_fail_on_error_message_names_the_option_not_the_code(dlprep, tmp_path):
    write_broken_audio(tmp_path / "clips")
    p = dlprep("audio", "--input", tmp_path / "clips", "--output", tmp_path / "out",
               "--fail-on-error", check=False)
    assert p.returncode != 0
    assert "--fail-on-error" in p.stderr and "::" not in p.stderr, p.stderr
    # The first broken file is named once (not also as the start of its partition).
    assert p.stderr.count(str(tmp_path / "clips" / "a.wav")) == 1, p.stderr


def test_no_cpp_identifiers_in_user_messages():
    # String literals of the engine and the CLI (messages, help) never name C++ fields
    # or types such as RunOptions::fail_on_row_error: users know options. Only the
    # errors for C++ callers who misuse the API name the function they called.
    literal = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
    identifier = re.compile(r"\b[A-Z][A-Za-z]+::[A-Za-z_]+")
    api_misuse = re.compile(r"^(Executor|Pipeline|DatasetWriter)::[A-Z][A-Za-z]+(:| called)")
    found = []
    for path in sorted((ROOT / "src").rglob("*.cc")):
        if path.name.endswith("_test.cc"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            for m in literal.finditer(line):
                if identifier.search(m.group(1)) and not api_misuse.match(m.group(1)):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_gen_help_shows_its_own_examples(dlprep):
    out = dlprep("gen", "--help").stdout
    assert "dlprep gen churn --customers" in out
    assert "dlprep convert" not in out and "dlprep score" not in out


def test_files_of_a_folder_with_only_subfolders_names_recursive(dlprep, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x.wav").write_bytes(b"x")
    p = dlprep("files", tmp_path / "d", check=False)
    assert p.returncode != 0
    assert "--recursive" in p.stderr and "recursive lookup" not in p.stderr, p.stderr
    assert str(tmp_path / "d" / "sub" / "x.wav") in dlprep("files", tmp_path / "d",
                                                            "--recursive").stdout


def test_inspect_shows_lists_nested_lists_and_binary_as_values(dlprep, tmp_path):
    vec = [0.47, 1.02, 2.5] + [float(i) for i in range(29)]
    blob = b"RIFF" + bytes(range(256)) * 16
    blob = blob[:4096]
    table = pa.table({
        "vec": pa.array([vec], pa.list_(pa.float32())),
        "short": pa.array([[1, 2]], pa.list_(pa.int64())),
        "nested": pa.array([[[float(j) for j in range(64)]] * 101],
                           pa.list_(pa.list_(pa.float32()))),
        "words": pa.array([["a", "b"]], pa.list_(pa.string())),
        "blob": pa.array([blob], pa.binary()),
        "tiny": pa.array([b"\x01\x02"], pa.binary()),
        "text": pa.array(["a\x1b[31mred\nline\x07"], pa.string()),
        "empty": pa.array([[]], pa.list_(pa.int64())),
    })
    pq.write_table(table, tmp_path / "t.parquet")
    p = subprocess.run([dlprep_binary(), "inspect", str(tmp_path / "t.parquet")],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode("utf-8")
    assert "vec=[0.47, 1.02, 2.5, ... 32 values]" in out, out
    assert "short=[1, 2]" in out
    assert "nested=[[0, 1, 2, ... 64 values], ... 101 values]" in out, out
    assert 'words=["a", "b"]' in out
    assert "blob=<4,096 bytes: 52 49 46 46 ...>" in out, out
    assert "tiny=<2 bytes: 01 02>" in out
    assert r"text=a\x1b[31mred\nline\x07" in out, out
    assert "empty=[]" in out
    # No raw byte of the data reaches the terminal: only printable text and newlines.
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", p.stdout), p.stdout
    assert "<4,096 bytes: 52 49 46 46 ...>" in dlprep("inspect", "--help").stdout


def test_inspect_shows_tfrecord_bytes_without_raw_bytes(dlprep, tmp_path):
    table = pa.table({"blob": pa.array([bytes(range(200))], pa.binary())})
    pq.write_table(table, tmp_path / "t.parquet")
    dlprep("convert", "-i", tmp_path / "t.parquet", "-o", tmp_path / "tfr", "-q")
    p = subprocess.run([dlprep_binary(), "inspect", str(tmp_path / "tfr")],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert b"blob=<200 bytes: 00 01 02 03 ...>" in p.stdout, p.stdout
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f-\xff]", p.stdout), p.stdout

