"""`dlprep gen churn`: the synthetic events and labels the churn pipeline runs on."""
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def test_gen_churn_schema_and_invariants(dlprep, tmp_path):
    out = tmp_path / "churn"
    dlprep("gen", "churn", "--customers", 300, "--days", 40, "--seed", 7, "-o", out, "-q")
    ev = pq.read_table(out / "events")
    lb = pq.read_table(out / "labels")
    # Parquet has no second unit: Arrow stores timestamp[s] as milliseconds.
    assert ev.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert ev.schema.names == ["customer_id", "ts", "event_type", "amount", "duration"]
    assert lb.num_rows == 300 and len(lb.column("customer_id").unique()) == 300
    assert set(ev.column("event_type").unique().to_pylist()) == {"call", "sms", "data",
                                                                 "topup", "support"}
    churned = lb.filter(pc.is_valid(lb.column("churn_ts")))
    assert 0 < churned.num_rows < 300
    # No event at or after a customer's churn time.
    joined = ev.join(churned, "customer_id")
    assert pc.sum(pc.greater_equal(joined.column("ts"), joined.column("churn_ts"))).as_py() in (None, 0)
    # Skewed activity: the busiest customer has many times the median's events.
    counts = sorted(pc.value_counts(ev.column("customer_id")).field("counts").to_pylist())
    assert counts[-1] > 5 * counts[len(counts) // 2]


def test_gen_churn_is_deterministic_by_seed(dlprep, tmp_path):
    for name in ["a", "b"]:
        dlprep("gen", "churn", "--customers", 50, "--days", 10, "-o", tmp_path / name, "-q")
    assert pq.read_table(tmp_path / "a" / "events").equals(pq.read_table(tmp_path / "b" / "events"))


def test_gen_churn_bad_options(dlprep, tmp_path):
    p = dlprep("gen", "churn", "--customers", 0, "-o", tmp_path / "x", check=False)
    assert p.returncode == 1 and "--customers" in p.stderr
    p = dlprep("gen", "churn", "--churn-rate", 2, "-o", tmp_path / "x", check=False)
    assert p.returncode == 1 and "--churn-rate" in p.stderr
