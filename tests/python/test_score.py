"""dlprep score (TorchScript batch inference) against PyTorch itself.

Models are made and reference outputs computed by tests/python/torch_models.py under a
Python that has torch (Debian's /usr/bin/python3 with python3-torch, the same libtorch
1.13 the backend links); inputs and outputs travel as .npy files. Skipped when the build
has no TorchScript backend or no such Python exists.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).resolve().parent
TORCH_PY = os.environ.get("DLPREP_TORCH_PYTHON", "/usr/bin/python3")


def _torch_python_ok():
    try:
        r = subprocess.run([TORCH_PY, "-c", "import torch, numpy"], capture_output=True,
                           timeout=120)
        return r.returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def torch_env(dlprep, tmp_path_factory):
    probe = dlprep("score", "--help")
    if "This build has no TorchScript backend" in probe.stdout:
        pytest.skip("this dlprep build has no TorchScript backend (libtorch not found)")
    if not _torch_python_ok():
        pytest.skip(f"{TORCH_PY} has no torch (Debian: apt-get install python3-torch)")
    tmp = tmp_path_factory.mktemp("score")
    torch_py("make-all", tmp)  # one Python start-up for every model
    return tmp


def torch_py(*args):
    subprocess.run([TORCH_PY, str(HERE / "torch_models.py"), *map(str, args)], check=True,
                   timeout=300)


def make_model(tmp, kind):
    path = tmp / f"{kind}.pt"
    if not path.exists():
        torch_py("make", kind, path)
    return path


def reference(tmp, model, arrays, softmax=False, tag="ref"):
    """PyTorch's outputs of `model` on `arrays` (one per input): {name: ndarray}."""
    d = tmp / f"{tag}_{model.stem}"
    paths = []
    for i, a in enumerate(arrays):
        p = tmp / f"{tag}_{model.stem}_in{i}.npy"
        np.save(p, a)
        paths.append(p)
    torch_py("ref", model, d, *paths, *(["--softmax"] if softmax else []))
    names = (d / "names.txt").read_text().split("\n")
    return {n: np.load(d / f"{n}.npy") for n in names}


def tensor_column(a, shape_meta=True):
    """A list<float32> column of a [N, ...] array, one tensor per row."""
    n = a.shape[0]
    flat = pa.array(a.reshape(n, -1).reshape(-1), pa.float32())
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * int(np.prod(a.shape[1:])))
    return pa.ListArray.from_arrays(offsets, flat)


def write_table(path, columns, shapes, files=1, row_group_size=None):
    """Parquet file(s) of `columns` ({name: array or pyarrow array}); tensor columns
    get `dlprep.shape` metadata from `shapes` ({name: shape or None})."""
    fields, arrays = [], []
    for name, col in columns.items():
        if isinstance(col, np.ndarray) and col.ndim > 1:
            arr = tensor_column(col)
            meta = None
            if shapes.get(name) is not None:
                meta = {"dlprep.shape": json.dumps(list(shapes[name]))}
            fields.append(pa.field(name, arr.type, metadata=meta))
        else:
            arr = pa.array(col)
            fields.append(pa.field(name, arr.type))
        arrays.append(arr)
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    path.mkdir(parents=True, exist_ok=True)
    n = table.num_rows
    for f in range(files):
        lo, hi = f * n // files, (f + 1) * n // files
        pq.write_table(table.slice(lo, hi - lo), path / f"part-{f:03d}.parquet",
                       row_group_size=row_group_size)
    return path


def read_output(path):
    return pq.read_table(path)


def as_array(column, row_shape):
    flat = np.asarray(column.combine_chunks().flatten(), dtype=np.float32)
    return flat.reshape((len(column),) + tuple(row_shape))


