"""TensorFlow reads dlprep's TFRecords, and dlprep reads TensorFlow's, to the same values."""
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import read_manifest

tf = pytest.importorskip("tensorflow")
import dlprep.tfrecord as dt  # noqa: E402

COMPRESSIONS = ["none", "gzip", "zlib"]


def every_type_table():
    shaped = pa.field("shaped", pa.list_(pa.float32()), nullable=False,
                      metadata={"dlprep.shape": "[2,3]"})
    schema = pa.schema([
        pa.field("i8", pa.int8(), nullable=False),
        pa.field("i16", pa.int16(), nullable=False),
        pa.field("i32", pa.int32(), nullable=False),
        pa.field("i64", pa.int64(), nullable=False),
        pa.field("u8", pa.uint8(), nullable=False),
        pa.field("u32", pa.uint32(), nullable=False),
        pa.field("flag", pa.bool_(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("f32", pa.float32(), nullable=False),
        pa.field("f64", pa.float64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("blob", pa.binary(), nullable=False),
        pa.field("big_text", pa.large_string(), nullable=False),
        pa.field("ints", pa.list_(pa.int64())),
        pa.field("floats", pa.list_(pa.float32())),
        pa.field("triple", pa.list_(pa.float32(), 3), nullable=False),
        pa.field("words", pa.list_(pa.string())),
        shaped,
        pa.field("maybe", pa.int64()),
        pa.field("maybe_text", pa.string()),
    ])
    n = 7
    rng = np.random.default_rng(7)
    data = {
        "i8": [-128, 127, 0, -1, 5, 6, 7],
        "i16": [-32768, 32767, 0, 1, 2, 3, 4],
        "i32": [-(2**31), 2**31 - 1, 0, 1, 2, 3, 4],
        "i64": [-(2**63), 2**63 - 1, 0, -42, 1 << 40, 3, 4],
        "u8": [0, 255, 1, 2, 3, 4, 5],
        "u32": [0, 2**32 - 1, 1, 2, 3, 4, 5],
        "flag": [True, False, True, True, False, False, True],
        "ts": [0, 1_700_000_000_123, -1000, 1, 2, 3, 4],
        "day": [0, 19000, -5, 1, 2, 3, 4],
        "f32": [0.5, -1.25, 3.4e38, 1e-30, 0.0, -0.0, 7.0],
        "f64": [0.5, -1.25, 1024.0, 0.0, 2.0, 3.0, 4.0],
        "text": ["", "héllo", "日本語", "emoji 🙂", "a", "b", "c"],
        "blob": [b"", b"\x00\xff\x10", b"abc", b"\x80", b"x", b"y", bytes(range(256))],
        "big_text": ["x" * 1000, "y", "z", "", "w", "v", "u"],
        "ints": [[], [1, -2, 3], None, [1 << 62], [0], [5, 5], [-1]],
        "floats": [[0.25], [], [1.5, 2.5, 3.5], None, [-1.0], [2.0, 4.0], [8.0]],
        "triple": [[float(i), i + 0.5, -i] for i in range(n)],
        "words": [["a", "bb"], [], ["ç"], None, ["x"], ["y", "z", "w"], [""]],
        "shaped": [list(rng.standard_normal(6).astype(np.float32)) for _ in range(n)],
        "maybe": [1, None, 3, None, 5, None, 7],
        "maybe_text": [None, "b", None, "d", None, "f", "g"],
    }
    return pa.table(data, schema=schema)


def as_int64(col):
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        return np.array(col.cast(pa.int64()).to_pylist(), dtype=np.int64)
    if pa.types.is_date32(t):
        return np.array(col.cast(pa.int32()).to_pylist(), dtype=np.int64)
    if pa.types.is_boolean(t):
        return np.array([int(v) for v in col.to_pylist()], dtype=np.int64)
    return np.array(col.to_pylist(), dtype=np.int64)


def expected_values(col):
    """Expected per-row lists of Python values as TensorFlow returns them."""
    t = col.type
    def conv(v, vt):
        if pa.types.is_string(vt) or pa.types.is_large_string(vt):
            return v.encode("utf-8")
        if pa.types.is_floating(vt):
            return float(np.float32(v))
        return v
    rows = []
    for v in col.to_pylist():
        if v is None:
            rows.append([])
        elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
            rows.append([conv(x, t.value_type) for x in v])
        else:
            rows.append([conv(v, t)])
    return rows


@pytest.fixture(scope="module")
def table_parquet(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    path = d / "every_type.parquet"
    pq.write_table(every_type_table(), path)
    return path


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_tensorflow_reads_dlprep_examples(dlprep, tmp_path, table_parquet, compression):
    out = tmp_path / "tfr"
    dlprep("convert", "-i", table_parquet, "-o", out, "--compression", compression, "-q")
    assert (out / "_SUCCESS").exists()
    m = read_manifest(out)
    assert m["rows"] == 7 and m["compression"] == compression
    table = every_type_table()

    spec = dt.feature_spec(out)
    feats = m["features"]
    # Fixed-length features are exactly the non-null, same-length columns.
    assert feats["i64"] == {**feats["i64"], "dtype": "int64", "shape": [], "fixed_length": True}
    assert feats["triple"]["shape"] == [3] and feats["triple"]["fixed_length"]
    assert feats["shaped"]["shape"] == [2, 3] and feats["shaped"]["fixed_length"]
    assert feats["f64"]["dtype"] == "float32" and feats["text"]["dtype"] == "string"
    for name in ["maybe", "maybe_text", "ints", "floats", "words"]:
        assert not feats[name]["fixed_length"], name

    ds = tf.data.TFRecordDataset(dt.files(out), compression_type=dt.compression_type(out))
    raw = [r.numpy() for r in ds]
    assert len(raw) == 7
    # Byte-exact: TensorFlow's deterministic serialization of the parsed message is
    # identical to what dlprep wrote.
    for r in raw:
        assert tf.train.Example.FromString(r).SerializeToString(deterministic=True) == r
    # Nulls omit the feature.
    ex1 = tf.train.Example.FromString(raw[1])
    assert "maybe" not in ex1.features.feature and "maybe_text" in ex1.features.feature
    ex0 = tf.train.Example.FromString(raw[0])
    assert "ints" in ex0.features.feature  # an empty list is present, with no values

    parsed = tf.io.parse_example(tf.constant(raw), spec)
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        got = parsed[name]
        if isinstance(got, tf.SparseTensor):
            got_rows = tf.RaggedTensor.from_sparse(got).to_list()
        else:
            got_rows = got.numpy().reshape(7, -1).tolist()
        want_rows = expected_values(col)
        if feats[name]["dtype"] == "int64" and col.null_count == 0:
            if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type)):
                want_rows = [[x] for x in as_int64(col)]
        assert got_rows == want_rows, name
    # The [2, 3] shape comes back as such.
    assert parsed["shaped"].shape == (7, 2, 3)

    # The helper's dataset gives the same first row.
    first = next(iter(dt.dataset(out)))
    assert first["i64"].numpy() == -(2**63)


def test_sequence_example_read_by_tensorflow(dlprep, tmp_path):
    seq = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "frames": pa.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]], [[7.0, 8.0], [9.0, 1.0], [2.0, 3.0]]],
                           pa.list_(pa.list_(pa.float32()))),
        "tokens": pa.array([[[1], [2, 3]], [[]], [[4, 5, 6]]], pa.list_(pa.list_(pa.int64()))),
    })
    src = tmp_path / "seq.parquet"
    pq.write_table(seq, src)
    out = tmp_path / "out"
    dlprep("convert", "-i", src, "-o", out, "--record-type", "sequence_example", "-q")
    m = read_manifest(out)
    assert m["record_type"] == "sequence_example"
    assert m["features"]["frames"]["sequence"] and not m["features"]["id"]["sequence"]
    raw = [r.numpy() for r in tf.data.TFRecordDataset(dt.files(out))]
    for i, r in enumerate(raw):
        msg = tf.train.SequenceExample.FromString(r)
        assert msg.SerializeToString(deterministic=True) == r
        ctx, sq, _ = tf.io.parse_sequence_example(
            tf.constant([r]),
            context_features={"id": tf.io.FixedLenFeature([], tf.int64)},
            sequence_features={"frames": tf.io.RaggedFeature(tf.float32),
                               "tokens": tf.io.RaggedFeature(tf.int64)})
        assert ctx["id"].numpy().tolist() == [i + 1]
        assert sq["frames"].to_list()[0] == seq.column("frames")[i].as_py()
        assert sq["tokens"].to_list()[0] == seq.column("tokens")[i].as_py()


