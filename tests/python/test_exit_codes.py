"""What a scheduler sees: exit codes (0 ok, 1 job failed, 2 usage), failed-row limits
(--max-error-rate, --max-errors, all rows failed), --stats, readable empty outputs, an
output folder inside an input refused, the manifest's job block, and the number of
files a grouped job writes."""
import json
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import read_manifest

N = 100


def write_features(path, n=N):
    rng = np.random.default_rng(0)
    f = rng.standard_normal((n, 4)).astype(np.float32)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": pa.array(np.arange(n), pa.int64()),
                             "features": pa.array(list(f), pa.list_(pa.float32()))}),
                   path / "in.parquet")


def score_http(dlprep, url, tmp_path, *extra, check=False):
    return dlprep("score-http", "--url", url, "--protocol", "kserve-v2", "--input",
                  tmp_path / "in", "--model-input", "id,features", "--outputs",
                  "score:float64,row_id:int64", "--output", tmp_path / "out", "--format",
                  "parquet", "--stats", tmp_path / "stats.json", "--batch-size", "10",
                  "--retries", "1", "--backoff", "0.01", "--workers", "2", *extra,
                  check=check)


def stats(tmp_path):
    return json.loads((tmp_path / "stats.json").read_text())


def assert_nothing_written(out):
    assert not Path(out).exists() or not any(Path(out).iterdir()), list(Path(out).iterdir())


def refused_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/v2/models/m/infer"


# --- every row failed: exit 1, nothing committed, "failed" in --stats, even with -q ---

@pytest.mark.parametrize("fault,needle", [(None, "curl error 7"),
                                          ({"mode": "status", "code": 500}, "HTTP 500"),
                                          ({"mode": "html"}, "not valid JSON")])
def test_score_http_every_row_failed_fails_the_job(dlprep, srv, tmp_path, fault, needle):
    write_features(tmp_path / "in")
    url = refused_url() if fault is None else srv.url("kserve-v2")
    srv.fault = fault
    # Even a limit that allows every row to fail does not commit an output of errors.
    p = score_http(dlprep, url, tmp_path, "-q", "--max-error-rate", "1", "--errors",
                   tmp_path / "errors.jsonl")
    assert p.returncode == 1, p.stderr
    assert "no row was written: 100 of 100 input rows failed (100%)" in p.stderr
    assert "first error:" in p.stderr and needle in p.stderr, p.stderr
    assert "nothing was written to" in p.stderr
    assert_nothing_written(tmp_path / "out")
    s = stats(tmp_path)
    assert s["status"] == "failed" and s["rows_read"] == N and s["rows_failed"] == N
    assert needle in s["first_error"] and "no row was written" in s["error"]
    # The failed rows are kept for a look, and the message says where.
    assert len((tmp_path / "errors.jsonl").read_text().splitlines()) == N
    assert f"the failed rows are in '{tmp_path / 'errors.jsonl'}'" in p.stderr


