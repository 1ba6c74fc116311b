"""`dlprep windows` end to end: a hand-computed case read back by TensorFlow, 1 vs 2
workers, and the generated churn data."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import read_manifest

DAY = 86400
T0 = 1_700_006_400  # a midnight (UTC), 2023-11-15


def write_case(tmp_path):
    ev = pa.table({
        "customer_id": pa.array([1, 1, 1, 1, 2, None], pa.int64()),
        "ts": pa.array([T0 + 3 * DAY + 6 * 3600, T0, T0 + 12 * 3600, T0 + DAY,
                        T0 + DAY + 10 * 3600, T0], pa.timestamp("s", tz="UTC")),
        "event_type": ["call", "call", "sms", "call", "sms", "call"],
        "amount": pa.array([5.0, 1.0, 3.0, None, 2.0, 9.0]),
    })
    lb = pa.table({"customer_id": pa.array([1, 3], pa.int64()),
                   "churn_ts": pa.array([T0 + 4 * DAY, None], pa.timestamp("s", tz="UTC"))})
    pq.write_table(ev, tmp_path / "events.parquet")
    pq.write_table(lb, tmp_path / "labels.parquet")


ARGS = ["--key", "customer_id", "--time", "ts", "--category", "event_type",
        "--values", "amount", "--aggs", "sum,mean", "--window", "2d", "--stride", "1d",
        "--step", "1d", "--horizon", "1d", "--label-time", "churn_ts"]

# (customer, window start day, label, [step0 features], [step1 features]);
# features: count, count_call, count_sms, sum_amount, mean_amount.
EXPECTED = [
    (1, 0, 0, [2, 1, 1, 4, 2], [1, 1, 0, 0, 0]),
    (1, 1, 0, [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]),
    (1, 2, 1, [0, 0, 0, 0, 0], [1, 1, 0, 5, 5]),
    (2, 1, 0, [1, 0, 1, 2, 2], [0, 0, 0, 0, 0]),
    (2, 2, 0, [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
]


def rows_of(table):
    rows = []
    for r in table.to_pylist():
        start = int(r["window_start"].timestamp())
        f = r["features"]
        rows.append((r["customer_id"], (start - T0) // DAY, r["label"], f[:5], f[5:]))
    return sorted(rows)


def test_hand_computed_case_parquet_and_workers(dlprep, tmp_path):
    write_case(tmp_path)
    outs = []
    for w in [1, 2]:
        out = tmp_path / f"pq{w}"
        stats = tmp_path / f"stats{w}.json"
        dlprep("windows", "--events", tmp_path / "events.parquet", "--labels",
               tmp_path / "labels.parquet", *ARGS, "--output", out, "--format", "parquet",
               "-w", w, "--stats", stats, "-q")
        t = pq.read_table(out)
        assert rows_of(t) == EXPECTED
        field = t.schema.field("features")
        assert field.metadata[b"dlprep.shape"] == b"[2,5]"
        outs.append(t)
        import json
        s = json.loads(stats.read_text())
        assert s["dropped_null_key_rows"] == 1
        assert s["categories"] == ["call", "sms"]
    assert outs[0].equals(outs[1])


def test_tensorflow_reads_windows(dlprep, tmp_path):
    tf = pytest.importorskip("tensorflow")
    import dlprep.tfrecord as dt
    write_case(tmp_path)
    out = tmp_path / "tfr"
    dlprep("windows", "--events", tmp_path / "events.parquet", "--labels",
           tmp_path / "labels.parquet", *ARGS, "--output", out, "-q")
    m = read_manifest(out)
    assert m["features"]["features"]["shape"] == [2, 5]
    assert m["features"]["features"]["fixed_length"]
    got = []
    for ex in dt.dataset(out):
        start = int(ex["window_start"].numpy())
        feats = ex["features"].numpy()  # [2, 5]
        got.append((int(ex["customer_id"].numpy()), (start - T0) // DAY,
                    int(ex["label"].numpy()), feats[0].tolist(), feats[1].tolist()))
    assert sorted(got) == EXPECTED


def test_generated_churn_data(dlprep, tmp_path):
    data = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 200, "--days", 60, "-o", data, "-q")
    out = tmp_path / "w"
    dlprep("windows", "--events", data / "events", "--labels", data / "labels",
           "--key", "customer_id", "--time", "ts", "--category", "event_type",
           "--values", "amount,duration", "--aggs", "sum,mean,max", "--window", "14d",
           "--stride", "7d", "--step", "1d", "--horizon", "30d", "--label-time", "churn_ts",
           "--output", out, "--format", "parquet", "--memory-limit", "64MB", "-q")
    t = pq.read_table(out)
    assert t.num_rows > 200
    # 14 steps x (1 + 5 categories + 2 values x 3 aggs) features.
    assert all(len(f) == 14 * 12 for f in t.column("features").to_pylist()[:50])
    labels = t.column("label").to_pylist()
    assert 0 < sum(labels) < len(labels)


def test_huge_customers_are_streamed_with_identical_output(dlprep, tmp_path):
    data = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 300, "--days", 90, "-o", data, "-q")
    args = ["windows", "--events", data / "events", "--labels", data / "labels",
            "--key", "customer_id", "--time", "ts", "--category", "event_type",
            "--values", "amount,duration", "--aggs", "sum,min,max", "--window", "14d",
            "--stride", "3d", "--step", "1d", "--horizon", "30d", "--label-time",
            "churn_ts", "--format", "parquet", "-q", "-w", "2"]
    dlprep(*args, "--output", tmp_path / "whole")
    # Groups over 16 KB (the busiest customers) are streamed window by window.
    stats = tmp_path / "stats.json"
    dlprep(*args, "--output", tmp_path / "streamed", "--max-group-bytes", "16KB",
           "--stats", stats)
    streamed_groups = sum(s.get("streamed_groups", 0)
                          for s in json.loads(stats.read_text())["run"]["stages"])
    assert streamed_groups > 10
    whole = pq.read_table(tmp_path / "whole")
    streamed = pq.read_table(tmp_path / "streamed")
    assert whole.num_rows > 1000
    assert whole.equals(streamed)


def test_bad_options_name_the_option(dlprep, tmp_path):
    write_case(tmp_path)
    base = ["windows", "--events", tmp_path / "events.parquet", "--key", "customer_id",
            "--time", "ts", "--step", "1d", "--output", tmp_path / "o"]
    p = dlprep(*base, "--window", "2x", "--stride", "1d", check=False)
    assert p.returncode == 1 and "--window" in p.stderr
    p = dlprep(*base, "--window", "36h", "--stride", "1d", check=False)
    assert p.returncode == 1 and ("--window" in p.stderr or "multiple" in p.stderr)
    p = dlprep(*base, "--window", "2d", "--stride", "1d", "--values", "nope", check=False)
    assert p.returncode == 1 and "nope" in p.stderr
    assert not (tmp_path / "o").exists()


def test_dry_run_pipeline_file_gives_the_same_windows(dlprep, tmp_path):
    write_case(tmp_path)
    direct = tmp_path / "direct"
    common = ["--events", tmp_path / "events.parquet", "--labels",
              tmp_path / "labels.parquet", *ARGS, "--format", "parquet"]
    dlprep("windows", *common, "--output", direct, "-q")
    via = tmp_path / "via"
    proc = dlprep("windows", *common, "--output", via, "--dry-run")
    assert not via.exists() and '"categories"' in proc.stdout
    (tmp_path / "w.yaml").write_text(proc.stdout)
    dlprep("run", tmp_path / "w.yaml", "-q")
    assert rows_of(pq.read_table(via)) == EXPECTED
    assert pq.read_table(via).equals(pq.read_table(direct))


WINDOW_ARGS = ["--key", "customer_id", "--time", "ts", "--category", "event_type",
               "--values", "amount,duration", "--aggs", "sum,mean,max", "--window", "14d",
               "--stride", "7d", "--step", "1d", "--horizon", "30d",
               "--label-time", "churn_ts", "--format", "parquet"]


def test_spill_folder_of_a_killed_run_is_removed_by_the_next(dlprep, tmp_path):
    """SIGKILL leaves the spill folder behind; the next run removes it (its owner's PID,
    in the folder's name, is gone), says so on stderr, and succeeds."""
    import subprocess
    import time
    data = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 1500, "--days", 90, "-o", data, "-q")
    spill = tmp_path / "spill"
    spill.mkdir()
    # 12MB: the runs spill; at 8MB with two workers the second run failed now and then
    # (one worker's writer refused while the other held batches about to be freed).
    args = ["windows", "--events", data / "events", "--labels", data / "labels",
            *WINDOW_ARGS, "--memory-limit", "12MB", "--spill-dir", spill, "-w", "2", "-q"]
    proc = subprocess.Popen([dlprep.exe, *map(str, args), "--output",
                             str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folder = None
    deadline = time.monotonic() + 120
    while folder is None and time.monotonic() < deadline and proc.poll() is None:
        for d in spill.iterdir():
            if any(f.suffix == ".arrows" for f in d.iterdir()):
                folder = d
        time.sleep(0.01)
    proc.kill()
    proc.communicate()
    assert folder is not None, "the run did not spill; lower --memory-limit"
    assert folder.name.startswith(f"dlprep-spill-{proc.pid}-")
    assert folder.exists()  # SIGKILL gives no chance to clean up

    stats = tmp_path / "stats.json"
    again = dlprep(*args, "--output", tmp_path / "next", "--stats", stats)
    assert not folder.exists()
    notes = [line for line in again.stderr.splitlines() if "spill" in line]
    assert len(notes) == 1 and str(folder) in notes[0] and "removed" in notes[0], \
        again.stderr
    assert list(spill.iterdir()) == []  # and the new run removed its own folder
    assert json.loads(stats.read_text())["run"]["memory"]["spill_files"] > 0
    assert pq.read_table(tmp_path / "next").num_rows > 1500


def test_memory_limit_too_small_for_one_batch_fails_naming_it(dlprep, tmp_path):
    """A limit smaller than one decoded batch cannot be kept by spilling: the job fails
    with one line naming --memory-limit and the bytes needed, exit 1, nothing written
    (no crash, no out-of-memory kill)."""
    data = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 300, "--days", 60, "-o", data, "-q")
    out = tmp_path / "out"
    proc = dlprep("windows", "--events", data / "events", "--labels", data / "labels",
                  *WINDOW_ARGS, "--memory-limit", "64KB", "--spill-dir", tmp_path,
                  "-w", "2", "-q", "--output", out, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dlprep windows: error: ")
    assert "memory limit reached: allocating " in lines[0]
    assert "over --memory-limit" in lines[0] and "of 64.0 KiB" in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("dlprep-spill")] == []


def test_memory_limit_bounds_the_engine_pool_and_keeps_the_output(dlprep, tmp_path):
    """Under a limit the job spills and its engine pool stays under it (--stats), and it
    writes the same rows as without one, also when the limit is far below the decoded
    size of one of the input's Parquet row groups (they are read in batches)."""
    data = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 1500, "--days", 90, "-o", data, "-q")
    events = pq.ParquetFile(next((data / "events").glob("*.parquet")))
    assert events.num_row_groups == 1
    row_group_bytes = events.read_row_group(0).nbytes
    assert row_group_bytes > 24 << 20
    base = ["windows", "--events", data / "events", "--labels", data / "labels",
            *WINDOW_ARGS, "-w", "2", "-q"]
    dlprep(*base, "--output", tmp_path / "free")
    stats = tmp_path / "stats.json"
    # 12MB: 8MB runs too, but with two workers it can fail now and then, when one
    # worker's Parquet writer asks for its buffers while the other holds its batches.
    dlprep(*base, "--memory-limit", "12MB", "--spill-dir", tmp_path, "--output",
           tmp_path / "limited", "--stats", stats)
    memory = json.loads(stats.read_text())["run"]["memory"]
    assert memory["spill_files"] > 0
    assert 0 < memory["peak_pool_bytes"] <= 12 << 20
    assert pq.read_table(tmp_path / "limited").equals(pq.read_table(tmp_path / "free"))