def write_tf_examples(path, options=None):
    rows = []
    with tf.io.TFRecordWriter(str(path), options=options) as w:
        for i in range(50):
            feats = {
                "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i * 1000 - 7])),
                "score": tf.train.Feature(float_list=tf.train.FloatList(value=[i / 4.0])),
                "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"ñame{i}".encode()])),
                "vec": tf.train.Feature(float_list=tf.train.FloatList(value=[float(j) for j in range(i % 4)])),
                "tags": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"t%d" % j for j in range(i % 3)])),
            }
            rows.append({"id": i * 1000 - 7, "score": i / 4.0, "name": f"ñame{i}",
                         "vec": [float(j) for j in range(i % 4)],
                         "tags": ["t%d" % j for j in range(i % 3)]})
            w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return rows


@pytest.mark.parametrize("compression", ["", "GZIP", "ZLIB"])
def test_dlprep_reads_tensorflow_writer(dlprep, tmp_path, compression):
    src = tmp_path / "tf.tfrecord"
    rows = write_tf_examples(src, tf.io.TFRecordOptions(compression_type=compression))
    out = tmp_path / "pq"
    dlprep("convert", "-i", src, "-o", out, "--format", "parquet", "-q")
    got = pq.read_table(out).to_pylist()
    assert got == rows
    schema = pq.read_schema(next(out.glob("part-*.parquet")))
    assert schema.field("id").type == pa.int64()
    assert schema.field("score").type == pa.float32()
    assert schema.field("name").type == pa.string()
    assert schema.field("vec").type == pa.list_(pa.float32())


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip_every_type(dlprep, tmp_path, table_parquet, compression):
    tfr = tmp_path / "tfr"
    back = tmp_path / "back"
    dlprep("convert", "-i", table_parquet, "-o", tfr, "--compression", compression, "-q")
    dlprep("convert", "-i", tfr, "-o", back, "--format", "parquet", "-q")
    got = pq.read_table(back)
    want = every_type_table()
    assert got.schema.equals(want.schema, check_metadata=False)
    assert got.schema.field("shaped").metadata == {b"dlprep.shape": b"[2,3]"}
    assert got.equals(want)