def test_audio_over_only_broken_files_fails(dlprep, tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is not audio, " * 20)
    p = dlprep("audio", "--input", d, "--output", tmp_path / "out", "--stats",
               tmp_path / "stats.json", "-q", check=False)
    assert p.returncode == 1, p.stderr
    assert "no row was written: 2 of 2 input rows failed (100%)" in p.stderr
    assert "empty file (0 bytes)" in p.stderr or "not a readable audio file" in p.stderr
    assert_nothing_written(tmp_path / "out")
    s = stats(tmp_path)
    assert s["status"] == "failed" and s["rows_failed"] == 2 and s["rows_read"] == 2


# --- limits: just under passes, just over fails -------------------------------------

def fail_ten_rows(srv):
    # Requests holding row 0 (one batch of 10 rows) fail with 400, never retried.
    srv.fault = {"mode": "fail_ids", "ids": {0}, "code": 400}


@pytest.mark.parametrize("args,ok", [(["--max-error-rate", "0.1"], True),
                                     (["--max-error-rate", "0.09"], False),
                                     (["--max-error-rate", "1", "--max-errors", "10"], True),
                                     (["--max-error-rate", "1", "--max-errors", "9"], False),
                                     ([], False)])  # default rate 0.01
def test_limits_just_under_and_just_over(dlprep, srv, tmp_path, args, ok):
    write_features(tmp_path / "in")
    fail_ten_rows(srv)
    p = score_http(dlprep, srv.url("kserve-v2"), tmp_path, "-q", *args)
    s = stats(tmp_path)
    assert s["rows_read"] == N and s["rows_failed"] == 10
    if ok:
        assert p.returncode == 0, p.stderr
        assert s["status"] == "ok"
        assert pq.read_table(tmp_path / "out").num_rows == 90
        # A run with failed rows prints its summary even with -q.
        assert "90 scored, 10 failed" in p.stderr and "HTTP 400" in p.stderr
    else:
        assert p.returncode == 1, p.stderr
        assert s["status"] == "failed"
        assert "10 of 100 input rows failed (10%), more than the" in p.stderr
        assert "HTTP 400" in p.stderr and "nothing was written" in p.stderr
        assert_nothing_written(tmp_path / "out")


def test_fail_on_error_excludes_the_limits(dlprep, srv, tmp_path):
    write_features(tmp_path / "in")
    p = score_http(dlprep, srv.url("kserve-v2"), tmp_path, "--fail-on-error",
                   "--max-errors", "3")
    assert p.returncode == 2, p.stderr
    assert "--fail-on-error excludes --max-errors" in p.stderr


def test_pipeline_file_limits_and_flags_that_win(dlprep, srv, tmp_path):
    write_features(tmp_path / "in")
    fail_ten_rows(srv)

    def pipeline(extra):
        text = (f"source: {{format: parquet, paths: [in]}}\n"
                f"steps:\n  - score_http: {{url: '{srv.url('kserve-v2')}', columns: "
                f"[id, features], outputs: ['score:float64', 'row_id:int64'], "
                f"batch_size: 10, retries: 0}}\n"
                f"sink: {{format: parquet, path: out}}\n{extra}")
        path = tmp_path / "p.yaml"
        path.write_text(text)
        return path

    p = dlprep("run", pipeline(""), "-q", check=False)
    assert p.returncode == 1 and "more than the 1 that max error rate" in p.stderr
    p = dlprep("run", pipeline("max_error_rate: 0.1\n"), "-q", "--stats",
               tmp_path / "stats.json", check=False)
    assert p.returncode == 0, p.stderr
    assert stats(tmp_path)["rows_failed"] == 10
    # The flag wins over the file; `run` now has --overwrite.
    p = dlprep("run", pipeline("max_error_rate: 0.1\nmax_errors: 20\n"), "--max-errors",
               "5", "--overwrite", check=False)
    assert p.returncode == 1 and "more than the 5 that max errors" in p.stderr
    assert pq.read_table(tmp_path / "out").num_rows == 90  # the earlier output stays
    p = dlprep("run", pipeline("max_error_rate: 2\n"), check=False)
    assert p.returncode == 1 and "max_error_rate" in p.stderr and "0 to 1" in p.stderr


# --- usage errors exit 2 --------------------------------------------------------------

@pytest.mark.parametrize("args,needles", [
    (["convert", "--inptu", "x.parquet", "-o", "out"], ["unknown option '--inptu'"]),
    (["convert", "--bogus", "--other=3"], ["unknown options '--bogus', '--other=3'"]),
    (["convrt", "-i", "x"], ["unknown command 'convrt'", "commands: convert, inspect"]),
    (["convert", "-i", "x.parquet", "-o", "out", "--format", "avro"],
     ["--format", "avro", "tfrecord", "parquet", "csv"]),
    (["score-http", "--url", "http://x", "--model-input", "f", "-i", "x.parquet", "-o", "o",
      "--max-error-rate", "2"], ["--max-error-rate: '2' is not a fraction; expected a "
                                 "number from 0 to 1"]),
    (["convert", "-i", "x.parquet", "-o", "out", "--workers", "many"],
     ["--workers: 'many' is not a count"]),
    (["convert"], ["--input is required"]),
    ([], ["a command is required", "convert"]),
])
def test_usage_errors_exit_2(dlprep, args, needles):
    p = dlprep(*args, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
    assert "--help' for the options" in p.stderr


def test_help_and_version_exit_0(dlprep):
    assert "--max-error-rate" in dlprep("audio", "--help").stdout
    assert "--overwrite" in dlprep("run", "--help").stdout
    assert "dlprep" in dlprep("--version").stdout


# --- run --overwrite -------------------------------------------------------------------

def test_run_overwrite_replaces_the_output(dlprep, tmp_path):
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "in.parquet")
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [in.parquet]}\n"
        "sink: {format: parquet, path: out}\n")
    dlprep("run", tmp_path / "p.yaml", "-q")
    p = dlprep("run", tmp_path / "p.yaml", "-q", check=False)
    assert p.returncode == 1 and "pass --overwrite" in p.stderr
    dlprep("run", tmp_path / "p.yaml", "-q", "--overwrite")
    assert pq.read_table(tmp_path / "out").num_rows == 3


