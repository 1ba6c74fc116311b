"""dlprep score-http against a real HTTP model server on 127.0.0.1 (model_server.py):
the three protocols, values checked against the model computed here, and every fault
mode: each input row is scored exactly once and in order, or reported as an error."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model_server import K

N = 600
DIM = 8


def features(n=N, dim=DIM, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32)


def write_input(path, n=N, dim=DIM, shape=None, row_group=250, text=False):
    f = features(n, dim)
    ftype = pa.list_(pa.float32())
    field = pa.field("features", ftype,
                     metadata={"dlprep.shape": shape} if shape else None)
    cols = {"id": pa.array(np.arange(n), pa.int64()),
            "features": pa.array(list(f), ftype)}
    fields = [pa.field("id", pa.int64()), field]
    if text:
        cols["text"] = pa.array([f'r{i} "q" \\ \n é €' for i in range(n)], pa.string())
        fields.append(pa.field("text", pa.string()))
    table = pa.Table.from_arrays(list(cols.values()), schema=pa.schema(fields))
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path / "in.parquet", row_group_size=row_group)
    return f


def run(dlprep, srv, tmp_path, protocol="kserve-v2", columns="id,features",
        outputs="score:float64,row_id:int64", extra=(), check=True, out="out", **kw):
    args = ["score-http", "--url", srv.url(protocol), "--protocol", protocol,
            "--input", tmp_path / "in", "--model-input", columns, "--output", tmp_path / out,
            "--format", "parquet",
            "--stats", tmp_path / "stats.json", "--errors", tmp_path / "errors.jsonl",
            "--backoff", "0.01", "--workers", "2"]
    if "--fail-on-error" not in extra:
        args += ["--max-error-rate", "1"]  # these tests look at the failed rows
    if outputs:
        args += ["--outputs", outputs]
    return dlprep(*args, *extra, check=check, **kw)


def read_out(tmp_path, out="out"):
    return pq.read_table(tmp_path / out)


def read_errors(tmp_path):
    p = tmp_path / "errors.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def stats(tmp_path):
    return json.loads((tmp_path / "stats.json").read_text())


def assert_all_scored_in_order(tmp_path, f):
    t = read_out(tmp_path)
    assert t.column("row_id").to_pylist() == list(range(len(f)))
    assert t.column("id").to_pylist() == list(range(len(f)))
    np.testing.assert_allclose(t.column("score").to_numpy(), K * f.astype(np.float64).sum(1),
                               rtol=1e-6, atol=1e-6)
    assert read_errors(tmp_path) == []


def assert_received_exactly(srv, n, times):
    with srv.lock:
        assert sorted(srv.received) == list(range(n))
        assert set(srv.received.values()) == {times}, srv.received.most_common(3)


# --- protocols ----------------------------------------------------------------------

def test_kserve_v2_scores_every_row_once_in_order(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in")
    run(dlprep, srv, tmp_path, outputs="score:float64,row_id:int64,pair:float32[2]",
        extra=["--batch-size", "64", "--concurrency", "8"])
    assert_all_scored_in_order(tmp_path, f)
    t = read_out(tmp_path)
    pair = np.array(t.column("pair").to_pylist())
    np.testing.assert_allclose(pair[:, 0], f.astype(np.float64).sum(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pair[:, 1], f.max(1), rtol=1e-6)
    assert t.schema.field("pair").metadata == {b"dlprep.shape": b"[2]"}
    assert t.schema.field("score").type == pa.float64()
    assert_received_exactly(srv, N, 1)
    s = stats(tmp_path)
    # 3 row groups of 250, 250, 100 rows -> 4 + 4 + 2 requests of <= 64 rows.
    assert s["http"]["requests"] == 10 == srv.requests
    assert s["http"]["rows_scored"] == N and s["http"]["rows_failed"] == 0
    assert s["http"]["retries"] == 0
    with srv.lock:
        assert {len(ids) for ids in srv.completed} == {64, 58, 36}
        assert all(h.get("Content-Type") == "application/json" for h in srv.headers_seen)


def test_kserve_sends_exact_float32_values(dlprep, srv, tmp_path):
    # The shortest float32 text reads back in NumPy to the very same float32.
    f = write_input(tmp_path / "in", n=50)
    run(dlprep, srv, tmp_path, outputs="pair:float32[2],row_id:int64")
    t = read_out(tmp_path)
    assert np.array(t.column("pair").to_pylist(), dtype=np.float32)[:, 1].tolist() == \
        f.max(1).tolist()


def test_tfserving_nests_instances_by_shape(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in", shape="[2,4]")
    run(dlprep, srv, tmp_path, protocol="tfserving", columns="features",
        outputs="score:float64", extra=["--batch-size", "100"])
    t = read_out(tmp_path)
    np.testing.assert_allclose(t.column("score").to_numpy(), K * f.astype(np.float64).sum(1),
                               rtol=1e-6, atol=1e-6)
    assert t.column("id").to_pylist() == list(range(N))
    with srv.lock:
        assert srv.requests == 7  # 250 -> 3, 250 -> 3, 100 -> 1


def test_tfserving_instances_are_nested_lists(dlprep, srv, tmp_path, monkeypatch):
    # What the server actually got: per row a 2 x 4 nested list, values exact.
    import model_server
    write_input(tmp_path / "in", n=3, shape="[2,4]")
    got = []
    real = model_server._row_outputs

    def capture(row):
        got.append(row["features"])
        return real(row)

    monkeypatch.setattr(model_server, "_row_outputs", capture)
    run(dlprep, srv, tmp_path, protocol="tfserving", columns="features",
        outputs="score:float64")
    assert np.array(got).shape == (3, 2, 4)
    assert np.array_equal(np.array(got, dtype=np.float32), features(3).reshape(3, 2, 4))


def test_records_with_strings_round_trip(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in", text=True)
    run(dlprep, srv, tmp_path, protocol="records", columns="id,features,text",
        outputs="score:float64,row_id:int64,echo:string,len:int64",
        extra=["--batch-size", "50", "--concurrency", "4"])
    assert_all_scored_in_order(tmp_path, f)
    t = read_out(tmp_path)
    assert t.column("echo").to_pylist() == t.column("text").to_pylist()
    assert t.column("len").to_pylist() == [len(s) for s in t.column("text").to_pylist()]
    assert_received_exactly(srv, N, 1)


def test_tfserving_object_instances(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in")
    run(dlprep, srv, tmp_path, protocol="tfserving")
    assert_all_scored_in_order(tmp_path, f)


# --- faults -------------------------------------------------------------------------

@pytest.mark.parametrize("code", [500, 502, 503])
def test_5xx_retried_until_success(dlprep, srv, tmp_path, code):
    f = write_input(tmp_path / "in")
    srv.fault = {"mode": "status", "code": code, "times": 2}
    run(dlprep, srv, tmp_path, extra=["--retries", "3"])
    assert_all_scored_in_order(tmp_path, f)
    assert_received_exactly(srv, N, 3)
    h = stats(tmp_path)["http"]
    assert h["requests"] == 30 and h["retries"] == 20 and h["http_errors"] == 20


def test_5xx_beyond_retries_become_row_errors(dlprep, srv, tmp_path):
    write_input(tmp_path / "in")
    srv.fault = {"mode": "status", "code": 500, "times": 99}
    # Every row failed: the job fails and commits no output, but keeps the errors.
    p = run(dlprep, srv, tmp_path, extra=["--retries", "2"], check=False)
    assert p.returncode == 1 and f"no row was written: {N} of {N} input rows" in p.stderr
    assert not (tmp_path / "out").exists()
    errors = read_errors(tmp_path)
    assert sorted(int(e["row"]["id"]) for e in errors) == list(range(N))
    msg = errors[0]["error"]
    assert "HTTP 500" in msg and "injected 500" in msg and "gave up after 2 retries" in msg
    assert "3 attempts" in msg
    assert_received_exactly(srv, N, 3)
    s = stats(tmp_path)
    assert s["http"]["rows_failed"] == N and s["errors"]["rows"] == N
    assert s["status"] == "failed" and s["rows_failed"] == N


def test_fail_on_error_fails_the_job_and_writes_nothing(dlprep, srv, tmp_path):
    write_input(tmp_path / "in")
    srv.fault = {"mode": "status", "code": 500, "times": 99}
    p = run(dlprep, srv, tmp_path, extra=["--retries", "0", "--fail-on-error"], check=False)
    assert p.returncode == 1
    assert "HTTP 500" in p.stderr and "nothing was written" in p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_4xx_not_retried_and_good_batches_kept_in_order(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in")
    bad = {70, 300}  # in the 2nd request of partition 0 and the 1st of partition 1
    srv.fault = {"mode": "fail_ids", "ids": bad, "code": 422}
    run(dlprep, srv, tmp_path, extra=["--batch-size", "64", "--retries", "5"])
    t = read_out(tmp_path)
    failed = set(range(64, 128)) | set(range(250, 314))
    keep = [i for i in range(N) if i not in failed]
    assert t.column("row_id").to_pylist() == keep
    assert t.column("id").to_pylist() == keep
    np.testing.assert_allclose(t.column("score").to_numpy(),
                               K * f[keep].astype(np.float64).sum(1), rtol=1e-6, atol=1e-6)
    errors = read_errors(tmp_path)
    assert sorted(int(e["row"]["id"]) for e in errors) == sorted(failed)
    assert all("HTTP 422" in e["error"] and "not retried" in e["error"] and
               "permanent failure" in e["error"] for e in errors)
    assert_received_exactly(srv, N, 1)  # nothing retried


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_waits_without_spending_retries(dlprep, srv, tmp_path, code):
    f = write_input(tmp_path / "in", n=100, row_group=100)
    srv.fault = {"mode": "retry_after", "code": code, "after": 1, "times": 1}
    t0 = time.monotonic()
    run(dlprep, srv, tmp_path, extra=["--retries", "0", "--batch-size", "50"])
    assert time.monotonic() - t0 >= 1.0
    assert_all_scored_in_order(tmp_path, f)
    h = stats(tmp_path)["http"]
    assert h["retry_after_waits"] == 2 and h["retries"] == 0 and h["requests"] == 4
    assert_received_exactly(srv, 100, 2)


def test_retry_after_beyond_max_wait_fails_the_batch(dlprep, srv, tmp_path):
    write_input(tmp_path / "in", n=10, row_group=10)
    srv.fault = {"mode": "retry_after", "code": 429, "after": 120, "times": 99}
    t0 = time.monotonic()
    p = run(dlprep, srv, tmp_path, extra=["--max-wait", "5"], check=False)
    assert p.returncode == 1 and "no row was written: 10 of 10" in p.stderr
    assert time.monotonic() - t0 < 30
    errors = read_errors(tmp_path)
    assert len(errors) == 10
    assert "HTTP 429" in errors[0]["error"] and "beyond --max-wait" in errors[0]["error"]


def test_slow_response_times_out_and_is_retried_once_counted(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in", n=200, row_group=200)
    srv.fault = {"mode": "slow", "seconds": 1.5, "times": 1}
    run(dlprep, srv, tmp_path, extra=["--timeout", "0.5", "--batch-size", "50"])
    assert_all_scored_in_order(tmp_path, f)
    h = stats(tmp_path)["http"]
    assert h["transport_errors"] == 4 and h["retries"] == 4
    # The server got and worked on each row twice (the abandoned slow attempt and the
    # retry); the output still has each row once.
    assert_received_exactly(srv, 200, 2)
    time.sleep(1.2)  # let the abandoned slow attempts finish on the server
    with srv.lock:
        assert len(srv.answered) == 200 and min(srv.answered.values()) >= 1


def test_connection_reset_is_retried(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in")
    srv.fault = {"mode": "reset", "times": 1}
    run(dlprep, srv, tmp_path)
    assert_all_scored_in_order(tmp_path, f)
    assert_received_exactly(srv, N, 2)
    # libcurl itself re-sends a request once when a reused keep-alive connection dies
    # before any response byte, so not every reset reaches our retry policy.
    assert 1 <= stats(tmp_path)["http"]["transport_errors"] <= 10


@pytest.mark.parametrize("mode,needle", [("malformed", "not valid JSON"),
                                         ("wrong_rows", "wrong number of rows")])
def test_unusable_responses_fail_their_batch_never_misalign(dlprep, srv, tmp_path, mode,
                                                            needle):
    write_input(tmp_path / "in")
    srv.fault = {"mode": mode, "times": 1}
    p = run(dlprep, srv, tmp_path, check=False)
    assert p.returncode == 1 and "no row was written" in p.stderr
    assert not (tmp_path / "out").exists()
    errors = read_errors(tmp_path)
    assert sorted(int(e["row"]["id"]) for e in errors) == list(range(N))
    assert all(needle in e["error"] and "unusable response (HTTP 200)" in e["error"]
               for e in errors)
    assert_received_exactly(srv, N, 1)  # not retried


@pytest.mark.parametrize("code,relative", [(301, False), (307, False), (308, True)])
def test_redirects_are_not_followed_and_name_the_location(dlprep, srv, tmp_path, code,
                                                          relative):
    write_input(tmp_path / "in", n=100, row_group=100)
    target = srv.url("kserve-v2").replace("/m/", "/m2/")
    # A relative Location is named as the absolute URL it resolves to.
    location = "/v2/models/m2/infer" if relative else target
    srv.fault = {"mode": "redirect", "code": code, "location": location}
    p = run(dlprep, srv, tmp_path, extra=["--batch-size", "50"], check=False)
    assert p.returncode == 1 and "100 of 100 input rows failed" in p.stderr
    errors = read_errors(tmp_path)
    assert len(errors) == 100
    assert all(f"HTTP {code} from" in e["error"] and f"redirected to '{target}'" in e["error"]
               and f"use --url {target}" in e["error"] and "1 attempt)" in e["error"]
               for e in errors), errors[0]
    assert_received_exactly(srv, 100, 1)


def test_response_over_max_response_size_fails_its_batch(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in", n=100, row_group=100)
    # Rows 0-49 get a response padded past the limit; rows 50-99 a normal one.
    srv.fault = {"mode": "padded", "bytes": 200_000, "ids": {0}}
    p = run(dlprep, srv, tmp_path, extra=["--batch-size", "50",
                                          "--max-response-size", "64KB"])
    errors = read_errors(tmp_path)
    assert "50 scored, 50 failed" in p.stderr
    assert [e["row_in_batch"] for e in errors] == list(range(50))
    assert all("larger than --max-response-size (65536 bytes)" in e["error"] and
               "not retried" in e["error"] for e in errors), errors[0]
    t = read_out(tmp_path)
    assert t.column("row_id").to_pylist() == list(range(50, 100))
    np.testing.assert_allclose(t.column("score").to_numpy(),
                               K * f[50:].astype(np.float64).sum(1), rtol=1e-6, atol=1e-6)
    # The same padded answers are taken under the default limit.
    srv.reset_counts()
    run(dlprep, srv, tmp_path, out="out2", extra=["--batch-size", "50"])
    assert pq.read_table(tmp_path / "out2").num_rows == 100


def test_small_input_batches_still_fill_the_concurrency(dlprep, srv, tmp_path):
    # One partition read in batches of 10 rows (the source's batch_rows), requests of 5:
    # without gathering input batches (the operator's min_batch_rows, batch_size x
    # concurrency = 40 rows) at most 2 requests could be in flight.
    f = write_input(tmp_path / "in", n=400, row_group=400)
    srv.delay = 0.05
    (tmp_path / "p.yaml").write_text(
        f"source: {{format: parquet, paths: ['{tmp_path / 'in'}'], batch_rows: 10}}\n"
        "steps:\n"
        f"  - score_http: {{url: '{srv.url('kserve-v2')}', columns: [id, features], "
        "outputs: ['score:float64', 'row_id:int64'], batch_size: 5, concurrency: 8}\n"
        f"sink: {{format: parquet, path: '{tmp_path / 'out'}'}}\n")
    dlprep("run", tmp_path / "p.yaml", "--workers", "1", "--stats", tmp_path / "stats.json")
    assert_all_scored_in_order(tmp_path, f)
    assert srv.requests == 80
    assert srv.max_in_flight >= 6, srv.max_in_flight
    stages = {st["name"]: st for st in stats(tmp_path)["run"]["stages"]}
    assert stages["source"]["batches_out"] == 40
    assert stages["score_http"]["batches_in"] == 10  # 40 batches -> 10 calls of 40 rows


def test_out_of_order_completion_keeps_input_order(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in", n=512, row_group=512)
    srv.fault = {"mode": "first_slow", "seconds": 0.8}
    run(dlprep, srv, tmp_path, extra=["--batch-size", "32", "--concurrency", "8"])
    assert_all_scored_in_order(tmp_path, f)
    with srv.lock:
        first = [k for k, ids in enumerate(srv.completed) if 0 in ids]
    assert first and first[0] > 5  # the first request really finished after later ones
    assert_received_exactly(srv, 512, 1)


def test_connection_refused_is_retried_then_reported(dlprep, tmp_path):
    write_input(tmp_path / "in", n=20, row_group=20)
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    p = dlprep("score-http", "--url", f"http://127.0.0.1:{port}/records", "--protocol",
               "records", "--input", tmp_path / "in", "--model-input", "features", "--output",
               tmp_path / "out", "--errors", tmp_path / "errors.jsonl", "--retries", "2",
               "--backoff", "0.01", "--stats", tmp_path / "stats.json", check=False)
    assert p.returncode == 1
    errors = read_errors(tmp_path)
    assert len(errors) == 20
    assert "failed" in errors[0]["error"] and "curl error 7" in errors[0]["error"]
    assert "gave up after 2 retries" in errors[0]["error"]
    assert stats(tmp_path)["http"]["requests"] == 3
    assert "20 of 20 input rows failed" in p.stderr


def test_rate_limit_spaces_requests(dlprep, srv, tmp_path):
    write_input(tmp_path / "in", n=100, row_group=100)
    t0 = time.monotonic()
    run(dlprep, srv, tmp_path, extra=["--batch-size", "10", "--rate-limit", "20"])
    elapsed = time.monotonic() - t0
    assert srv.requests == 10
    assert elapsed >= 9 / 20 * 0.95


# --- headers and secrets --------------------------------------------------------------

def test_header_env_secret_is_sent_and_never_printed(dlprep, srv, tmp_path):
    secret = "s3cr3t-t0ken-value"
    f = write_input(tmp_path / "in")
    srv.required_auth = "Bearer " + secret
    env = dict(os.environ, MODEL_TOKEN="Bearer " + secret)
    run(dlprep, srv, tmp_path, extra=["--header-env", "Authorization=MODEL_TOKEN",
                                      "--header", "X-Team: ml"], env=env)
    assert_all_scored_in_order(tmp_path, f)
    with srv.lock:
        assert all(h["X-Team"] == "ml" for h in srv.headers_seen)
    # Failures whose body echoes the header: redacted in the errors file and stats.
    srv.fault = {"mode": "status", "code": 500, "times": 99}
    p = run(dlprep, srv, tmp_path, out="out2", env=env,
            extra=["--header-env", "Authorization=MODEL_TOKEN", "--retries", "0"],
            check=False)
    assert p.returncode == 1
    errors = (tmp_path / "errors.jsonl").read_text()
    assert "HTTP 500" in errors and '\\"auth\\": \\"***\\"' in errors
    dry = run(dlprep, srv, tmp_path, out="out3", env=env,
              extra=["--header-env", "Authorization=MODEL_TOKEN", "--dry-run"])
    for text in [p.stdout, p.stderr, errors, (tmp_path / "stats.json").read_text(),
                 dry.stdout, dry.stderr]:
        assert secret not in text
    assert "Authorization=MODEL_TOKEN" in dry.stdout


def test_missing_secret_and_unauthorized(dlprep, srv, tmp_path):
    write_input(tmp_path / "in", n=10, row_group=10)
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_TOKEN"}
    p = run(dlprep, srv, tmp_path, extra=["--header-env", "Authorization=NO_SUCH_TOKEN"],
            env=env, check=False)
    assert p.returncode == 1
    assert "environment variable 'NO_SUCH_TOKEN'" in p.stderr
    srv.required_auth = "Bearer x"
    assert run(dlprep, srv, tmp_path, check=False).returncode == 1
    errors = read_errors(tmp_path)
    assert len(errors) == 10 and "HTTP 401" in errors[0]["error"]
    assert "not retried" in errors[0]["error"]


# --- bad input and options ----------------------------------------------------------

def test_bad_rows_are_reported_and_the_rest_scored(dlprep, srv, tmp_path):
    (tmp_path / "in").mkdir()
    feats = [[1.0, 2.0], [float("nan"), 1.0], None, [3.0, 4.0, 5.0], [0.5, 0.25]]
    t = pa.table({"id": pa.array(range(5), pa.int64()),
                  "features": pa.array(feats, pa.list_(pa.float32()))})
    pq.write_table(t, tmp_path / "in" / "in.parquet")
    run(dlprep, srv, tmp_path)
    out = read_out(tmp_path)
    assert out.column("row_id").to_pylist() == [0, 4]
    assert out.column("score").to_pylist() == [K * 3.0, K * 0.75]
    errors = {int(e["row"]["id"]): e["error"] for e in read_errors(tmp_path)}
    assert set(errors) == {1, 2, 3}
    assert "NaN or infinity" in errors[1]
    assert "is null" in errors[2]
    assert "has 3 values where the batch's first row has 2" in errors[3]


@pytest.mark.parametrize("args,needle", [
    (["--model-input", "nope"], "no column 'nope'"),
    (["--model-input", "features", "--outputs", "id"], "already has a column 'id'"),
    (["--model-input", "features", "--outputs", "x:float16"], "--outputs: 'x:float16'"),
    (["--model-input", "features", "--header", "NoColon"], "--header: 'NoColon'"),
    (["--model-input", "features", "--batch-size", "0"], "--batch-size"),
    (["--model-input", "features", "--header-env", "bad"], "--header-env: 'bad'"),
    (["--model-input", "features", "--max-response-size", "lots"], "--max-response-size"),
    (["--model-input", "features", "--max-response-size", "0"], "--max-response-size: 0"),
])
def test_bad_options_fail_before_sending(dlprep, srv, tmp_path, args, needle):
    write_input(tmp_path / "in", n=10, row_group=10)
    p = dlprep("score-http", "--url", srv.url("kserve-v2"), "--input", tmp_path / "in",
               "--output", tmp_path / "out", *args, check=False)
    assert p.returncode == 1, p.stderr
    assert needle in p.stderr
    assert srv.requests == 0
    assert not (tmp_path / "out").exists()


def test_bad_url(dlprep, tmp_path):
    write_input(tmp_path / "in", n=10, row_group=10)
    p = dlprep("score-http", "--url", "ftp://127.0.0.1/x", "--input", tmp_path / "in",
               "--model-input", "features", "--output", tmp_path / "out", check=False)
    assert p.returncode == 1 and "not an http:// or https:// URL" in p.stderr


# --- pipeline file and cancellation --------------------------------------------------

def test_dry_run_pipeline_file_runs_the_same(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in")
    dry = run(dlprep, srv, tmp_path, extra=["--dry-run", "--batch-size", "40"])
    assert not (tmp_path / "out").exists() and srv.requests == 0
    doc = json.loads(dry.stdout.split("\n", 1)[1])
    step = doc["steps"][0]["score_http"]
    assert step["batch_size"] == 40 and step["columns"] == ["id", "features"]
    assert step["outputs"] == ["score:float64", "row_id:int64"]
    (tmp_path / "p.yaml").write_text(dry.stdout)
    dlprep("run", tmp_path / "p.yaml", "--errors", tmp_path / "errors.jsonl")
    assert_all_scored_in_order(tmp_path, f)
    assert srv.requests == 2 * 7 + 3


def test_pipeline_file_step_errors_name_the_option(dlprep, srv, tmp_path):
    write_input(tmp_path / "in", n=10, row_group=10)
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [in]}\n"
        "steps:\n"
        f"  - score_http: {{url: '{srv.url('records')}', protocol: grpc, columns: [features]}}\n"
        "sink: {format: parquet, path: out}\n")
    p = dlprep("run", tmp_path / "p.yaml", check=False)
    assert p.returncode == 1 and "protocol" in p.stderr and "grpc" in p.stderr
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [in]}\n"
        "steps:\n"
        f"  - score_http: {{url: '{srv.url('records')}', protocol: records, "
        "columns: [features], timeout: 5, concurency: 3}\n"
        "sink: {format: parquet, path: out}\n")
    p = dlprep("run", tmp_path / "p.yaml", check=False)
    assert p.returncode == 1 and "concurency" in p.stderr


def test_ctrl_c_stops_in_flight_requests_and_writes_nothing(dlprep, srv, tmp_path):
    write_input(tmp_path / "in")
    srv.fault = {"mode": "slow", "seconds": 30, "times": 1}
    proc = subprocess.Popen(
        [dlprep.exe, "score-http", "--url", srv.url("kserve-v2"), "--input", tmp_path / "in",
         "--model-input", "features", "--output", tmp_path / "out", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while srv.requests < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.requests >= 4  # requests are in flight, held by the slow server
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 3
    assert proc.returncode == 130, err
    assert "cancel" in err.lower()
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or not any(p.name.startswith("part-") or p.name == "_SUCCESS"
                                           for p in out_dir.iterdir())