def test_large_binary_values_round_trip(dlprep, tmp_path):
    rng = np.random.default_rng(1)
    blobs = [rng.bytes(5 << 20), b"", rng.bytes(12345)]
    src = tmp_path / "blobs.parquet"
    pq.write_table(pa.table({"blob": pa.array(blobs, pa.binary())}), src)
    tfr = tmp_path / "tfr"
    dlprep("convert", "-i", src, "-o", tfr, "--compression", "gzip", "-q")
    raw = [r.numpy() for r in tf.data.TFRecordDataset(dt.files(tfr), compression_type="GZIP")]
    got = [tf.train.Example.FromString(r).features.feature["blob"].bytes_list.value[0] for r in raw]
    assert got == blobs
    back = tmp_path / "back"
    dlprep("convert", "-i", tfr, "-o", back, "--format", "parquet", "-q")
    assert pq.read_table(back).column("blob").to_pylist() == blobs


def test_sharding_options(dlprep, tmp_path, table_parquet):
    out = tmp_path / "sharded"
    dlprep("convert", "-i", table_parquet, "-o", out, "--shards", "3", "-q")
    m = read_manifest(out)
    assert len(m["files"]) == 3 and sum(f["rows"] for f in m["files"]) == 7
    total = sum(1 for _ in tf.data.TFRecordDataset(dt.files(out)))
    assert total == 7
    out2 = tmp_path / "rolled"
    dlprep("convert", "-i", table_parquet, "-o", out2, "--max-rows-per-file", "2", "-q")
    m2 = read_manifest(out2)
    assert [f["rows"] for f in m2["files"]] == [2, 2, 2, 1]
    for f in m2["files"]:
        assert (out2 / f["name"]).stat().st_size == f["bytes"]


# Hand-made protobuf bytes: what occurs twice in a message merges (repeated fields
# concatenate, packed and unpacked mixed; a message field that occurs again merges; a
# value list of another kind replaces the one before, Feature.kind being a oneof; the
# last map entry of a key wins). tf.train.Example.FromString (protobuf itself) is the
# reference. (TensorFlow's own fast parser behind tf.io.parse_single_example reads only
# the first value list of a Feature and refuses a map entry with two values; it agrees
# with protobuf where it merges at all: Example.features twice.)

def pb_varint(v):
    out = bytearray()
    v &= (1 << 64) - 1
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb_tag(field, wire_type):
    return pb_varint(field << 3 | wire_type)


