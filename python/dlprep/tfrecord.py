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


def _feature(spec, tf):
    dtype = {"int64": tf.int64, "float32": tf.float32, "string": tf.string}[spec["dtype"]]
    if spec.get("fixed_length"):
        if spec.get("sequence"):
            return tf.io.FixedLenSequenceFeature(spec["shape"], dtype)
        return tf.io.FixedLenFeature(spec["shape"], dtype)
    if spec.get("sequence"):
        return tf.io.RaggedFeature(dtype)
    return tf.io.VarLenFeature(dtype)


def feature_spec(path):
    """The `features` argument of tf.io.parse_example for tf.train.Example data.

    Columns that every row has with the same length become FixedLenFeature with the
    shape from the manifest (so a [101, 64] spectrogram comes back as such); the others
    VarLenFeature (a tf.SparseTensor; rows where the value was null have no values).
    For sequence_example data this returns (context_features, sequence_features).
    """
    import tensorflow as tf

    m = manifest(path)
    specs = m.get("features", {})
    if m.get("record_type") == "sequence_example":
        context = {k: _feature(v, tf) for k, v in specs.items() if not v.get("sequence")}
        sequence = {k: _feature(v, tf) for k, v in specs.items() if v.get("sequence")}
        return context, sequence
    return {k: _feature(v, tf) for k, v in specs.items()}


def dataset(path, batch_size=None):
    """A tf.data.Dataset of feature dicts read from a dlprep tf.train.Example folder."""
    import tensorflow as tf

    spec = feature_spec(path)
    ds = tf.data.TFRecordDataset(files(path), compression_type=compression_type(path))
    if batch_size:
        return ds.batch(batch_size).map(lambda r: tf.io.parse_example(r, spec))
    return ds.map(lambda r: tf.io.parse_single_example(r, spec))