# --- outputs every reader opens ------------------------------------------------------

def write_table(tmp_path):
    pq.write_table(pa.table({"x": pa.array([1, 2, 3], pa.int64()),
                             "v": pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float32())),
                             "s": ["a", "b", "c"]}), tmp_path / "in.parquet")


def run_empty(dlprep, tmp_path, fmt):
    (tmp_path / f"{fmt}.yaml").write_text(
        "source: {format: parquet, paths: [in.parquet]}\n"
        "steps:\n  - filter: {expr: 'x > 100'}\n"
        f"sink: {{format: {fmt}, path: {fmt}}}\n")
    dlprep("run", tmp_path / f"{fmt}.yaml", "-q")
    return tmp_path / fmt


def test_empty_parquet_dataset_is_readable(dlprep, tmp_path):
    write_table(tmp_path)
    out = run_empty(dlprep, tmp_path, "parquet")
    m = read_manifest(out)
    assert m["rows"] == 0 and len(m["files"]) == 1
    t = pq.read_table(out)
    assert t.num_rows == 0 and t.schema.names == ["x", "v", "s"]
    assert t.schema.field("v").type == pa.list_(pa.float32())
    p = dlprep("inspect", out)
    assert "0" in p.stdout and "x" in p.stdout
    # dlprep reads it back too.
    dlprep("convert", "-i", out, "-o", tmp_path / "again", "-q")
    assert read_manifest(tmp_path / "again")["rows"] == 0


def test_empty_tfrecord_dataset_is_readable(dlprep, tmp_path):
    write_table(tmp_path)
    out = run_empty(dlprep, tmp_path, "tfrecord")
    m = read_manifest(out)
    assert m["rows"] == 0 and len(m["files"]) == 1 and m["files"][0]["bytes"] == 0
    assert [f["name"] for f in m["schema"]] == ["x", "v", "s"]
    assert set(m["features"]) == {"x", "v", "s"}
    dlprep("inspect", out)
    dlprep("convert", "-i", out, "-o", tmp_path / "pq", "--format", "parquet", "-q")
    t = pq.read_table(tmp_path / "pq")
    assert t.num_rows == 0 and t.schema.names == ["x", "v", "s"]
    tf = pytest.importorskip("tensorflow")
    import dlprep.tfrecord as dt
    assert list(dt.dataset(out)) == []
    assert list(tf.data.TFRecordDataset(dt.files(out))) == []


