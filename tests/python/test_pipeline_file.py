"""End-to-end tests of `dlprep run PIPELINE.yaml` on generated Parquet."""
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
M64 = (1 << 64) - 1


def split_hash(data: bytes, seed: int) -> int:
    """The documented split hash: FNV-1a over seed (8 bytes LE) + data, then fmix64."""
    h = 14695981039346656037
    for b in seed.to_bytes(8, "little") + data:
        h = ((h ^ b) * 1099511628211) & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


def expected_split(data: bytes, seed: int, fractions):
    u = (split_hash(data, seed) >> 11) * 2.0**-53
    cum = 0.0
    for i, (name, f) in enumerate(fractions):
        cum += f
        if u < cum or i == len(fractions) - 1:
            return name


def write_input(folder: Path, n=100):
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "kind": ["a" if i % 3 else "b" for i in range(n)],
        "x": pa.array([i * 0.5 for i in range(n)], pa.float64()),
    })
    pq.write_table(table, folder / "events.parquet", row_group_size=10)
    pq.write_table(pa.table({"kind": ["a", "b"], "weight": [1.5, 2.5]}), folder / "kinds.parquet")


PIPELINE = """
source: {format: parquet, paths: [events.parquet]}
steps:
  - filter: {expr: "x >= 5 and kind == 'a'"}
  - split: {key: id, fractions: {train: 0.6, test: 0.4}, seed: 9}
  - join: {source: {format: parquet, paths: [kinds.parquet]}, on: kind}
  - cast: {columns: {x: float32}}
  - rename: {columns: {x: value}}
  - select: {columns: [id, value, weight, split]}
sink: {format: parquet, path: out, shards: 3}
"""


def test_run_writes_expected_values(dlprep, tmp_path):
    write_input(tmp_path)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    stats_path = tmp_path / "stats.json"
    dlprep("run", tmp_path / "p.yaml", "--workers", "3", "--stats", stats_path)
    out = tmp_path / "out"
    assert (out / "_SUCCESS").exists()
    assert len(list(out.glob("part-*.parquet"))) == 3
    table = pq.read_table(out).sort_by("id")
    assert table.schema.names == ["id", "value", "weight", "split"]
    assert table.schema.field("value").type == pa.float32()
    ids = [i for i in range(100) if i * 0.5 >= 5 and i % 3 != 0]
    assert table["id"].to_pylist() == ids
    assert table["value"].to_pylist() == [i * 0.5 for i in ids]
    assert table["weight"].to_pylist() == [1.5] * len(ids)
    fractions = [("train", 0.6), ("test", 0.4)]
    assert table["split"].to_pylist() == [
        expected_split(struct.pack("<q", i), 9, fractions) for i in ids]
    stats = json.loads(stats_path.read_text())
    assert stats["status"] == "ok"
    assert stats["run"]["rows_read"] == 100
    assert stats["run"]["rows_written"] == len(ids)
    assert [s["name"] for s in stats["run"]["stages"]] == [
        "source", "filter", "split", "join", "cast", "rename", "select", "sink"]


def test_same_output_with_1_and_4_workers(dlprep, tmp_path):
    write_input(tmp_path)
    (tmp_path / "p.yaml").write_text(PIPELINE.replace("shards: 3", "shards: 1"))
    tables = []
    for workers in (1, 4):
        dlprep("run", tmp_path / "p.yaml", "--workers", workers)
        tables.append(pq.read_table(tmp_path / "out"))
        shutil.rmtree(tmp_path / "out")
    assert tables[0].equals(tables[1])


def test_dry_run_prints_normalized_pipeline_and_writes_nothing(dlprep, tmp_path):
    write_input(tmp_path)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    proc = dlprep("run", tmp_path / "p.yaml", "--dry-run")
    assert f"paths: [{tmp_path}/events.parquet]" in proc.stdout
    assert "seed: 9" in proc.stdout
    assert "max_bytes: 268435456" in proc.stdout
    assert not (tmp_path / "out").exists()
    # The printed pipeline is itself runnable.
    (tmp_path / "normalized.yaml").write_text(proc.stdout)
    dlprep("run", tmp_path / "normalized.yaml")
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_errors_name_line_and_key_and_leave_no_output(dlprep, tmp_path):
    write_input(tmp_path)
    (tmp_path / "bad.yaml").write_text(PIPELINE.replace("seed: 9", "seed: 9, sed: 1"))
    proc = dlprep("run", tmp_path / "bad.yaml", check=False)
    assert proc.returncode == 1
    assert "bad.yaml:5:67: step 2 (split)" in proc.stderr
    assert "unknown option 'sed'" in proc.stderr
    (tmp_path / "bad2.yaml").write_text(PIPELINE.replace("kind == 'a'", "kindd == 'a'"))
    proc = dlprep("run", tmp_path / "bad2.yaml", check=False)
    assert proc.returncode == 1
    assert "names column 'kindd'" in proc.stderr
    assert "available: id, kind, x" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_labels_example(dlprep, tmp_path):
    example = ROOT / "examples" / "pipelines"
    shutil.copy(example / "labels.yaml", tmp_path)
    subprocess.run([sys.executable, str(example / "make_labels_input.py"), str(tmp_path)],
                   check=True)
    dlprep("run", tmp_path / "labels.yaml", "--workers", "2")
    table = pq.read_table(tmp_path / "out" / "labels").sort_by("path")
    src = pq.read_table(tmp_path / "data" / "images.parquet").to_pylist()
    keep = sorted((r for r in src if r["path"].startswith("/images/") and r["length"] > 0),
                  key=lambda r: r["path"])
    assert table["path"].to_pylist() == [r["path"] for r in keep]
    labels = [r["path"].split("/")[2] for r in keep]
    assert table["label"].to_pylist() == labels
    assert table["class_id"].to_pylist() == [["cat", "dog", "bird"].index(l) for l in labels]
    fractions = [("train", 0.8), ("validation", 0.1), ("test", 0.1)]
    assert table["split"].to_pylist() == [
        expected_split(r["path"].encode(), 42, fractions) for r in keep]


def test_errors_file_keeps_failed_rows(dlprep, tmp_path):
    import json
    paths = ["/data/cat/1.jpg", "orphan", "/data/dog/2.jpg", "also-orphan"]
    pq.write_table(pa.table({"path": paths, "n": [1, 2, 3, 4]}), tmp_path / "in.parquet")
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [in.parquet]}\n"
        "steps:\n"
        "  - regex_extract: {column: path, pattern: '([^/]+)/[^/]+$', output: label,"
        " on_mismatch: error}\n"
        "sink: {format: parquet, path: out}\n")
    errors = tmp_path / "errors.jsonl"
    proc = dlprep("run", tmp_path / "p.yaml", "--errors", errors, "-w", 2,
                  "--max-error-rate", "0.5")
    assert pq.read_table(tmp_path / "out").column("label").to_pylist() == ["cat", "dog"]
    lines = [json.loads(l) for l in errors.read_text().splitlines()]
    assert [l["row"]["path"] for l in lines] == ["orphan", "also-orphan"]
    assert all(l["operator"] and "orphan" in json.dumps(l) and l["error"] for l in lines)
    assert "2 row error" in proc.stderr
    # --fail-on-error fails the job instead, and nothing is written.
    shutil.rmtree(tmp_path / "out")
    proc = dlprep("run", tmp_path / "p.yaml", "--fail-on-error", "--errors", tmp_path / "e2",
                  check=False)
    assert proc.returncode == 1 and "orphan" in proc.stderr
    assert not (tmp_path / "e2").exists() and not (tmp_path / "out").exists()