def rng_inputs(n, shape, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def test_scores_equal_pytorch(dlprep, torch_env):
    tmp = torch_env
    model = make_model(tmp, "conv")
    x = rng_inputs(1000, (12, 8))
    ids = np.arange(1000, dtype=np.int64)
    inp = write_table(tmp / "conv_in", {"id": ids, "log_mel": x}, {"log_mel": (12, 8)},
                      files=3, row_group_size=100)
    ref = reference(tmp, model, [x])["scores"]
    out = tmp / "conv_out"
    dlprep("score", "--model", model, "-i", inp, "--model-input", "log_mel", "--batch-size", 64,
           "--output", out, "--format", "parquet", "--workers", 2, "--quiet")
    t = read_output(out)
    assert t.column_names == ["id", "scores"]
    np.testing.assert_array_equal(t.column("id").to_numpy(), ids)
    got = as_array(t.column("scores"), (3,))
    assert np.max(np.abs(got - ref)) <= 1e-5
    assert json.loads(t.schema.field("scores").metadata[b"dlprep.shape"]) == [3]
    # The manifest gives TensorFlow the shape of the scores too.
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == 1000


def test_argmax_and_softmax(dlprep, torch_env):
    tmp = torch_env
    model = make_model(tmp, "linear")
    x = rng_inputs(300, (8, 4), seed=2)
    inp = write_table(tmp / "lin_in", {"log_mel": x}, {"log_mel": (8, 4)})
    ref = reference(tmp, model, [x], softmax=True, tag="sm")["scores"]
    out = tmp / "lin_out"
    dlprep("score", "--model", model, "-i", inp, "--model-input", "log_mel", "--softmax",
           "--argmax", "-o", out, "--format", "parquet", "--quiet")
    t = read_output(out)
    assert t.column_names == ["scores", "prediction"]
    got = as_array(t.column("scores"), (5,))
    assert np.max(np.abs(got - ref)) <= 1e-5
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(t.column("prediction").to_numpy(), ref.argmax(1))
    assert t.schema.field("prediction").type == pa.int64()


def test_two_inputs_and_shape_flags(dlprep, torch_env):
    tmp = torch_env
    model = make_model(tmp, "two_inputs")
    a = rng_inputs(200, (8, 4), seed=3)
    b = rng_inputs(200, (3,), seed=4)
    # No dlprep.shape metadata: the shapes come from --shape, one per --model-input.
    inp = write_table(tmp / "two_in", {"a": a, "b": b, "name": [f"r{i}" for i in range(200)]},
                      {})
    ref = reference(tmp, model, [a, b])["scores"]
    out = tmp / "two_out"
    dlprep("score", "--model", model, "-i", inp, "--model-input", "a", "--model-input", "b",
           "--shape", "8,4", "--shape", "3", "--batch-size", 32, "-o", out,
           "--format", "parquet", "--quiet")
    t = read_output(out)
    assert t.column_names == ["name", "scores"]
    assert t.column("name").to_pylist() == [f"r{i}" for i in range(200)]
    got = as_array(t.column("scores"), (2,))
    assert np.max(np.abs(got - ref)) <= 1e-5
    # Without --shape and without metadata the shape is unknown: an error saying so.
    r = dlprep("score", "--model", model, "-i", inp, "--model-input", "a", "--model-input", "b",
               "-o", tmp / "two_out2", check=False)
    assert r.returncode == 1
    assert "no dlprep.shape" in r.stderr and "--shape" in r.stderr
    # One column for a model of two inputs.
    r = dlprep("score", "--model", model, "-i", inp, "--model-input", "a", "--shape", "8,4",
               "-o", tmp / "two_out3", check=False)
    assert r.returncode == 1
    assert "takes 2 input(s) (a, b) but 1 --model-input(s)" in r.stderr


def test_tuple_and_dict_outputs(dlprep, torch_env):
    tmp = torch_env
    x = rng_inputs(150, (8, 4), seed=5)
    inp = write_table(tmp / "td_in", {"x": x}, {"x": (8, 4)})
    # A tuple: scores_0, scores_1 by default, or --output-names.
    model = make_model(tmp, "tuple")
    ref = reference(tmp, model, [x])
    out = tmp / "tuple_out"
    dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "--output-names",
           "logits,embedding", "--argmax", "-o", out, "--format", "parquet", "--quiet")
    t = read_output(out)
    assert t.column_names == ["logits", "embedding", "prediction"]
    assert np.max(np.abs(as_array(t.column("logits"), (5,)) - ref["scores_0"])) <= 1e-5
    assert np.max(np.abs(as_array(t.column("embedding"), (2, 3)) - ref["scores_1"])) <= 1e-5
    assert json.loads(t.schema.field("embedding").metadata[b"dlprep.shape"]) == [2, 3]
    np.testing.assert_array_equal(t.column("prediction").to_numpy(),
                                  ref["scores_0"].argmax(1))
    out = tmp / "tuple_out_default"
    dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "-o", out,
           "--format", "parquet", "--quiet")
    assert read_output(out).column_names == ["scores_0", "scores_1"]
    # A dict: its keys, in the model's order; a float64 output becomes float32.
    model = make_model(tmp, "dict")
    ref = reference(tmp, model, [x], softmax=True, tag="dict")
    out = tmp / "dict_out"
    dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "--softmax", "-o", out,
           "--format", "parquet", "--quiet")
    t = read_output(out)
    assert t.column_names == ["logits", "energy"]
    assert np.max(np.abs(as_array(t.column("logits"), (5,)) - ref["logits"])) <= 1e-5
    # [B] outputs have no class dimension: softmax leaves them as they are.
    np.testing.assert_allclose(as_array(t.column("energy"), ()), ref["energy"], rtol=1e-6)
    # Wrong number of names.
    r = dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "--output-names", "a",
               "-o", tmp / "dict_out2", check=False)
    assert r.returncode == 1
    assert "returns 2 output(s) but 1 name(s)" in r.stderr


