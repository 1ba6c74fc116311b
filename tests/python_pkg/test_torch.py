"""dlprep.torch: a PyTorch IterableDataset over folders dlprep wrote, read through
DataLoader workers, shuffled reproducibly and sharded across ranks."""
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import dlprep

torch = pytest.importorskip("torch")
import dlprep.torch as dtorch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

ROWS = 1000
SHARDS = 6
SHAPE = (2, 3)


def source_table():
    ids = np.arange(ROWS, dtype=np.int64)
    feat = pa.field("feat", pa.list_(pa.float32()), nullable=False,
                    metadata={"dlprep.shape": "[2,3]"})
    schema = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("x", pa.float64(), nullable=False),
        pa.field("flag", pa.bool_(), nullable=False),
        feat,
        pa.field("ragged", pa.list_(pa.int64())),
        pa.field("name", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("s", tz="UTC"), nullable=False),
    ])
    return pa.table({
        "id": ids,
        "x": ids * 0.25,
        "flag": ids % 3 == 0,
        "feat": [expected_feat(i).ravel().tolist() for i in ids],
        "ragged": [list(range(i % 4)) for i in ids],
        "name": [f"row-{i}" for i in ids],
        "ts": pa.array(1_700_000_000 + ids).cast(pa.timestamp("s", tz="UTC")),
    }, schema=schema)


def expected_feat(i):
    return (np.arange(6, dtype=np.float32) + 10 * i).reshape(SHAPE)