def test_manifest_job_block_agrees_with_its_files(dlprep, tmp_path):
    write_table(tmp_path)
    dlprep("convert", "-i", tmp_path / "in.parquet", "-o", tmp_path / "out",
           "--max-rows-per-file", "1", "-q")
    m = read_manifest(tmp_path / "out")
    assert len(m["files"]) == 3
    assert m["job"]["files_written"] == 3
    assert m["job"]["bytes_written"] == sum(f["bytes"] for f in m["files"]) > 0


# --- an output folder inside an input --------------------------------------------------

@pytest.mark.parametrize("inp,out,needle", [
    ("d2", "d2/out", "is inside the input 'DIR/d2'"),
    ("d2", "d2", "is the input"),
    ("d2/*", "d2/out", "may be read by the input"),
    ("d2/**/*.parquet", "d2/sub/out", "may be read by the input"),
    ("d2/a.parquet", "d2", "is inside the output folder"),
])
def test_output_inside_input_is_refused(dlprep, tmp_path, inp, out, needle):
    (tmp_path / "d2").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "d2" / "a.parquet")
    p = dlprep("convert", "-i", tmp_path / inp, "-o", tmp_path / out, "--format",
               "parquet", "--overwrite", check=False)
    assert p.returncode == 1, p.stderr
    assert needle.replace("DIR", str(tmp_path)) in p.stderr, p.stderr
    assert "read its own output" in p.stderr or "replace what it reads" in p.stderr
    assert sorted(x.name for x in (tmp_path / "d2").iterdir()) == ["a.parquet"]


def test_output_beside_a_glob_is_accepted(dlprep, tmp_path):
    (tmp_path / "raw").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "raw" / "a.parquet")
    dlprep("convert", "-i", tmp_path / "raw" / "*.parquet", "-o", tmp_path / "raw" / "out",
           "-q")
    dlprep("convert", "-i", tmp_path / "raw" / "*.parquet", "-o", tmp_path / "raw" / "out",
           "-q", "--overwrite")
    assert read_manifest(tmp_path / "raw" / "out")["rows"] == 2


def test_run_refuses_output_inside_its_source(dlprep, tmp_path):
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "d" / "a.parquet")
    (tmp_path / "p.yaml").write_text("source: {format: parquet, paths: [d]}\n"
                                     "sink: {format: parquet, path: d/out}\n")
    p = dlprep("run", tmp_path / "p.yaml", check=False)
    assert p.returncode == 1 and "read its own output" in p.stderr


# --- grouped jobs: one file per worker -------------------------------------------------

def test_windows_writes_one_file_per_worker(dlprep, tmp_path):
    day = 86400
    n = 3000
    rng = np.random.default_rng(1)
    pq.write_table(pa.table({"k": pa.array(rng.integers(0, 500, n), pa.int64()),
                             "ts": pa.array(1_700_006_400 + rng.integers(0, 30 * day, n),
                                            pa.int64())}), tmp_path / "ev.parquet")
    args = ["windows", "--events", tmp_path / "ev.parquet", "--key", "k", "--time", "ts",
            "--window", "7d", "--stride", "7d", "--step", "1d", "--format", "parquet", "-q"]
    tables = {}
    for w in [1, 3]:
        dlprep(*args, "--output", tmp_path / f"w{w}", "--workers", w)
        m = read_manifest(tmp_path / f"w{w}")
        assert len(m["files"]) == w, m["files"]
        tables[w] = pq.read_table(tmp_path / f"w{w}")
    assert tables[1].num_rows > 500
    assert tables[1].to_pylist() == tables[3].to_pylist()  # same rows, same order
    # The writer's limits still split files.
    dlprep(*args, "--output", tmp_path / "rows", "--workers", "1", "--max-rows-per-file",
           "200")
    m = read_manifest(tmp_path / "rows")
    assert len(m["files"]) == -(-tables[1].num_rows // 200)
