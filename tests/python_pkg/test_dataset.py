"""dlprep.Dataset against the `dlprep` command on the same input: readers, steps and
writers give the same bytes (TFRecord) and rows; Arrow in and out without copies."""
import json
import math
import os
import struct
import wave

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import dlprep
from conftest import data_files, file_bytes


def events_table(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "user": pa.array(rng.integers(0, 50, n), pa.int64()),
        "kind": pa.array(rng.choice(["a", "b", "c"], n)),
        "x": pa.array(rng.normal(size=n), pa.float64()),
        "path": pa.array([f"clips/{'yes' if i % 3 else 'no'}/{i}.wav" for i in range(n)]),
        "vec": pa.array([rng.normal(size=4).astype(np.float32).tolist() for _ in range(n)],
                        pa.list_(pa.float32())),
    })


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    d = tmp_path_factory.mktemp("events")
    t = events_table()
    for i in range(3):  # three files: three partitions
        pq.write_table(t.slice(i * 1700, 1700), d / f"part{i}.parquet", row_group_size=600)
    return d, t


def read_all(folder):
    return pq.read_table([str(p) for p in data_files(folder)])


# -- readers and writers vs `dlprep convert` ------------------------------------------
def test_parquet_to_tfrecord_is_byte_identical_to_convert(cli, events, tmp_path):
    src, _ = events
    stats = dlprep.read_parquet(src).write_tfrecord(tmp_path / "py", compression="gzip",
                                                    workers=2)
    cli("convert", "-i", src, "-o", tmp_path / "cli", "--compression", "gzip", "-q")
    assert file_bytes(tmp_path / "py") == file_bytes(tmp_path / "cli")
    assert stats["rows_written"] == 5000 and stats["files_written"] == len(
        data_files(tmp_path / "py"))
    m_py = json.loads((tmp_path / "py" / "_manifest.json").read_text())
    m_cli = json.loads((tmp_path / "cli" / "_manifest.json").read_text())
    assert m_py["schema"] == m_cli["schema"] and m_py["rows"] == m_cli["rows"] == 5000
    assert (tmp_path / "py" / "_SUCCESS").exists()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_parquet_and_csv_equal_convert(cli, events, tmp_path, fmt):
    src, _ = events
    ds = dlprep.read_parquet(src, columns=["id", "user", "kind", "x"])
    getattr(ds, f"write_{fmt}")(tmp_path / "py")
    cli("convert", "-i", src, "--columns", "id,user,kind,x", "-o", tmp_path / "cli",
        "--format", fmt, "-q")
    if fmt == "parquet":
        assert read_all(tmp_path / "py").equals(read_all(tmp_path / "cli"))
    else:
        assert file_bytes(tmp_path / "py") == file_bytes(tmp_path / "cli")


def test_writing_into_what_the_job_reads_is_refused_and_loses_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"a": [1, 2, 3]}), tmp_path / "in" / "a.parquet")
    ds = dlprep.read_parquet(tmp_path / "in")
    with pytest.raises(dlprep.InvalidInput, match="is the input .*would read its own output"):
        ds.write_parquet(tmp_path / "in", overwrite=True)
    with pytest.raises(dlprep.InvalidInput, match="is inside the input"):
        ds.write_tfrecord(tmp_path / "in" / "out")
    with pytest.raises(dlprep.InvalidInput, match="is inside the output folder"):
        ds.write_csv(tmp_path, overwrite=True)
    # A join's source counts too.
    side = dlprep.from_arrow(pa.table({"a": [1], "b": [2.0]}))
    with pytest.raises(dlprep.InvalidInput, match="is inside the input"):
        side.join(ds, on="a").write_parquet(tmp_path / "in" / "j")
    assert sorted(os.listdir(tmp_path / "in")) == ["a.parquet"]
    assert pq.read_table(tmp_path / "in").column("a").to_pylist() == [1, 2, 3]
    ds.write_parquet(tmp_path / "out")  # a folder beside the input is fine
    assert pq.read_table(tmp_path / "out").num_rows == 3