def test_small_batches_are_gathered_in_order(dlprep, torch_env):
    """Input batches of 10 rows are gathered into forward() calls of `batch_size` rows,
    never across partitions (here: files of one row group), and the output keeps the
    input order."""
    tmp = torch_env
    model = make_model(tmp, "batch_rows")
    x = rng_inputs(230, (8, 4), seed=6)
    ids = np.arange(230, dtype=np.int64)
    inp = write_table(tmp / "br_in", {"id": ids, "x": x}, {"x": (8, 4)}, files=2)
    for workers in (1, 2):
        pf = tmp / f"br{workers}.yaml"
        pf.write_text(f"""
source: {{format: parquet, paths: [br_in], batch_rows: 10}}
steps:
  - score: {{model: {model.name}, columns: [x], batch_size: 50}}
sink: {{format: parquet, path: br_out{workers}}}
""")
        stats = tmp / f"br_stats{workers}.json"
        dlprep("run", pf, "--workers", workers, "--stats", stats, "--quiet")
        stage = next(st for st in json.loads(stats.read_text())["run"]["stages"]
                     if st["name"] == "score")
        assert stage["batches_in"] == 24  # 2 files x 12 batches of up to 10 rows
        t = read_output(tmp / f"br_out{workers}")
        np.testing.assert_array_equal(t.column("id").to_numpy(), ids)
        got = as_array(t.column("scores"), (2,))
        # Per file of 115 rows: calls of 50, 50, then the last 15 rows at its end.
        expected_rows = np.array(([50] * 100 + [15] * 15) * 2, dtype=np.float32)
        np.testing.assert_array_equal(got[:, 0], expected_rows)
        np.testing.assert_allclose(got[:, 1], x.reshape(230, -1).sum(1), rtol=1e-5,
                                   atol=1e-5)


