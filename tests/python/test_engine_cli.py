"""The executor through the CLI: identical bytes whatever --workers, and --dry-run
printing a pipeline file that `dlprep run` runs to the same output."""
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import read_manifest


def many_partitions(tmp_path, parts=12):
    rng = np.random.default_rng(5)
    d = tmp_path / "in"
    d.mkdir()
    for p in range(parts):
        n = int(rng.integers(1, 3000))
        t = pa.table({"id": pa.array(np.arange(n) + p * 10_000),
                      "v": pa.FixedSizeListArray.from_arrays(
                          pa.array(rng.standard_normal(n * 8).astype(np.float32)), 8),
                      "s": pa.array([f"p{p}-{i}" for i in range(n)])})
        pq.write_table(t, d / f"part{p:02d}.parquet", row_group_size=700)
    return d


def content_digest(out):
    """Hash of the data files' bytes in manifest order (names hold a random job id)."""
    h = hashlib.sha256()
    for f in read_manifest(out)["files"]:
        h.update((out / f["name"]).read_bytes())
    return h.hexdigest()


def test_output_bytes_identical_for_1_2_4_workers(dlprep, tmp_path):
    src = many_partitions(tmp_path)
    for fmt in ["tfrecord", "parquet"]:
        digests = set()
        for w in [1, 2, 4]:
            out = tmp_path / f"{fmt}-w{w}"
            dlprep("convert", "-i", src, "-o", out, "--format", fmt, "-w", w, "-q")
            digests.add(content_digest(out))
        assert len(digests) == 1, fmt
    # --shards deals batches round-robin: also independent of the worker count.
    digests = set()
    for w in [1, 4]:
        out = tmp_path / f"sharded-w{w}"
        dlprep("convert", "-i", src, "-o", out, "--shards", "3", "-w", w, "-q")
        digests.add(content_digest(out))
    assert len(digests) == 1


def test_dry_run_prints_a_runnable_pipeline(dlprep, tmp_path):
    src = many_partitions(tmp_path, parts=3)
    out = tmp_path / "out"
    proc = dlprep("convert", "-i", src, "-o", out, "--compression", "gzip", "--dry-run")
    assert not out.exists()
    pipeline = tmp_path / "convert.yaml"
    pipeline.write_text(proc.stdout)
    dlprep("run", pipeline, "-q")
    m = read_manifest(out)
    assert m["compression"] == "gzip"
    direct = tmp_path / "direct"
    dlprep("convert", "-i", src, "-o", direct, "--compression", "none", "-q")
    assert m["rows"] == read_manifest(direct)["rows"]


def test_stats_json_has_stages(dlprep, tmp_path):
    import json
    src = many_partitions(tmp_path, parts=2)
    stats = tmp_path / "s.json"
    dlprep("convert", "-i", src, "-o", tmp_path / "o", "-w", 2, "--stats", stats, "-q")
    s = json.loads(stats.read_text())
    assert s["status"] == "ok"
    kinds = [st["kind"] for st in s["run"]["stages"]]
    assert kinds[0] == "source" and kinds[-1] == "sink"
    assert s["run"]["rows_written"] == s["output"]["rows"] > 0