def test_read_csv_json_tfrecord_and_binary_files(cli, events, tmp_path):
    src, t = events
    small = t.select(["id", "user", "kind", "x"]).slice(0, 300)
    pcsv.write_csv(small, tmp_path / "a.csv")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in small.to_pylist()))
    assert dlprep.read_csv(tmp_path / "a.csv").to_arrow().equals(
        pcsv.read_csv(tmp_path / "a.csv"))
    got = dlprep.read_json(tmp_path / "a.jsonl").to_arrow()
    assert got.num_rows == 300 and got.column("id").to_pylist() == list(range(300))
    # TFRecord written by the CLI reads back with the manifest's exact schema.
    cli("convert", "-i", src, "-o", tmp_path / "tfr", "-q")
    back = dlprep.read_tfrecord(tmp_path / "tfr").to_arrow()
    assert back.schema.field("vec").type == pa.list_(pa.float32())
    back = back.sort_by("id")
    assert back.select(["id", "user", "kind"]).equals(t.select(["id", "user", "kind"]))
    # TFRecord has float32 only: doubles come back rounded to float32.
    assert np.array_equal(back.column("x").to_numpy(),
                          t.column("x").to_numpy().astype(np.float32).astype(np.float64))
    # Binary files: Spark's binaryFile schema.
    (tmp_path / "bin").mkdir()
    for i in range(5):
        (tmp_path / "bin" / f"f{i}.dat").write_bytes(bytes([i]) * (i + 1))
    b = dlprep.read_binary_files(tmp_path / "bin", name_filter="*.dat").to_arrow()
    assert b.column_names == ["path", "modificationTime", "length", "content"]
    assert b.column("length").to_pylist() == [1, 2, 3, 4, 5]
    assert b.column("content").to_pylist()[2] == b"\x02\x02\x02"


# -- steps vs the same pipeline file under `dlprep run` --------------------------------
def test_builtin_steps_equal_dlprep_run_of_explain(cli, events, tmp_path, capsys):
    src, _ = events
    ds = (dlprep.read_parquet(src)
          .filter("x > 0 and kind != 'c'")
          .regex_extract("path", "([^/]+)/[^/]+$", "label")
          .split("id", {"train": 0.8, "test": 0.2}, seed=3)
          .rename({"x": "value"})
          .cast({"user": "int32"})
          .select(["id", "user", "value", "label", "split", "vec"]))
    text = ds.explain()
    assert capsys.readouterr().out == text
    for step in ("filter", "regex_extract", "split", "rename", "cast", "select"):
        assert f"  - {step}: " in text
    ds.write_tfrecord(tmp_path / "py")
    pf = tmp_path / "p.yaml"
    pf.write_text(text + "sink: {format: tfrecord, path: " + str(tmp_path / "cli") + "}\n")
    cli("run", pf, "-q")
    assert file_bytes(tmp_path / "py") == file_bytes(tmp_path / "cli")
    t = dlprep.read_tfrecord(tmp_path / "py").to_arrow()
    assert t.schema.field("user").type == pa.int32()
    assert set(t.column("label").to_pylist()) <= {"yes", "no"}
    assert all(v > 0 for v in t.column("value").to_pylist())


def test_windows_equal_the_windows_command(cli, tmp_path):
    data = tmp_path / "churn"
    cli("gen", "churn", "--customers", 150, "--days", 60, "-o", data, "-q")
    common = dict(key="customer_id", time="ts", category="event_type",
                  values=["amount", "duration"], aggs=["sum", "mean", "max"], window="14d",
                  stride="7d", step="1d", horizon="30d")
    ds = dlprep.read_parquet(data / "events").windows(
        **common, labels=dlprep.read_parquet(data / "labels"), label_time="churn_ts")
    ds.write_parquet(tmp_path / "py", memory_limit="64MB")
    cli("windows", "--events", data / "events", "--labels", data / "labels", "--key",
        "customer_id", "--time", "ts", "--category", "event_type", "--values",
        "amount,duration", "--aggs", "sum,mean,max", "--window", "14d", "--stride", "7d",
        "--step", "1d", "--horizon", "30d", "--label-time", "churn_ts", "--output",
        tmp_path / "cli", "--format", "parquet", "-q")
    a, b = read_all(tmp_path / "py"), read_all(tmp_path / "cli")
    assert a.num_rows > 150
    assert a.equals(b)


