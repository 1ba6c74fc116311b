"""Read dlprep's TFRecord output in TensorFlow without guessing the feature spec.

Every dataset dlprep writes has a _manifest.json that lists its files and, per column,
the TensorFlow dtype, shape and whether every row has the feature with a fixed length:

    import dlprep.tfrecord as dt
    ds = dt.dataset("out/tfr", batch_size=256)   # a tf.data.Dataset of dicts

or, to keep control of the pipeline:

    spec = dt.feature_spec("out/tfr")            # {name: tf.io.FixedLenFeature | VarLenFeature}
    files = dt.files("out/tfr")
    ds = tf.data.TFRecordDataset(files, compression_type=dt.compression_type("out/tfr"))
    ds = ds.batch(256).map(lambda r: tf.io.parse_example(r, spec))

Columns with nulls come back as tf.SparseTensor (a null row has no values); give them
a value for null rows with ``defaults={"column": value}`` to get a dense tensor.
Timestamps and dates arrive as int64 counts; ``units(path)`` says of what ("s", "ms",
"us", "ns", "days"), as the manifest's feature spec does.
"""
import json
import os

_COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}


def manifest(path):
    """The parsed _manifest.json of a dlprep output folder (or the file itself)."""
    if os.path.isdir(path):
        path = os.path.join(path, "_manifest.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def files(path):
    """Absolute paths of the data files of a dlprep output folder, in order."""
    m = manifest(path)
    return [os.path.join(os.path.abspath(path), f["name"]) for f in m["files"]]


def compression_type(path):
    """The `compression_type` argument for tf.data.TFRecordDataset."""
    return _COMPRESSION[manifest(path).get("compression", "none")]


def _feature(spec, tf, default=None, has_default=False):
    dtype = {"int64": tf.int64, "float32": tf.float32, "string": tf.string}[spec["dtype"]]
    if has_default:
        return tf.io.FixedLenFeature(spec["shape"], dtype, default_value=default)
    if spec.get("fixed_length"):
        if spec.get("sequence"):
            return tf.io.FixedLenSequenceFeature(spec["shape"], dtype)
        return tf.io.FixedLenFeature(spec["shape"], dtype)
    if spec.get("sequence"):
        return tf.io.RaggedFeature(dtype)
    return tf.io.VarLenFeature(dtype)


def _check_defaults(specs, defaults, path):
    for name in defaults:
        if name not in specs:
            raise ValueError(f"defaults: '{name}' is not a column of '{path}'; its columns: "
                             f"{', '.join(specs)}")
        spec = specs[name]
        if spec.get("sequence"):
            raise ValueError(f"defaults: column '{name}' of '{path}' is a feature list "
                             "(sequence_example); defaults apply to context columns only")
        if any(d < 0 for d in spec["shape"]):
            raise ValueError(f"defaults: column '{name}' of '{path}' has no fixed shape "
                             f"(its rows differ in length: shape {spec['shape']}); a default "
                             "needs one")


def feature_spec(path, defaults=None):
    """The `features` argument of tf.io.parse_example for tf.train.Example data.

    Columns that every row has with the same length become FixedLenFeature with the
    shape from the manifest (so a [101, 64] spectrogram comes back as such); the others
    VarLenFeature (a tf.SparseTensor; rows where the value was null have no values).
    ``defaults`` ({column: value}) makes a column with nulls a FixedLenFeature whose
    null rows get the value (a scalar, or a value of the column's fixed shape);
    ValueError for a column that is not there, has no fixed shape, or is a feature list.
    For sequence_example data this returns (context_features, sequence_features).
    """
    import tensorflow as tf

    m = manifest(path)
    specs = m.get("features", {})
    defaults = dict(defaults or {})
    _check_defaults(specs, defaults, path)

    def feature(name, spec):
        return _feature(spec, tf, defaults.get(name), name in defaults)

    if m.get("record_type") == "sequence_example":
        context = {k: feature(k, v) for k, v in specs.items() if not v.get("sequence")}
        sequence = {k: feature(k, v) for k, v in specs.items() if v.get("sequence")}
        return context, sequence
    return {k: feature(k, v) for k, v in specs.items()}


def units(path):
    """{column: unit} of the columns that hold times as int64: "s", "ms", "us" or "ns"
    for timestamps (counted from the Unix epoch, in UTC), "days" for dates."""
    m = manifest(path)
    out = {k: v["unit"] for k, v in m.get("features", {}).items() if "unit" in v}
    # Manifests written before the feature spec carried the unit: the Arrow type says.
    for field in m.get("schema", []):
        name, typ = field.get("name"), field.get("type", "")
        if name in out or name not in m.get("features", {}):
            continue
        if "timestamp[" in typ:
            out[name] = typ.split("timestamp[", 1)[1].split("]", 1)[0].split(",")[0].strip()
        elif "date32" in typ:
            out[name] = "days"
        elif "date64" in typ:
            out[name] = "ms"
    return out


def dataset(path, batch_size=None, defaults=None):
    """A tf.data.Dataset of feature dicts ({column: tensor}) read from a dlprep TFRecord
    folder of tf.train.Example or tf.train.SequenceExample records.

    For sequence_example data each dict holds the context columns and the feature lists
    together (a fixed-length feature list as a dense [steps, ...] tensor, padded with
    zeros across a batch; the others as tf.RaggedTensor). ``defaults``: see feature_spec.
    """
    import tensorflow as tf

    spec = feature_spec(path, defaults)
    ds = tf.data.TFRecordDataset(files(path), compression_type=compression_type(path))
    if isinstance(spec, tuple):
        context, sequence = spec

        def parse_one(r):
            ctx, seq = tf.io.parse_single_sequence_example(
                r, context_features=context, sequence_features=sequence)
            return {**ctx, **seq}

        def parse_batch(r):
            ctx, seq, _ = tf.io.parse_sequence_example(
                r, context_features=context, sequence_features=sequence)
            return {**ctx, **seq}

        if batch_size:
            return ds.batch(batch_size).map(parse_batch)
        return ds.map(parse_one)
    if batch_size:
        return ds.batch(batch_size).map(lambda r: tf.io.parse_example(r, spec))
    return ds.map(lambda r: tf.io.parse_single_example(r, spec))
