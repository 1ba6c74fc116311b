"""Python helpers for data written by dlprep.

`dlprep.tfrecord` builds TensorFlow parsing specs from a dataset's _manifest.json.
"""