def _write_wav(path, freq, sr=16000, seconds=0.5):
    n = int(sr * seconds)
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / sr)))
                      for i in range(n))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(frames)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    for i in range(6):
        _write_wav(d / ("yes" if i % 2 else "no") / f"c{i}.wav", 200 + 90 * i)
    (d / "no" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return d


def test_audio_equals_the_audio_command(cli, clips, tmp_path):
    ds = dlprep.read_binary_files(clips, name_filter="*.wav", recursive=True).audio(
        clip_seconds=1, mfcc=13, label_regex="([^/]+)/[^/]+$")
    # One clip of seven is broken: over the default rate (0.01), so allow it.
    with pytest.raises(dlprep.Error, match="1 of 7 input rows failed"):
        ds.write_tfrecord(tmp_path / "default")
    assert not (tmp_path / "default").exists()
    stats = ds.write_tfrecord(tmp_path / "py", errors=tmp_path / "errors.jsonl",
                              max_error_rate=0.2)
    cli("audio", "-i", clips, "--recursive", "--name-filter", "*.wav", "--clip-seconds", 1,
        "--mfcc", 13, "--label-regex", "([^/]+)/[^/]+$", "-o", tmp_path / "cli", "-q",
        "--max-error-rate", "0.2")
    assert file_bytes(tmp_path / "py") == file_bytes(tmp_path / "cli")
    assert stats["rows_written"] == 6 and stats["row_errors"] == 1
    err = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert len(err) == 1 and "broken.wav" in json.dumps(err[0])
    with pytest.raises(dlprep.Error, match="broken.wav"):
        ds.write_tfrecord(tmp_path / "strict", fail_on_error=True)
    assert not (tmp_path / "strict").exists()


# -- Arrow in and out --------------------------------------------------------------------
def test_to_arrow_does_not_copy_a_large_tensor_column():
    n, width = 20000, 256
    values = pa.array(np.random.default_rng(1).normal(size=n * width).astype(np.float32))
    col = pa.ListArray.from_arrays(pa.array(np.arange(0, n * width + 1, width, dtype=np.int32)),
                                   values)
    t = pa.table({"id": pa.array(np.arange(n)), "x": col})
    out = dlprep.from_arrow(t).select(["x", "id"]).to_arrow()
    assert out.column("x").num_chunks == 1
    src_buf = t.column("x").chunk(0).values.buffers()[1]
    out_buf = out.column("x").chunk(0).values.buffers()[1]
    assert out_buf.address == src_buf.address  # the same memory, not a copy
    assert out.column("id").equals(t.column("id"))


def test_from_arrow_accepts_pyarrow_polars_and_duckdb():
    t = pa.table({"a": list(range(100)), "b": [f"s{i}" for i in range(100)]})
    expected = t.filter(pa.compute.greater(t["a"], 49))
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=10))
    got = dlprep.from_arrow(reader).filter("a > 49").to_arrow()
    assert got.equals(expected)
    assert dlprep.from_arrow(t).filter("a > 49").to_arrow().equals(expected)
    assert dlprep.from_arrow(t.to_batches()[0]).count() == 100
    polars = pytest.importorskip("polars")
    pl = polars.DataFrame({"a": list(range(100)), "b": [f"s{i}" for i in range(100)]})
    got = dlprep.from_arrow(pl).filter("a > 49").to_arrow()
    assert got.column("a").to_pylist() == list(range(50, 100))
    assert got.column("b").to_pylist() == [f"s{i}" for i in range(50, 100)]
    duckdb = pytest.importorskip("duckdb")
    rel = duckdb.sql("select range::BIGINT as a, 's' || range as b from range(100)")
    got = dlprep.from_arrow(rel).filter("a > 49").to_arrow()
    assert got.column("a").to_pylist() == list(range(50, 100))
    # And back: the output goes to any consumer.
    assert polars.from_arrow(dlprep.from_arrow(t).to_arrow()).height == 100


