"""The CLI's sources: binary files (Spark's binaryFile table), CSV, JSON lines, Parquet
and hive-partitioned folders, each converted and compared with what pyarrow reads."""
import json
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest


@pytest.fixture
def clip_tree(tmp_path):
    root = tmp_path / "clips"
    files = {
        "yes/a.wav": b"RIFF" + bytes(range(200)),
        "yes/b.wav": b"",
        "no/deep/c.wav": os.urandom(70_000),
        "no/d.txt": b"not audio",
        "no/.hidden.wav": b"hidden",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root, files


def test_files_lists_sorted_with_glob(dlprep, tmp_path, clip_tree):
    root, files = clip_tree
    stats = tmp_path / "stats.json"
    proc = dlprep("files", f"{root}/**/*.wav", "--stats", stats)
    s = json.loads(stats.read_text())
    assert s["files"] == 3 and s["bytes"] == 204 + 70_000
    lines = proc.stdout.strip().splitlines()
    paths = [l.split()[-1] for l in lines]
    want = sorted(str(root / r) for r in files if r.endswith(".wav") and ".hidden" not in r)
    assert paths == want
    sizes = [int(l.split()[0]) for l in lines]
    assert sizes == [len(files[os.path.relpath(p, root)]) for p in want]


def test_files_output_has_spark_binaryfile_schema(dlprep, tmp_path, clip_tree):
    root, files = clip_tree
    out = tmp_path / "table"
    dlprep("files", root, "--recursive", "--name-filter", "*.wav", "--output", out,
           "--format", "parquet", "-q")
    t = pq.read_table(out)
    assert t.schema.names == ["path", "modificationTime", "length", "content"]
    assert t.schema.field("path").type == pa.string()
    assert t.schema.field("modificationTime").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("length").type == pa.int64()
    assert t.schema.field("content").type == pa.binary()
    rows = t.to_pylist()
    assert [r["path"] for r in rows] == sorted(str(root / r) for r in files
                                               if r.endswith(".wav") and ".hidden" not in r)
    for r in rows:
        data = files[os.path.relpath(r["path"], root)]
        assert r["content"] == data and r["length"] == len(data)
        assert abs(r["modificationTime"].timestamp() - os.path.getmtime(r["path"])) < 1e-3


def test_files_max_file_size_refuses_with_name(dlprep, tmp_path, clip_tree):
    root, _ = clip_tree
    out = tmp_path / "t"
    p = dlprep("files", f"{root}/**/*.wav", "--output", out, "--max-file-size", "1KB",
               check=False)
    assert p.returncode == 1
    assert "c.wav" in p.stderr and "--max-file-size" in p.stderr
    assert not out.exists()


def test_files_no_match_is_an_error(dlprep, tmp_path):
    p = dlprep("files", f"{tmp_path}/nothing/**/*.wav", check=False)
    assert p.returncode == 1 and "nothing" in p.stderr


def sample_table():
    return pa.table({"id": pa.array([3, 1, 2], pa.int64()),
                     "name": ["a", "ß", None],
                     "score": pa.array([0.5, 1.5, -2.0], pa.float64())})


def test_csv_and_jsonl_inputs(dlprep, tmp_path):
    t = sample_table()
    pacsv.write_csv(t, tmp_path / "in.csv")
    with open(tmp_path / "in.jsonl", "w") as f:
        for row in t.to_pylist():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    for name in ["in.csv", "in.jsonl"]:
        out = tmp_path / (name + ".out")
        dlprep("convert", "-i", tmp_path / name, "-o", out, "--format", "parquet", "-q")
        got = pq.read_table(out)
        assert got.column("id").to_pylist() == [3, 1, 2]
        assert got.column("score").to_pylist() == [0.5, 1.5, -2.0]
        assert got.column("name").to_pylist()[:2] == ["a", "ß"]


def test_hive_partitioned_parquet_with_projection(dlprep, tmp_path):
    root = tmp_path / "events"
    for day in ["2024-01-01", "2024-01-02"]:
        d = root / f"day={day}"
        d.mkdir(parents=True)
        pq.write_table(sample_table(), d / "part.parquet")
    (root / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    dlprep("convert", "-i", root, "-o", out, "--format", "csv", "--columns", "day,id", "-q")
    got = pacsv.read_csv(sorted(out.glob("part-*.csv"))[0])
    assert got.column_names == ["day", "id"]
    # One file per input partition, in sorted order.
    files = sorted(out.glob("part-*.csv"))
    assert len(files) == 2
    assert pacsv.read_csv(files[1]).column("id").to_pylist() == [3, 1, 2]


def test_unknown_column_names_it(dlprep, tmp_path):
    pq.write_table(sample_table(), tmp_path / "t.parquet")
    p = dlprep("convert", "-i", tmp_path / "t.parquet", "-o", tmp_path / "o", "--columns",
               "id,nope", check=False)
    assert p.returncode == 1 and "nope" in p.stderr


def test_csv_cannot_hold_lists(dlprep, tmp_path):
    pq.write_table(pa.table({"v": [[1, 2], [3]]}), tmp_path / "l.parquet")
    p = dlprep("convert", "-i", tmp_path / "l.parquet", "-o", tmp_path / "o", "--format", "csv",
               check=False)
    assert p.returncode == 1 and "'v'" in p.stderr or "v" in p.stderr.split(":")[-1]
    assert not (tmp_path / "o").exists()
