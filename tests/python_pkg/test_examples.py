"""The Python examples (examples/python) run end to end against the installed package:
the churn and speech scripts as subprocesses, the churn notebook through nbclient."""
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import SOURCE

EXAMPLES = SOURCE / "examples" / "python"


def run_example(name, *args, timeout=180):
    p = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{name} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_churn_script(tmp_path):
    pytest.importorskip("torch")
    out = run_example("churn.py", tmp_path / "churn")
    with open(tmp_path / "churn" / "windows" / "_manifest.json") as f:
        m = json.load(f)
    assert m["format"] == "tfrecord" and len(m["files"]) == 4 and m["rows"] > 0
    # 14 daily steps x (count, 5 event types, 2 values x 3 aggregations).
    assert m["features"]["features"] == {"dtype": "float32", "shape": [14, 12],
                                         "fixed_length": True, "sequence": False}
    assert f"windows: {m['rows']} rows in 4 files, features [14,12]" in out
    # Both epochs read every window once, through the DataLoader's workers.
    for epoch in range(2):
        assert f"torch: epoch {epoch}: {m['rows']} windows in " in out, out
    assert "(features (14, 12))" in out
    try:
        import tensorflow  # noqa: F401
        assert f"tf.data: {m['rows']} windows" in out
    except ImportError:
        assert "tf.data: skipped" in out


def test_speech_script_with_tones(tmp_path):
    pytest.importorskip("torch")
    out = run_example("speech.py", tmp_path / "speech", "--tones")
    t = pq.read_table(tmp_path / "speech" / "predictions.parquet")
    assert t.column_names == ["path", "label", "prediction"]
    assert t.num_rows == 9
    assert sorted(set(t.column("label").to_pylist())) == ["high", "low", "mid"]
    # Tones a few hundred Hz apart are told apart by their mean spectrum.
    assert t.column("prediction").to_pylist() == t.column("label").to_pylist()
    assert "predictions: 9 files, 9 correct (3 of the 3 held out)" in out
    assert "audio: 9 spectrograms of shape [" in out


def test_speech_script_with_espeak(tmp_path):
    pytest.importorskip("torch")
    if not any(os.access(os.path.join(d, "espeak-ng"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("espeak-ng is not installed")
    out = run_example("speech.py", tmp_path / "speech")
    t = pq.read_table(tmp_path / "speech" / "predictions.parquet")
    assert t.num_rows == 4 * 3 * 2  # words x voices x speeds
    labels = set(t.column("label").to_pylist())
    assert labels == {"yes", "no", "up", "down"}
    assert set(t.column("prediction").to_pylist()) <= labels
    assert "wavs: 24 files of espeak-ng words" in out


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernelspec that runs this very Python (the venv with the installed dlprep):
    a user-wide "python3" kernel could point at another interpreter."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    name = "dlprep-test-python"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dlprep tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return name


def test_churn_notebook(tmp_path, kernel_name):
    pytest.importorskip("torch")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / "churn.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "the notebook is committed without outputs"
    work = tmp_path / "nb"
    work.mkdir()
    NotebookClient(nb, kernel_name=kernel_name, timeout=180,
                   resources={"metadata": {"path": str(work)}}).execute()
    text = {i: "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
            for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    with open(work / "churn-out" / "windows" / "_manifest.json") as f:
        m = json.load(f)
    assert any(f"windows: {m['rows']} rows in 4 files" in t for t in text.values()), text
    for epoch in range(2):
        assert any(f"epoch {epoch}: {m['rows']} windows, batches of (14, 12) features" in t
                   for t in text.values()), text
    assert any("windows:" in t and "customer_id" in t for t in text.values()), text