def test_from_pandas_to_pandas_and_to_batches():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    out = dlprep.from_pandas(df).filter("a >= 2").to_pandas()
    assert out["b"].tolist() == ["y", "z"]
    r = dlprep.from_pandas(df).to_batches()
    assert isinstance(r, pa.RecordBatchReader)
    assert r.read_all().num_rows == 3


def test_a_table_runs_twice_a_reader_once():
    t = pa.table({"a": [1, 2, 3]})
    ds = dlprep.from_arrow(t)
    assert ds.count() == 3 and ds.count() == 3
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
    ds = dlprep.from_arrow(reader)
    assert ds.count() == 3
    with pytest.raises(Exception):
        ds.count()


def test_closing_the_reader_early_stops_the_run(events):
    src, _ = events
    r = dlprep.read_parquet(src).to_batches()
    first = r.read_next_batch()
    assert first.num_rows > 0
    r.close()  # must return promptly and leave no thread behind


# -- run() -------------------------------------------------------------------------------
def test_run_a_pipeline_file(cli, events, tmp_path):
    src, _ = events
    pf = tmp_path / "p.yaml"
    pf.write_text(f"source: {{format: parquet, paths: ['{src}']}}\n"
                  "steps:\n  - filter: {expr: \"kind == 'a'\"}\n"
                  "sink: {format: parquet, path: out}\n")
    stats = dlprep.run(pf, workers=2)
    t = read_all(tmp_path / "out")
    assert t.num_rows == stats["rows_written"] > 0
    assert set(t.column("kind").to_pylist()) == {"a"}


def test_score_equals_the_score_command(cli, events, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3)))
    model.save(str(tmp_path / "m.pt"))
    src, t = events
    ds = dlprep.read_parquet(src, columns=["id", "vec"]).score(
        tmp_path / "m.pt", "vec", shapes=["4"], argmax=True, softmax=True)
    ds.write_tfrecord(tmp_path / "py", workers=2)
    cli("score", "--model", tmp_path / "m.pt", "-i", src, "--columns", "id,vec", "--model-input",
        "vec", "--shape", "4", "--argmax", "--softmax", "-o", tmp_path / "cli", "-q")
    assert file_bytes(tmp_path / "py") == file_bytes(tmp_path / "cli")
    got = ds.to_arrow().sort_by("id")
    x = torch.tensor(np.stack(t.sort_by("id").column("vec").to_numpy(zero_copy_only=False)))
    with torch.no_grad():
        ref = torch.softmax(model(x), dim=1)
    assert got.column("prediction").to_pylist() == ref.argmax(dim=1).tolist()
    assert np.allclose(np.stack(got.column("scores").to_numpy(zero_copy_only=False)),
                       ref.numpy(), atol=1e-6)


def test_progress_bar_with_tqdm(events, tmp_path, capsys):
    pytest.importorskip("tqdm")
    src, _ = events
    dlprep.read_parquet(src).write_parquet(tmp_path / "o", progress=True)
    err = capsys.readouterr().err
    import re
    done = re.findall(r"write_parquet: .*?(\d+)/(\d+)", err)
    assert done and done[-1][0] == done[-1][1], err
    dlprep.read_parquet(src).write_parquet(tmp_path / "o2", progress=False)
    assert capsys.readouterr().err == ""