def test_model_loaded_once_per_worker(dlprep, torch_env):
    tmp = torch_env
    model = make_model(tmp, "linear")
    x = rng_inputs(2000, (8, 4), seed=7)
    inp = write_table(tmp / "open_in", {"x": x}, {"x": (8, 4)}, files=8, row_group_size=25)
    for workers in (1, 2):
        stats = tmp / f"open_stats{workers}.json"
        dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "--batch-size", 16,
               "-o", tmp / f"open_out{workers}", "--workers", workers, "--stats", stats,
               "--quiet")
        s = json.loads(stats.read_text())
        stage = next(st for st in s["run"]["stages"] if st["name"] == "score")
        assert stage["batches_in"] == 80          # 8 files x 10 row groups of 25 rows
        assert stage["opens"] == workers          # not one per batch or per file
        assert s["rows_scored"] == 2000
        assert s["threads_per_worker"] == max(1, (os.cpu_count() or 1) // workers)


def test_wrong_size_rows_are_per_row_errors(dlprep, torch_env):
    tmp = torch_env
    model = make_model(tmp, "linear")
    good = rng_inputs(6, (8, 4), seed=8).reshape(6, -1)
    rows = [good[0], good[1], good[2][:31], None, good[4], np.append(good[5], 1.0)]
    col = pa.array([None if r is None else r.tolist() for r in rows], pa.list_(pa.float32()))
    table = pa.table({"id": pa.array(range(6), pa.int64()), "x": col})
    table = table.replace_schema_metadata(None)
    schema = table.schema.set(1, table.schema.field("x").with_metadata(
        {"dlprep.shape": "[8,4]"}))
    (tmp / "bad_in").mkdir(exist_ok=True)
    pq.write_table(table.cast(schema), tmp / "bad_in" / "bad.parquet")
    errors = tmp / "bad_errors.jsonl"
    out = tmp / "bad_out"
    r = dlprep("score", "--model", model, "-i", tmp / "bad_in", "--model-input", "x", "-o",
               out, "--format", "parquet", "--errors", errors, "--max-error-rate", "0.5")
    assert "3 row error(s)" in r.stderr
    t = read_output(out)
    assert t.column("id").to_pylist() == [0, 1, 4]
    ref = reference(tmp, model, [good[[0, 1, 4]].reshape(3, 8, 4)], tag="bad")["scores"]
    assert np.max(np.abs(as_array(t.column("scores"), (5,)) - ref)) <= 1e-5
    lines = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [e["row_in_batch"] for e in lines] == [2, 3, 5]
    assert [e["row"]["id"] for e in lines] == ["2", "3", "5"] or \
        [e["row"]["id"] for e in lines] == [2, 3, 5]
    assert "column 'x' has 31 values; expected 32 (shape [8,4])" in lines[0]["error"]
    assert "column 'x' is null" in lines[1]["error"]
    assert "has 33 values" in lines[2]["error"]
    # --fail-on-error: the job fails naming the row, and nothing is written.
    out2 = tmp / "bad_out2"
    r = dlprep("score", "--model", model, "-i", tmp / "bad_in", "--model-input", "x", "-o", out2,
               "--fail-on-error", check=False)
    assert r.returncode == 1
    assert "row 2 of the batch failed: column 'x' has 31 values" in r.stderr
    assert not out2.exists()


def test_job_errors_before_any_output(dlprep, torch_env):
    tmp = torch_env
    x = rng_inputs(10, (8, 4), seed=9)
    inp = write_table(tmp / "err_in", {"x": x}, {"x": (8, 4)})

    def fails(model, *extra):
        out = tmp / "err_out"
        r = dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "-o", out,
                   *extra, check=False)
        assert r.returncode == 1, r.stderr
        assert not out.exists()
        assert not list(tmp.glob(".err_out*")), "no attempt folder either"
        return r.stderr

    assert "model file" in fails(tmp / "missing.pt") and "does not exist" in fails(
        tmp / "missing.pt")
    text = tmp / "notes.pt"
    text.write_text("not a model")
    assert "is not a TorchScript file (not a zip archive)" in fails(text)
    assert "torch.save() checkpoint, not TorchScript" in fails(make_model(tmp, "state_dict"))
    # Files from a newer PyTorch: a file-format version above 10, or an operator that
    # libtorch 1.13 does not have.
    msg = fails(make_model(tmp, "future_version"))
    assert "version 11, but the maximum supported version for reading is 10" in msg
    assert "written by a PyTorch newer than this libtorch" in msg
    msg = fails(make_model(tmp, "future_op"))
    assert "Unknown builtin op: aten::scaled_dot_product_attention" in msg
    assert "newer PyTorch" in msg
    msg = fails(make_model(tmp, "rank4"))
    assert "failed on a dummy batch of the declared input shape ('x' [2,8,4]" in msg
    assert "expected input[1, 2, 8, 4] to have 1 channels" in msg
    msg = fails(make_model(tmp, "wide"))
    assert "failed on a dummy batch" in msg
    assert "mat1 and mat2 shapes cannot be multiplied (2x32 and 100x2)" in msg
    assert "\n" not in msg.strip(), "one line"
    assert "expected a tensor, a tuple of tensors or a dict" in fails(
        make_model(tmp, "list_out"))
    model = make_model(tmp, "linear")
    assert "the input has no column 'nope'" in dlprep(
        "score", "--model", model, "-i", inp, "--model-input", "nope", "-o", tmp / "err_out",
        check=False).stderr
    assert "--batch-size must be positive" in fails(model, "--batch-size", "0")
    assert "--shape: 'a,b' is not a shape" in fails(model, "--shape", "a,b")