@pytest.fixture(scope="module", params=["tfrecord", "parquet"])
def folder(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch") / request.param
    # Batches of 100 rows: `shards` deals whole batches to the files (200-100 rows each).
    table = pa.Table.from_batches(source_table().to_batches(max_chunksize=100))
    ds = dlprep.from_arrow(table)
    if request.param == "tfrecord":
        ds.write_tfrecord(out, shards=SHARDS)
    else:
        ds.write_parquet(out, shards=SHARDS)
    return out


def check_rows(cols, n=None):
    """Every value of a batch (dict of columns) is the one its id implies."""
    ids = cols["id"]
    assert ids.dtype == torch.int64 and ids.dim() == 1
    n = len(ids) if n is None else n
    assert cols["feat"].shape == (n, *SHAPE) and cols["feat"].dtype == torch.float32
    want = torch.from_numpy(np.stack([expected_feat(i) for i in ids.tolist()]))
    assert torch.equal(cols["feat"], want)
    assert torch.equal(cols["x"], ids.double() * 0.25)
    assert cols["flag"].dtype == torch.bool
    assert cols["flag"].tolist() == [i % 3 == 0 for i in ids.tolist()]
    assert torch.equal(cols["ts"], ids + 1_700_000_000)
    assert cols["name"] == [f"row-{i}" for i in ids.tolist()]
    assert [r.tolist() for r in cols["ragged"]] == [list(range(i % 4)) for i in ids.tolist()]


def test_the_folder_has_the_shards(folder):
    ds = dtorch.dataset(folder)
    assert len(ds.files()) == SHARDS
    assert all(rows > 0 for _, rows in ds.files())
    assert sum(rows for _, rows in ds.files()) == ROWS
    assert ds.schema.field("feat").metadata[b"dlprep.shape"] == b"[2,3]"


def test_batches_through_two_workers_give_every_row_once(folder):
    ds = dtorch.dataset(folder, batch_size=64)
    seen = []
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        assert len(batch["id"]) <= 64
        check_rows(batch)
        seen += batch["id"].tolist()
    assert sorted(seen) == list(range(ROWS))


def test_rows_collated_by_the_dataloader(folder):
    ds = dtorch.dataset(folder, columns=["id", "feat", "name"])
    seen = []
    for batch in DataLoader(ds, batch_size=50, num_workers=2):
        assert set(batch) == {"id", "feat", "name"}
        assert batch["feat"].shape[1:] == SHAPE
        want = torch.from_numpy(np.stack([expected_feat(i) for i in batch["id"].tolist()]))
        assert torch.equal(batch["feat"], want)
        assert batch["name"] == [f"row-{i}" for i in batch["id"].tolist()]
        seen += batch["id"].tolist()
    assert sorted(seen) == list(range(ROWS))


def test_one_row_at_a_time_in_the_main_process(folder):
    rows = list(dtorch.dataset(folder))
    assert len(rows) == ROWS
    r = rows[7]
    assert r["feat"].shape == SHAPE and r["id"].dim() == 0
    assert r["name"] == f"row-{int(r['id'])}"
    # Without shuffling: the manifest's file order, rows in file order, as the engine
    # reads the folder.
    read = dlprep.read_tfrecord if folder.name == "tfrecord" else dlprep.read_parquet
    assert [int(r["id"]) for r in rows] == read(folder).to_arrow().column("id").to_pylist()


def test_strings_drop(folder):
    batch = next(iter(dtorch.dataset(folder, batch_size=10, strings="drop")))
    assert "name" not in batch and "feat" in batch and "ragged" in batch


def test_drop_last_gives_only_full_batches(folder):
    sizes = [len(b["id"]) for b in dtorch.dataset(folder, batch_size=64, drop_last=True)]
    assert set(sizes) == {64} and len(sizes) == ROWS // 64


def ids_of(ds, workers=2):
    out = []
    for batch in DataLoader(ds, batch_size=None, num_workers=workers):
        out += batch["id"].tolist()
    return out


def test_shuffle_is_a_seeded_permutation(folder):
    ds = dtorch.dataset(folder, batch_size=32, shuffle_buffer=200, seed=3)
    first = ids_of(ds)
    assert sorted(first) == list(range(ROWS))
    assert first != sorted(first)
    assert ids_of(dtorch.dataset(folder, batch_size=32, shuffle_buffer=200, seed=3)) == first
    ds.set_epoch(1)
    second = ids_of(ds)
    assert sorted(second) == list(range(ROWS)) and second != first
    ds.set_epoch(0)
    assert ids_of(ds) == first
    other_seed = ids_of(dtorch.dataset(folder, batch_size=32, shuffle_buffer=200, seed=4))
    assert other_seed != first


def test_shuffle_mixes_rows_within_a_file(folder):
    # One file, one worker: the buffer alone reorders the rows.
    ds = dtorch.dataset(folder, batch_size=None, shuffle_buffer=100, seed=0)
    path, rows = ds.files(0, 1)[0]
    ids = [int(r["id"]) for r in ds]
    first_file = ids[:rows]
    assert first_file != sorted(first_file)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_partition_the_files(folder, world_size):
    files, ids = [], []
    for rank in range(world_size):
        ds = dtorch.dataset(folder, batch_size=100, rank=rank, world_size=world_size)
        mine = [p for p, _ in ds.files(0, 1)]
        assert len(mine) in (SHARDS // world_size, -(-SHARDS // world_size))
        files += mine
        got = ids_of(ds)
        assert len(got) == ds.rows_per_rank()[rank]
        ids += got
    assert sorted(files) == sorted(p for p, _ in dtorch.dataset(folder).files())
    assert sorted(ids) == list(range(ROWS))


def test_ranks_partition_the_files_when_shuffled(folder):
    ids = []
    for rank in range(2):
        ds = dtorch.dataset(folder, batch_size=100, rank=rank, world_size=2,
                            shuffle_buffer=50, seed=9)
        ds.set_epoch(5)
        ids += ids_of(ds)
    assert sorted(ids) == list(range(ROWS))


def test_bad_arguments(folder, tmp_path):
    with pytest.raises(dlprep.errors.IOError, match="_manifest.json"):
        dtorch.dataset(tmp_path)
    with pytest.raises(dlprep.errors.KeyError, match="nope"):
        dtorch.dataset(folder, columns=["id", "nope"])
    with pytest.raises(dlprep.InvalidInput, match="rank 2 of world_size 2"):
        dtorch.dataset(folder, rank=2, world_size=2)
    with pytest.raises(dlprep.InvalidInput, match="strings"):
        dtorch.dataset(folder, strings="bytes")


@pytest.mark.parametrize("compression", ["gzip", "zlib"])
def test_compressed_tfrecord(tmp_path, compression):
    table = pa.Table.from_batches(source_table().to_batches(max_chunksize=250))
    dlprep.from_arrow(table).write_tfrecord(tmp_path / "t", shards=2, compression=compression)
    ds = dtorch.dataset(tmp_path / "t", batch_size=300)
    seen = []
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        check_rows(batch)
        seen += batch["id"].tolist()
    assert sorted(seen) == list(range(ROWS))


def test_a_wrong_row_length_names_the_column(tmp_path):
    field = pa.field("v", pa.list_(pa.float32()), metadata={"dlprep.shape": "[4]"})
    t = pa.table({"v": [[1, 2, 3, 4], [1, 2, 3]]}, schema=pa.schema([field]))
    dlprep.from_arrow(t).write_parquet(tmp_path / "p")
    with pytest.raises(ValueError, match="column 'v'.* 3 values; expected 4"):
        list(dtorch.dataset(tmp_path / "p", batch_size=2))


def test_importing_dlprep_does_not_import_torch():
    code = ("import sys, dlprep, dlprep.tfrecord; dlprep.from_arrow; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