def pb_len(field, payload):
    return pb_tag(field, 2) + pb_varint(len(payload)) + payload


def pb_ints(*values, packed=True):  # Int64List
    if packed:
        return pb_len(1, b"".join(pb_varint(v) for v in values))
    return b"".join(pb_tag(1, 0) + pb_varint(v) for v in values)


def pb_floats(*values, packed=True):  # FloatList
    if packed:
        return pb_len(1, np.array(values, dtype="<f4").tobytes())
    return b"".join(pb_tag(1, 5) + np.float32(v).tobytes() for v in values)


def pb_bytes(*values):  # BytesList
    return b"".join(pb_len(1, v) for v in values)


def pb_feature(kind, list_msg):
    return pb_len({"bytes_list": 1, "float_list": 2, "int64_list": 3}[kind], list_msg)


def pb_entry(key, *values):  # one map entry; more than one value field merges
    return pb_len(1, pb_len(1, key) + b"".join(pb_len(2, v) for v in values))


MERGED_EXAMPLES = [
    # A value list twice in one Feature, packed and unpacked: [1, 2, 3, 4].
    pb_len(1, pb_entry(b"ints", pb_feature("int64_list", pb_ints(1, 2)) +
                       pb_feature("int64_list", pb_ints(3, packed=False) + pb_ints(4))) +
           pb_entry(b"k", pb_feature("int64_list", pb_ints(1)))),
    # The oneof switches to float_list, whose two occurrences merge: [2.5, 3.5].
    pb_len(1, pb_entry(b"floats", pb_feature("int64_list", pb_ints(9)) +
                       pb_feature("float_list", pb_floats(2.5)) +
                       pb_feature("float_list", pb_floats(3.5, packed=False))) +
           pb_entry(b"k", pb_feature("int64_list", pb_ints(2)))),
    # A map entry with its value field twice: the Features merge: [a, b, c].
    pb_len(1, pb_entry(b"words", pb_feature("bytes_list", pb_bytes(b"a")),
                       pb_feature("bytes_list", pb_bytes(b"b", b"c"))) +
           pb_entry(b"k", pb_feature("int64_list", pb_ints(3)))),
    # Example.features twice: the maps merge and the last "k" wins.
    pb_len(1, pb_entry(b"k", pb_feature("int64_list", pb_ints(4))) +
           pb_entry(b"y", pb_feature("int64_list", pb_ints(7)))) +
    pb_len(1, pb_entry(b"k", pb_feature("int64_list", pb_ints(5, 6)))),
    # The same key twice in one Features: the last entry wins; an unknown group field.
    pb_len(1, pb_entry(b"ints", pb_feature("int64_list", pb_ints(8))) +
           pb_entry(b"k", pb_feature("int64_list", pb_ints(9))) +
           pb_entry(b"ints", pb_feature("int64_list", pb_ints(10, 11)))) +
    pb_tag(9, 3) + pb_tag(1, 0) + pb_varint(5) + pb_tag(9, 4),
]


def protobuf_values(example):
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[key] = list(getattr(feature, kind).value) if kind else []
    return out


def test_merged_fields_decode_as_protobuf_does(dlprep, tmp_path):
    src = tmp_path / "merged.tfrecord"
    with tf.io.TFRecordWriter(str(src)) as w:
        for record in MERGED_EXAMPLES:
            w.write(record)
    want = [protobuf_values(tf.train.Example.FromString(r))
            for r in tf.data.TFRecordDataset(str(src)).as_numpy_iterator()]
    assert want[0]["ints"] == [1, 2, 3, 4] and want[1]["floats"] == [2.5, 3.5]
    assert want[2]["words"] == [b"a", b"b", b"c"] and want[3]["k"] == [5, 6]
    out = tmp_path / "pq"
    dlprep("convert", "-i", src, "-o", out, "--format", "parquet", "-q")
    table = pq.read_table(out)
    assert sorted(table.column_names) == ["floats", "ints", "k", "words", "y"]
    for i, row in enumerate(table.to_pylist()):
        got = {}
        for key, value in row.items():
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            got[key] = [v.encode() if isinstance(v, str) else v for v in values]
        assert got == want[i], i
    # Where TensorFlow's fast parser merges (Example.features twice), it agrees.
    parsed = tf.io.parse_single_example(MERGED_EXAMPLES[3], {
        "k": tf.io.VarLenFeature(tf.int64), "y": tf.io.VarLenFeature(tf.int64)})
    assert tf.sparse.to_dense(parsed["k"]).numpy().tolist() == want[3]["k"]
    assert tf.sparse.to_dense(parsed["y"]).numpy().tolist() == want[3]["y"]