def test_cuda_device_is_skipped_cleanly(dlprep, torch_env):
    tmp = torch_env
    x = rng_inputs(4, (8, 4), seed=10)
    inp = write_table(tmp / "cuda_in", {"x": x}, {"x": (8, 4)})
    r = dlprep("score", "--model", make_model(tmp, "linear"), "-i", inp, "--model-input", "x",
               "--device", "cuda", "-o", tmp / "cuda_out", check=False)
    if r.returncode == 0:
        pytest.skip("a CUDA device is available here; see bench/ for GPU measurements")
    assert "--device cuda is unavailable" in r.stderr
    assert "CPU-only libtorch" in r.stderr or "no CUDA device" in r.stderr
    assert not (tmp / "cuda_out").exists()


def test_pipeline_file_step(dlprep, torch_env):
    tmp = torch_env
    model = make_model(tmp, "linear")
    x = rng_inputs(120, (8, 4), seed=11)
    inp = write_table(tmp / "pf_in", {"id": np.arange(120, dtype=np.int64), "x": x},
                      {"x": (8, 4)})
    ref = reference(tmp, model, [x], tag="pf")["scores"]
    pf = tmp / "score.yaml"
    pf.write_text(f"""
source: {{format: parquet, paths: [pf_in]}}
steps:
  - score: {{model: {model.name}, columns: [x], batch_size: 32, argmax: true, keep: [id]}}
  - filter: {{expr: "prediction >= 0"}}
sink: {{format: parquet, path: pf_out}}
""")
    dlprep("run", pf, "--quiet")
    t = read_output(tmp / "pf_out")
    assert t.column_names == ["id", "scores", "prediction"]
    np.testing.assert_array_equal(t.column("id").to_numpy(), np.arange(120))
    assert np.max(np.abs(as_array(t.column("scores"), (5,)) - ref)) <= 1e-5
    np.testing.assert_array_equal(t.column("prediction").to_numpy(), ref.argmax(1))
    # --dry-run checks the model against the input and prints the step with defaults.
    r = dlprep("run", pf, "--dry-run")
    assert "softmax: false" in r.stdout and "device: cpu" in r.stdout
    # `dlprep score --dry-run` prints the pipeline file it runs; that file runs.
    r = dlprep("score", "--model", model, "-i", inp, "--model-input", "x", "-o", tmp / "pf_out2",
               "--format", "parquet", "--dry-run")
    (tmp / "printed.yaml").write_text(r.stdout)
    dlprep("run", tmp / "printed.yaml", "--quiet")
    t2 = read_output(tmp / "pf_out2")
    assert np.max(np.abs(as_array(t2.column("scores"), (5,)) - ref)) <= 1e-5
    # A bad model in a step names the file, line and option.
    pf.write_text("source: {format: parquet, paths: [pf_in]}\n"
                  "steps:\n  - score: {model: nope.pt, columns: [x]}\n"
                  "sink: {format: parquet, path: pf_out3}\n")
    r = dlprep("run", pf, check=False)
    assert r.returncode == 1
    assert "score.yaml" in r.stderr and "nope.pt' does not exist" in r.stderr


