"""dlprep.ops: the same operators called batch by batch, without the executor (as Spark's
mapInArrow / applyInArrow call them), give what the pipeline gives."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import dlprep
import dlprep.ops
from test_dataset import _write_wav


def test_batch_operator_over_an_iterator():
    t = pa.table({"a": list(range(100)), "s": [f"x/{i % 3}/f" for i in range(100)]})
    op = dlprep.ops.filter("a >= 50 or a < 10")
    assert op.kind == "batch"
    out = pa.Table.from_batches(list(op(t.to_batches(max_chunksize=7))))
    assert out.column("a").to_pylist() == list(range(10)) + list(range(50, 100))
    rx = dlprep.ops.regex_extract("s", "x/([^/]+)/", "k")
    assert rx.output_schema(t.schema).names == ["a", "s", "k"]
    out = pa.Table.from_batches(list(rx(t.to_batches())))
    assert out.column("k").to_pylist() == [str(i % 3) for i in range(100)]


def test_stateful_operator_opens_once_and_reports_row_errors(tmp_path):
    for i in range(6):
        _write_wav(tmp_path / "c" / ("yes" if i % 2 else "no") / f"{i}.wav", 250 + 50 * i)
    (tmp_path / "c" / "no" / "bad.wav").write_bytes(b"not a wav file at all")
    files = dlprep.read_binary_files(tmp_path / "c", recursive=True,
                                     name_filter="*.wav").to_arrow()
    opts = dict(clip_seconds=1, mfcc=13, label_regex="([^/]+)/[^/]+$")
    expected = dlprep.from_arrow(files).audio(**opts).to_arrow()
    op = dlprep.ops.audio(**opts)
    assert op.kind == "stateful"
    got = []
    for chunk in files.to_batches(max_chunksize=2):  # several calls, one open
        got.extend(op.process(chunk))
    got.extend(op.flush())
    assert op.opens == 1
    assert pa.Table.from_batches(got).equals(expected)
    assert len(op.row_errors) == 1
    row, msg = op.row_errors[0]
    assert files.column("path")[row].as_py().endswith("bad.wav") and "bad.wav" in msg
    op.close()
    op.close()


def test_grouped_operator_by_groups_equals_the_pipeline(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    ts = 1_700_000_000 + rng.integers(0, 40 * 86400, n)
    events = pa.table({"k": pa.array(rng.integers(0, 30, n), pa.int64()),
                       "ts": pa.array(ts * 1_000_000, pa.timestamp("us", tz="UTC")),
                       "kind": pa.array(rng.choice(["a", "b"], n)),
                       "v": pa.array(rng.normal(size=n))})
    opts = dict(key="k", time="ts", window="7d", stride="7d", step="1d", category="kind",
                values=["v"], aggs=["sum", "max"])
    ds = dlprep.from_arrow(events).windows(**opts)
    expected = ds.to_arrow().sort_by("k")
    step = [s for s in ds._steps if s[1] == "windows"][0][2]
    op = dlprep.ops.windows(**opts, until=int(step["until"]), categories=step["categories"])
    assert op.kind == "grouped"
    pre = pa.Table.from_batches([op.pre_group(b) for b in events.to_batches(max_chunksize=500)])
    out = []
    for key in sorted(set(pre.column("k").to_pylist())):
        out.extend(op.apply_group(pre.filter(pc.equal(pre["k"], key))))
    got = pa.Table.from_batches(out)
    assert got.num_rows == expected.num_rows > 0
    assert got.equals(expected.cast(got.schema)) or got.to_pylist() == expected.to_pylist()


def test_windows_operator_needs_categories():
    with pytest.raises(dlprep.InvalidInput, match="categories"):
        dlprep.ops.windows("k", "ts", "7d", "7d", "1d", until=10, category="kind")


def test_gather_concatenates_small_batches_up_to_min_rows():
    t = pa.table({"a": list(range(23))})
    sizes = [b.num_rows for b in dlprep.ops.gather(t.to_batches(max_chunksize=3), 10)]
    assert sizes == [12, 11]  # 4 x 3 rows, then 3 x 3 + 2 (the rest)
    big = t.to_batches(max_chunksize=20)  # 20 + 3: the big one passes through as it is
    assert [b.num_rows for b in dlprep.ops.gather(big, 10)] == [20, 3]
    assert [b.num_rows for b in dlprep.ops.gather(t.to_batches(max_chunksize=3), 0)] == \
        [3] * 7 + [2]
    got = pa.Table.from_batches(list(dlprep.ops.gather(t.to_batches(max_chunksize=3), 10)))
    assert got.column("a").to_pylist() == list(range(23))


def test_score_http_operator_sends_batch_size_rows_per_request(model_server):
    server = model_server
    n = 50
    t = pa.table({"id": pa.array(np.arange(n), pa.int64()),
                  "x": pa.array(list(np.ones((n, 4), np.float32)), pa.list_(pa.float32()))})
    op = dlprep.ops.score_http(server.url("kserve-v2"), ["id", "x"], protocol="kserve-v2",
                               outputs=["score:float64", "row_id:int64"], batch_size=20,
                               concurrency=1, retries=0)
    assert op.kind == "stateful" and op.min_batch_rows >= 20
    out = pa.Table.from_batches(list(op(t.to_batches(max_chunksize=3))))
    op.close()
    assert sorted(out.column("id").to_pylist()) == list(range(n))
    sizes = sorted(len(ids) for ids in server.completed)
    assert sum(sizes) == n and max(sizes) == 20, sizes  # not 3-row requests
    assert dlprep.ops.select(["id"]).min_batch_rows == 0