def test_merged_sequence_example_decodes_as_protobuf_does(dlprep, tmp_path):
    # SequenceExample: context twice (merged), feature_lists twice (the later "l" wins),
    # a FeatureList value field twice in one entry (the feature lists concatenate).
    feature_list = lambda *features: b"".join(pb_len(1, f) for f in features)  # noqa: E731
    ints = lambda *v: pb_feature("int64_list", pb_ints(*v))  # noqa: E731
    record = (pb_len(1, pb_entry(b"id", ints(1))) +
              pb_len(2, pb_entry(b"l", feature_list(ints(1)), feature_list(ints(2, 3), ints())) +
                     pb_entry(b"m", feature_list(ints(4)))) +
              pb_len(1, pb_entry(b"id", ints(2))) +
              pb_len(2, pb_entry(b"m", feature_list(ints(5), ints(6)))))
    src = tmp_path / "seq.tfrecord"
    with tf.io.TFRecordWriter(str(src)) as w:
        w.write(record)
    ex = tf.train.SequenceExample.FromString(record)
    want = {"id": list(ex.context.feature["id"].int64_list.value)}
    for key, fl in ex.feature_lists.feature_list.items():
        want[key] = [list(f.int64_list.value) for f in fl.feature]
    assert want == {"id": [2], "l": [[1], [2, 3], []], "m": [[5], [6]]}
    out = tmp_path / "pq"
    dlprep("convert", "-i", src, "-o", out, "--format", "parquet", "--input-record-type",
           "sequence_example", "-q")
    row = pq.read_table(out).to_pylist()[0]
    assert {"id": [row["id"]], "l": row["l"], "m": row["m"]} == want


CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus" / "example_decode"


@pytest.mark.parametrize("seed", sorted(p.name for p in CORPUS.glob("*.pb")))
def test_example_decode_seeds_decode_as_protobuf_does(dlprep, tmp_path, seed):
    # The decoder's regression seeds (tests/fuzz/make_tfrecord_corpus.py), each framed as the one
    # record of a file: dlprep reads what tf.train.Example.FromString reads, and refuses
    # what it refuses.
    record = (CORPUS / seed).read_bytes()
    src = tmp_path / "seed.tfrecord"
    with tf.io.TFRecordWriter(str(src)) as w:
        w.write(record)
    out = tmp_path / "pq"
    proc = dlprep("convert", "-i", src, "-o", out, "--format", "parquet", "-q", check=False)
    try:
        want = protobuf_values(tf.train.Example.FromString(record))
    except Exception:  # protobuf's DecodeError
        assert proc.returncode == 1, proc.stderr
        assert "seed.tfrecord: record at byte offset 0" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    row = pq.read_table(out).to_pylist()[0]
    got = {k: [v.encode() if isinstance(v, str) else v for v in (x if isinstance(x, list) else [x])]
           for k, x in row.items() if x is not None}
    assert got == want


def sequence_table():
    return pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "frames": pa.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]],
                            [[7.0, 8.0], [9.0, 1.0], [2.0, 3.0]]],
                           pa.list_(pa.list_(pa.float32()))),
        "tokens": pa.array([[[1], [2, 3]], [[]], [[4, 5, 6]]], pa.list_(pa.list_(pa.int64()))),
    })


def test_dataset_reads_sequence_example_output(dlprep, tmp_path):
    seq = sequence_table()
    pq.write_table(seq, tmp_path / "seq.parquet")
    out = tmp_path / "out"
    dlprep("convert", "-i", tmp_path / "seq.parquet", "-o", out, "--record-type",
           "sequence_example", "-q")
    context, sequence = dt.feature_spec(out)
    assert set(context) == {"id"} and set(sequence) == {"frames", "tokens"}
    # One record at a time: context and feature lists in one dict.
    rows = list(dt.dataset(out))
    assert [r["id"].numpy() for r in rows] == [1, 2, 3]
    for i, r in enumerate(rows):
        assert r["frames"].numpy().tolist() == seq.column("frames")[i].as_py()
        assert r["tokens"].to_list() == seq.column("tokens")[i].as_py()
    # Batched: fixed-length steps padded with zeros to the longest sequence.
    batch = next(iter(dt.dataset(out, batch_size=3)))
    assert batch["id"].numpy().tolist() == [1, 2, 3]
    assert batch["frames"].shape == (3, 3, 2)
    assert batch["frames"].numpy()[1].tolist() == [[5.0, 6.0], [0.0, 0.0], [0.0, 0.0]]
    assert batch["tokens"].to_list() == seq.column("tokens").to_pylist()