def test_without_a_backend_score_says_why(dlprep, tmp_path):
    """Runs in every build: without the backend `dlprep score` and the `score` step say
    this build has none; with it, a backend file that cannot be loaded is named."""
    x = rng_inputs(4, (8, 4), seed=12)
    inp = write_table(tmp_path / "in", {"x": x}, {"x": (8, 4)})
    (tmp_path / "m.pt").write_text("placeholder")
    pf = tmp_path / "p.yaml"
    pf.write_text("source: {format: parquet, paths: [in]}\n"
                  "steps:\n  - score: {model: m.pt, columns: [x]}\n"
                  "sink: {format: parquet, path: out}\n")
    env = dict(os.environ)
    has_backend = "This build has no TorchScript backend" not in dlprep(
        "score", "--help").stdout
    if has_backend:
        bogus = tmp_path / "libdlprep_torch.so"
        bogus.write_text("not a shared library")
        env["DLPREP_TORCH_BACKEND"] = str(bogus)
        expected = f"the TorchScript backend '{bogus}' could not be loaded"
    else:
        expected = "this dlprep was built without the TorchScript backend"
    r = dlprep("score", "--model", tmp_path / "m.pt", "-i", inp, "--model-input", "x", "-o",
               tmp_path / "out", check=False, env=env)
    assert r.returncode == 1
    assert expected in r.stderr
    r = dlprep("run", pf, check=False, env=env)
    assert r.returncode == 1
    assert "step 'score' is unavailable" in r.stderr and expected in r.stderr
    assert not (tmp_path / "out").exists()


def test_speech_example(dlprep, torch_env, tmp_path):
    """examples/speech end to end (in a copy, so the checkout stays clean): the model
    trained in Python scores the held-out voice with `dlprep score` and with the one-pass
    WAV -> audio -> score pipeline, with the same predictions and a real accuracy."""
    import shutil
    import sys
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    if "audio" not in dlprep("run", "--help").stdout:
        pytest.skip("this build has no audio step")
    root = HERE.parents[1]
    ex = tmp_path / "speech"
    shutil.copytree(root / "examples" / "speech", ex,
                    ignore=shutil.ignore_patterns("data", "out"))
    env = dict(os.environ, ROOT=str(root), BUILD=str(Path(dlprep.exe).parent),
               PY=sys.executable, TORCH_PY=TORCH_PY)
    r = subprocess.run(["bash", str(ex / "run.sh")], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    acc = [line for line in r.stdout.splitlines() if line.startswith("accuracy:")]
    assert len(acc) == 2
    right, total = map(int, acc[0].split()[1].split("/"))
    assert total == 32 and right / total >= 0.7, acc[0]
    two_step = read_output(ex / "out" / "scores").sort_by("path")
    one_pass = read_output(ex / "out" / "predictions").sort_by("path")
    assert two_step.column("path").equals(one_pass.column("path"))
    assert two_step.column("prediction").equals(one_pass.column("prediction"))
    assert one_pass.column_names == ["path", "label", "scores", "prediction"]
    probs = as_array(one_pass.column("scores"), (8,))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)  # softmax: true in score.yaml
