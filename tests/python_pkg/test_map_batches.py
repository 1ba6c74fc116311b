"""Python steps (map_batches), the exception hierarchy and Ctrl-C."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import dlprep


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("parts")
    for i in range(4):
        pq.write_table(pa.table({"id": pa.array(np.arange(i * 1000, (i + 1) * 1000)),
                                 "x": pa.array(np.linspace(0, 1, 1000) + i)}),
                       d / f"p{i}.parquet")
    return d


def double(batch):
    return batch.append_column("y", pc.multiply(batch.column("x"), 2))


def test_function_step_in_a_pipeline(parts):
    t = dlprep.read_parquet(parts).map_batches(double).filter("y > 4").to_arrow(workers=2)
    assert t.column_names == ["id", "x", "y"]
    assert t.num_rows == sum(1 for v in np.concatenate(
        [np.linspace(0, 1, 1000) + i for i in range(4)]) if v * 2 > 4)
    assert pc.all(pc.equal(t.column("y"), pc.multiply(t.column("x"), 2))).as_py()
    assert t.column("id").to_pylist() == sorted(t.column("id").to_pylist())  # input order


class Scaler:
    """A class: constructed once per worker (stands in for loading a model)."""

    def __init__(self, factor):
        self.factor = factor
        self.pid_calls = 0

    def __call__(self, batch):
        self.pid_calls += 1
        return pa.record_batch({"id": batch.column("id"),
                                "z": pc.multiply(batch.column("x"), self.factor)})


@pytest.mark.parametrize("workers", [1, 2])
def test_class_is_constructed_once_per_worker(parts, tmp_path, workers):
    ds = dlprep.read_parquet(parts).map_batches(Scaler, fn_constructor_args=(3.0,),
                                                batch_size=250)
    stats = ds.write_parquet(tmp_path / "out", workers=workers)
    # Once per worker that ran a partition (a worker that starts after the others took
    # every partition constructs nothing), never per partition or batch (16 batches).
    constructed = stats["python_steps"][0]["constructed"]
    assert 1 <= constructed <= workers, stats["python_steps"]
    stage = [s for s in stats["stages"] if s["kind"] == "stateful"][0]
    assert stage["opens"] == constructed
    t = pq.read_table(tmp_path / "out")
    assert t.num_rows == 4000
    assert np.allclose(t.column("z").to_numpy(), 3 * pq.read_table(parts).column("x").to_numpy())


def test_batch_size_gives_exact_batches(parts):
    sizes = []

    def record(batch):
        sizes.append(batch.num_rows)
        return batch
    dlprep.read_parquet(parts).map_batches(record, batch_size=300,
                                           schema=pq.read_schema(parts / "p0.parquet")
                                           ).to_arrow(workers=1)
    # Per partition of 1000 rows: 300, 300, 300, 100.
    assert sizes == [300, 300, 300, 100] * 4


def test_a_probe_that_fails_says_to_declare_the_schema(parts):
    def needs_rows(batch):
        return pa.record_batch({"first": pa.array([batch.column("id")[0].as_py()] *
                                                  batch.num_rows)})

    with pytest.raises(dlprep.Error, match="empty batch.*schema="):
        dlprep.read_parquet(parts).map_batches(needs_rows).schema
    t = dlprep.read_parquet(parts).map_batches(
        needs_rows, schema=pa.schema([("first", pa.int64())])).to_arrow(workers=1)
    assert t.column("first").to_pylist()[:1] == [0] and t.num_rows == 4000


def test_exception_carries_the_traceback(parts):
    def broken(batch):
        return 1 / 0

    ds = dlprep.read_parquet(parts).map_batches(broken, schema=pa.schema([("id", pa.int64())]))
    with pytest.raises(dlprep.Error) as e:
        ds.to_arrow()
    msg = str(e.value)
    assert "ZeroDivisionError" in msg and "broken" in msg and "Traceback" in msg
    assert "test_exception_carries_the_traceback.<locals>.broken" in msg


def test_wrong_schema_names_the_step(parts):
    def flaky(batch):
        if batch.num_rows and batch.column("id")[0].as_py() >= 2000:
            return pa.record_batch({"id": batch.column("id"), "w": batch.column("x")})
        return pa.record_batch({"id": batch.column("id"), "v": batch.column("x")})

    with pytest.raises(dlprep.errors.TypeError, match="flaky.*returned a batch of schema"):
        dlprep.read_parquet(parts).map_batches(flaky).to_arrow(workers=1)


def test_error_column_becomes_row_errors(parts, tmp_path):
    def check(batch):
        x = batch.column("x")
        err = pc.if_else(pc.greater(x, 3.5), pa.scalar("x too large", pa.string()),
                         pa.scalar(None, pa.string()))
        return pa.record_batch({"id": batch.column("id"), "_error": err})

    ds = dlprep.read_parquet(parts).map_batches(check)
    assert ds.schema.names == ["id"]
    bad = int((pq.read_table(parts).column("x").to_numpy() > 3.5).sum())
    # Over the default limit (0.01 of the rows) nothing is written.
    with pytest.raises(dlprep.Error, match=f"{bad} of 4000 input rows failed"):
        ds.write_parquet(tmp_path / "default")
    assert not (tmp_path / "default").exists()
    with pytest.raises(dlprep.Error, match="more than the 0 that max errors"):
        ds.write_parquet(tmp_path / "count", max_error_rate=1, max_errors=0)
    with pytest.raises(dlprep.Error, match="max_errors= applies to writes"):
        ds.to_arrow(max_errors=3)
    stats = ds.write_parquet(tmp_path / "ok", errors=tmp_path / "errors.jsonl",
                             max_error_rate=1)
    assert stats["row_errors"] == bad > 0
    assert pq.read_table(tmp_path / "ok").num_rows == 4000 - bad
    lines = (tmp_path / "errors.jsonl").read_text().splitlines()
    assert len(lines) == bad and "x too large" in lines[0]
    with pytest.raises(dlprep.Error, match="x too large"):
        ds.write_parquet(tmp_path / "strict", fail_on_error=True)
    assert not (tmp_path / "strict").exists()


def test_returns_pandas_and_dicts(parts):
    pytest.importorskip("pandas")
    t = dlprep.read_parquet(parts).map_batches(
        lambda b: b.to_pandas().assign(k=1)).to_arrow()
    assert t.column("k").to_pylist() == [1] * 4000
    t = dlprep.read_parquet(parts).map_batches(
        lambda b: {"n": pa.array([b.num_rows])}).to_arrow(workers=1)
    assert t.column("n").to_pylist() == [1000] * 4


def test_torch_model_scores_audio_features(tmp_path):
    torch = pytest.importorskip("torch")
    from test_dataset import _write_wav
    for i in range(4):
        _write_wav(tmp_path / "clips" / ("yes" if i % 2 else "no") / f"{i}.wav", 300 + 80 * i)

    class Model:
        def __init__(self):
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))

        def __call__(self, batch):
            col = batch.column("log_mel")
            x = torch.from_numpy(np.stack([np.asarray(v, dtype=np.float32)
                                           for v in col.to_pylist()]))
            with torch.no_grad():
                y = self.net(x).argmax(dim=1).numpy()
            return pa.record_batch({"path": batch.column("path"),
                                    "prediction": pa.array(y, pa.int64())})

    ds = (dlprep.read_binary_files(tmp_path / "clips", recursive=True, name_filter="*.wav")
          .audio(clip_seconds=1)
          .map_batches(Model, schema=pa.schema([("path", pa.string()),
                                                ("prediction", pa.int64())])))
    t = ds.to_arrow(workers=1)
    assert t.num_rows == 4
    assert set(t.column("prediction").to_pylist()) <= {0, 1}


def test_status_codes_map_to_exception_classes(tmp_path):
    E = dlprep.errors
    with pytest.raises(E.IOError) as e:
        dlprep.read_parquet(tmp_path / "nope").to_arrow()
    assert isinstance(e.value, OSError) and "nope" in str(e.value)
    with pytest.raises(E.InvalidInput) as e:
        dlprep.from_arrow(pa.table({"a": [1]})).filter("a >").to_arrow()
    assert isinstance(e.value, ValueError)
    with pytest.raises(E.TypeError):
        dlprep.from_arrow(pa.table({"a": [1]})).select(["b"]).to_arrow()
    with pytest.raises(dlprep.Error, match="window"):
        dlprep.from_arrow(pa.table({"k": [1], "t": [1]})).windows(
            key="k", time="t", window="2x", stride="1d", step="1d", until=10).schema
    with pytest.raises(E.InvalidInput, match="unknown option"):
        dlprep.from_arrow(pa.table({"a": [1]})).to_arrow(worker=2)
    pq.write_table(pa.table({"a": [1]}), tmp_path / "a.parquet")
    dlprep.read_parquet(tmp_path / "a.parquet").write_parquet(tmp_path / "o")
    with pytest.raises(dlprep.Error, match="overwrite"):
        dlprep.read_parquet(tmp_path / "a.parquet").write_parquet(tmp_path / "o")
    dlprep.read_parquet(tmp_path / "a.parquet").write_parquet(tmp_path / "o", overwrite=True)
    assert set(E.BY_CODE.values()) >= {E.InvalidInput, E.IOError, E.TypeError, E.Cancelled,
                                       E.NotImplementedError, E.OutOfMemory}
    for cls in E.BY_CODE.values():
        assert issubclass(cls, dlprep.Error)


def test_ctrl_c_stops_a_run_and_writes_nothing(parts, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import time, pathlib, dlprep
        marker = pathlib.Path({str(tmp_path / 'started')!r})
        def slow(batch):
            marker.touch()
            time.sleep(0.5)
            return batch
        try:
            dlprep.read_parquet({str(parts)!r}, batch_rows=10).map_batches(
                slow, schema=None).write_parquet({str(tmp_path / 'out')!r}, workers=2)
        except KeyboardInterrupt:
            print("interrupted")
            raise SystemExit(130)
        print("finished")
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "started").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, (out, err)
    assert out.strip() == "interrupted"
    assert not (tmp_path / "out").exists()
    assert not [n for n in os.listdir(tmp_path) if "dlprep-attempt" in n]