def test_defaults_give_nullable_columns_a_dense_tensor(dlprep, tmp_path):
    table = pa.table({
        "maybe": pa.array([1, None, 3], pa.int64()),
        "maybe_text": pa.array(["a", None, "c"], pa.string()),
        "vec": pa.array([[1.0, 2.0], None, [5.0, 6.0]], pa.list_(pa.float32())),
        "ragged": pa.array([[1], [2, 3], None], pa.list_(pa.int64())),
    })
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out"
    dlprep("convert", "-i", tmp_path / "in.parquet", "-o", out, "-q")
    # Without defaults: sparse, null rows without values.
    plain = next(iter(dt.dataset(out, batch_size=3)))
    assert isinstance(plain["maybe"], tf.SparseTensor)
    defaults = {"maybe": -1, "maybe_text": "", "vec": [0.0, 0.0]}
    for batch_size in [3, None]:
        ds = dt.dataset(out, batch_size=batch_size, defaults=defaults)
        got = next(iter(ds)) if batch_size else \
            {k: tf.stack([r[k] for r in ds]) for k in defaults}
        assert got["maybe"].numpy().tolist() == [1, -1, 3]
        assert got["maybe_text"].numpy().tolist() == [b"a", b"", b"c"]
        assert got["vec"].numpy().tolist() == [[1.0, 2.0], [0.0, 0.0], [5.0, 6.0]]
    spec = dt.feature_spec(out, defaults={"maybe": 0})
    assert spec["maybe"] == tf.io.FixedLenFeature([], tf.int64, default_value=0)
    assert isinstance(spec["maybe_text"], tf.io.VarLenFeature)

    with pytest.raises(ValueError, match="'nope' is not a column of .*maybe, maybe_text"):
        dt.feature_spec(out, defaults={"nope": 1})
    with pytest.raises(ValueError, match="'ragged' .* has no fixed shape"):
        dt.dataset(out, defaults={"ragged": [0]})


def test_defaults_refuse_feature_lists(dlprep, tmp_path):
    pq.write_table(sequence_table(), tmp_path / "seq.parquet")
    out = tmp_path / "out"
    dlprep("convert", "-i", tmp_path / "seq.parquet", "-o", out, "--record-type",
           "sequence_example", "-q")
    with pytest.raises(ValueError, match="'frames' .* is a feature list"):
        dt.feature_spec(out, defaults={"frames": 0.0})
    # A context column may have one.
    context, _ = dt.feature_spec(out, defaults={"id": -1})
    assert context["id"] == tf.io.FixedLenFeature([], tf.int64, default_value=-1)


def test_time_columns_carry_their_unit(dlprep, tmp_path):
    table = pa.table({
        "ts": pa.array([0, 1_700_000_000_123], pa.timestamp("ms", tz="UTC")),
        "ts_us": pa.array([5, 6], pa.timestamp("us")),
        "day": pa.array([0, 19000], pa.date32()),
        "stamps": pa.array([[1, 2], [3, 4]], pa.list_(pa.timestamp("ns"))),
        "n": pa.array([7, 8], pa.int64()),
    })
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out"
    dlprep("convert", "-i", tmp_path / "in.parquet", "-o", out, "-q")
    feats = read_manifest(out)["features"]
    assert feats["ts"]["unit"] == "ms" and feats["ts"]["timezone"] == "UTC"
    assert feats["ts_us"]["unit"] == "us" and "timezone" not in feats["ts_us"]
    assert "unit" not in feats["n"]
    want = {"ts": "ms", "ts_us": "us", "day": "days", "stamps": "ns"}
    assert dt.units(out) == want
    batch = next(iter(dt.dataset(out, batch_size=2)))
    assert batch["ts"].numpy().tolist() == [0, 1_700_000_000_123]
    assert batch["day"].numpy().tolist() == [0, 19000]
    # A manifest whose feature spec has no units (older dlprep): the Arrow type says.
    m = json.loads((out / "_manifest.json").read_text())
    for spec in m["features"].values():
        spec.pop("unit", None)
        spec.pop("timezone", None)
    (out / "_manifest.json").write_text(json.dumps(m))
    assert dt.units(out) == want