def test_score_http_equals_the_score_http_command(cli, tmp_path, model_server):
    server = model_server
    rng = np.random.default_rng(5)
    n = 300
    t = pa.table({"id": pa.array(np.arange(n), pa.int64()),
                  "features": pa.array(list(rng.standard_normal((n, 8)).astype(np.float32)),
                                       pa.list_(pa.float32()))})
    pq.write_table(t, tmp_path / "in.parquet", row_group_size=100)
    url = server.url("kserve-v2")
    dlprep.read_parquet(tmp_path / "in.parquet").score_http(
        url, ["id", "features"], outputs=["score:float64", "row_id:int64"],
        batch_size=32, concurrency=4).write_parquet(tmp_path / "py", workers=2)
    cli("score-http", "--url", url, "--input", tmp_path / "in.parquet", "--model-input",
        "id,features", "--outputs", "score:float64,row_id:int64", "--batch-size", 32,
        "--concurrency", 4, "--format", "parquet", "-o", tmp_path / "cli", "-q")
    a, b = read_all(tmp_path / "py"), read_all(tmp_path / "cli")
    assert a.equals(b)
    assert a.column("row_id").to_pylist() == list(range(n))
    expected = [server.K * float(np.sum(np.asarray(v, dtype=np.float32), dtype=np.float64))
                for v in t.column("features").to_pylist()]
    # The server sums the decimal text of the float32 values: close, not equal.
    assert np.allclose(a.column("score").to_numpy(), expected, rtol=1e-6, atol=1e-6)
    # A server that refuses every request: every row is a row error, none a score.
    # The job fails, whatever the limits, and writes nothing.
    server.fault = {"mode": "fail_ids", "ids": set(range(n)), "code": 400}
    with pytest.raises(dlprep.Error, match=f"no row was written: {n} of {n} input rows"):
        dlprep.read_parquet(tmp_path / "in.parquet").score_http(
            url, ["id", "features"], outputs=["score:float64", "row_id:int64"],
            retries=0).write_parquet(tmp_path / "bad", max_error_rate=1)
    assert not (tmp_path / "bad").exists()


def test_one_shard_of_a_dlprep_folder_reads_with_the_manifest_schema(tmp_path):
    t = pa.table({"x": pa.array([0.5, 1.5], pa.float64()),
                  "ts": pa.array([1, 2], pa.int64()).cast(pa.timestamp("s", tz="UTC")),
                  "flag": [True, False]})
    dlprep.from_arrow(t).write_tfrecord(tmp_path / "d")
    one = dlprep.read_tfrecord(data_files(tmp_path / "d")[0]).to_arrow()
    assert one.schema == t.schema
    assert one.equals(t)


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("30s", 30.0), ("30", 30.0),
                                          ("1.5h", 5400.0), ("2w", 1209600.0), (45, 45.0),
                                          (0.25, 0.25)])
def test_parse_duration_is_the_engines_grammar(text, seconds):
    assert dlprep.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,size", [("512MiB", 512 << 20), ("512MB", 512 << 20),
                                       ("64kb", 64 << 10), ("1.5GB", 3 << 29), (4096, 4096)])
def test_parse_size_is_the_engines_grammar(text, size):
    assert dlprep.parse_size(text) == size


def test_bad_durations_and_sizes_name_the_option():
    with pytest.raises(dlprep.InvalidInput, match="option timeout: '3y' is not a duration"):
        dlprep.parse_duration("3y", "timeout")
    with pytest.raises(dlprep.InvalidInput, match="option memory_limit: 'lots' is not a byte"):
        dlprep.parse_size("lots", "memory_limit")


def test_windows_take_durations_in_any_unit_and_bare_seconds():
    events = pa.table({"k": pa.array([1, 1, 2], pa.int64()),
                       "ts": pa.array([0, 86400 * 20, 86400 * 3], pa.int64())})
    a = dlprep.from_arrow(events).windows("k", "ts", window="2w", stride="1.5d",
                                          step="12h").to_arrow()
    b = dlprep.from_arrow(events).windows("k", "ts", window=1209600, stride=129600,
                                          step=43200).to_arrow()
    assert a.num_rows > 0 and a.equals(b)
