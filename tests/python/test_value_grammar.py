"""One grammar for option values, through the CLI: durations, sizes, enumerations in any
letter case (flags and pipeline files), options that do not apply to the input, the
renamed model-input option of score / score-http, one default output format,
TensorFlow's TFRecord file names, and Parquet encodings per column type."""
import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import read_manifest


def write_table(path, n=6):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "id": pa.array(range(n), pa.int64()),
        "features": pa.array([[float(i), 1.0] for i in range(n)], pa.list_(pa.float32())),
        "kind": ["a" if i % 2 else "b" for i in range(n)],
    }), path)
    return path


def http_dry_run(dlprep, tmp_path, *extra, check=True):
    """`score-http --dry-run` (nothing is sent): the pipeline file it prints."""
    src = write_table(tmp_path / "in.parquet")
    return dlprep("score-http", "--url", "http://127.0.0.1:9/v2/models/m/infer", "-i", src,
                  "-o", tmp_path / "out", "--dry-run", *extra, check=check)


def step_of(proc):
    return json.loads(proc.stdout.split("\n", 1)[1])["steps"][0]["score_http"]


# --- durations -----------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [
    ("30s", 30), ("30", 30), ("0.5", 0.5), ("500ms", 0.5), ("90m", 5400), ("90min", 5400),
    ("1.5h", 5400), ("2H", 7200), ("1d", 86400), ("2w", 1209600), ("2 s", 2),
])
def test_every_duration_spelling_in_flags(dlprep, tmp_path, text, seconds):
    p = http_dry_run(dlprep, tmp_path, "--model-input", "features", "--timeout", text,
                     "--connect-timeout", text, "--backoff", text, "--max-backoff", text,
                     "--max-wait", text)
    step = step_of(p)
    for key in ("timeout", "connect_timeout", "backoff", "max_backoff", "max_wait"):
        assert step[key] == pytest.approx(seconds), key


@pytest.mark.parametrize("option", ["--timeout", "--backoff", "--max-wait"])
def test_a_wrong_duration_names_the_option_and_the_grammar(dlprep, tmp_path, option):
    p = http_dry_run(dlprep, tmp_path, "--model-input", "features", option, "30x",
                     check=False)
    assert p.returncode != 0
    assert f"{option}: '30x' is not a duration" in p.stderr
    assert "500ms, 30s, 1.5h, 14d, 2w" in p.stderr


def test_windows_takes_every_duration_unit_in_whole_seconds(dlprep, tmp_path):
    ev = pa.table({"k": pa.array([1, 1, 2], pa.int64()),
                   "ts": pa.array([0, 86400 * 20, 86400 * 3], pa.timestamp("s", tz="UTC"))})
    pq.write_table(ev, tmp_path / "ev.parquet")
    base = ["windows", "--events", tmp_path / "ev.parquet", "--key", "k", "--time", "ts",
            "-o", tmp_path / "out", "--dry-run"]
    p = dlprep(*base, "--window", "2w", "--stride", "1.5d", "--step", "12h", "--horizon",
               "720h")
    step = json.loads(p.stdout.split("\n", 1)[1])["steps"][-1]["windows"]
    assert (step["window"], step["stride"], step["step"], step["horizon"]) == (
        "2w", "1.5d", "12h", "720h")
    # The pipeline file it prints reads the same durations.
    (tmp_path / "w.yaml").write_text(p.stdout)
    again = dlprep("run", tmp_path / "w.yaml", "--dry-run").stdout
    assert "window: 2w" in again and "stride: 1.5d" in again
    p = dlprep(*base, "--window", "14d", "--stride", "7d", "--step", "500ms", check=False)
    assert p.returncode == 1
    assert "--step: duration '500ms' is not a whole number of seconds" in p.stderr


def test_durations_in_a_pipeline_file(dlprep, tmp_path):
    write_table(tmp_path / "in.parquet")
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [in.parquet]}\n"
        "steps:\n"
        "  - score_http: {url: 'http://127.0.0.1:9/x', columns: [features], timeout: 1.5m,"
        " backoff: 250ms, max_wait: 2, connect_timeout: 1h}\n"
        "sink: {path: out}\n")
    p = dlprep("run", tmp_path / "p.yaml", "--dry-run")
    assert "timeout: 1.5m" in p.stdout and "backoff: 250ms" in p.stdout
    (tmp_path / "p.yaml").write_text(
        "source: {format: parquet, paths: [in.parquet]}\n"
        "steps:\n"
        "  - score_http: {url: 'http://127.0.0.1:9/x', columns: [features], timeout: 3y}\n"
        "sink: {path: out}\n")
    p = dlprep("run", tmp_path / "p.yaml", "--dry-run", check=False)
    assert p.returncode == 1
    assert "p.yaml:3:68: step 1 (score_http): option 'timeout': '3y' is not a duration" \
        in p.stderr


# --- sizes ---------------------------------------------------------------------------

def test_sizes_are_powers_of_1024_whatever_the_spelling(dlprep, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 70_000)
    # 69 KB is 70,656 bytes (KB = KiB = 1024): the file fits; 68 KiB = 69,632 does not.
    for ok in ["69KB", "69KiB", "69kb", "69 k", "0.1MB", "0.1MiB", "70000", "70000B"]:
        p = dlprep("files", tmp_path / "d", "--max-file-size", ok, "-o", tmp_path / "o",
                   "--overwrite", "-q", check=False)
        assert p.returncode == 0, (ok, p.stderr)
    for refused in ["68KB", "68KiB", "69999B", "0.06MB"]:
        p = dlprep("files", tmp_path / "d", "--max-file-size", refused, "-o",
                   tmp_path / "o2", check=False)
        assert p.returncode == 1 and "--max-file-size" in p.stderr, refused
    p = dlprep("files", tmp_path / "d", "--max-file-size", "12XB", "-o", tmp_path / "o3",
               check=False)
    assert p.returncode == 1
    assert "option --max-file-size: '12XB' is not a byte size" in p.stderr
    assert "KiB, MiB, GiB and TiB mean the same" in p.stderr


# --- enumerations --------------------------------------------------------------------

def test_enumerations_in_flags_accept_any_letter_case(dlprep, tmp_path):
    src = write_table(tmp_path / "in.parquet")
    dlprep("convert", "-i", src, "--input-format", "Parquet", "-o", tmp_path / "t",
           "--format", "TFRecord", "--compression", "GZIP", "--record-type", "Example", "-q")
    m = read_manifest(tmp_path / "t")
    assert m["format"] == "tfrecord" and m["compression"] == "gzip"
    dlprep("convert", "-i", tmp_path / "t", "--input-compression", "Gzip", "-o",
           tmp_path / "p", "--format", "PARQUET", "-q")
    assert pq.read_table(tmp_path / "p").num_rows == 6
    p = http_dry_run(dlprep, tmp_path, "--model-input", "features", "--protocol", "TFServing")
    assert step_of(p)["protocol"] == "tfserving"


def test_a_wrong_enumeration_value_names_the_option_and_lists_the_values(dlprep, tmp_path):
    src = write_table(tmp_path / "in.parquet")
    p = dlprep("convert", "-i", src, "-o", tmp_path / "o", "--compression", "brotli",
               check=False)
    assert p.returncode != 0
    assert "--compression: 'brotli' is not accepted; expected none, gzip or zlib" in p.stderr


def test_enumerations_in_a_pipeline_file_accept_any_letter_case(dlprep, tmp_path):
    write_table(tmp_path / "in.parquet")
    (tmp_path / "p.yaml").write_text(
        "source: {format: Parquet, paths: [in.parquet]}\n"
        "sink: {format: TFRecord, compression: GZIP, path: out}\n")
    dlprep("run", tmp_path / "p.yaml", "-q")
    m = read_manifest(tmp_path / "out")
    assert m["format"] == "tfrecord" and m["compression"] == "gzip" and m["rows"] == 6


# --- options that do not apply -------------------------------------------------------

@pytest.mark.parametrize("extra,needle", [
    (["--input-compression", "gzip"],
     "option --input-compression applies to tfrecord input only, and the input is parquet"),
    (["--input-record-type", "sequence_example"],
     "option --input-record-type applies to tfrecord input only"),
    (["--skip-corrupt"], "option --skip-corrupt applies to tfrecord input only"),
    (["--format", "parquet", "--compression", "gzip"],
     "option --compression applies to --format tfrecord only, and the format is parquet"),
    (["--format", "csv", "--record-type", "example"],
     "option --record-type applies to --format tfrecord only, and the format is csv"),
])
def test_options_that_do_not_apply_are_errors(dlprep, tmp_path, extra, needle):
    src = write_table(tmp_path / "in.parquet")
    p = dlprep("convert", "-i", src, "-o", tmp_path / "o", *extra, check=False)
    assert p.returncode == 1 and needle in p.stderr, p.stderr
    assert not (tmp_path / "o").exists()


# --- renamed options -----------------------------------------------------------------

def test_model_input_takes_lists_and_the_old_spelling_still_works_with_a_warning(
        dlprep, tmp_path):
    p = http_dry_run(dlprep, tmp_path, "--model-input", "id,features")
    assert step_of(p)["columns"] == ["id", "features"] and "deprecated" not in p.stderr
    p = http_dry_run(dlprep, tmp_path, "--column", "id", "--column", "features")
    assert step_of(p)["columns"] == ["id", "features"]
    assert "warning: --column is deprecated; use --model-input" in p.stderr
    p = http_dry_run(dlprep, tmp_path, check=False)
    assert p.returncode != 0 and "--model-input is required" in p.stderr
    # --columns (read only these) is another option, and no longer one letter away.
    p = http_dry_run(dlprep, tmp_path, "--model-input", "features", "--columns", "features")
    assert json.loads(p.stdout.split("\n", 1)[1])["source"]["columns"] == ["features"]
    help_text = dlprep("score-http", "--help").stdout
    assert "--model-input" in help_text and "--column " not in help_text


def test_score_model_input_is_required_and_aliased(dlprep, tmp_path):
    src = write_table(tmp_path / "in.parquet")
    p = dlprep("score", "--model", tmp_path / "m.pt", "-i", src, "-o", tmp_path / "o",
               check=False)
    assert p.returncode != 0 and "--model-input is required" in p.stderr
    # The alias is accepted by the parser (the model is then looked for).
    p = dlprep("score", "--model", tmp_path / "m.pt", "-i", src, "-o", tmp_path / "o",
               "--column", "id,features", check=False)
    assert "warning: --column is deprecated; use --model-input" in p.stderr
    assert "--model-input is required" not in p.stderr


# --- default output format -----------------------------------------------------------

def test_every_command_writes_tfrecord_by_default(dlprep, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"abc")
    dlprep("files", tmp_path / "d", "-o", tmp_path / "f", "-q")
    assert read_manifest(tmp_path / "f")["format"] == "tfrecord"
    p = http_dry_run(dlprep, tmp_path, "--model-input", "features")
    assert json.loads(p.stdout.split("\n", 1)[1])["sink"]["format"] == "tfrecord"
    for command in ["convert", "windows", "audio", "score", "score-http", "files"]:
        help_text = dlprep(command, "--help").stdout
        assert "--format TEXT:tfrecord|parquet|csv=tfrecord" in help_text, command


# --- TensorFlow's TFRecord names -----------------------------------------------------

@pytest.mark.parametrize("name,compress", [
    ("train.tfrec", False), ("train.tfrec.gz", True),
    ("train.tfrecord-00000-of-00008", False), ("train.tfrecord-00003-of-00008.gz", True),
    ("train.tfrecords-00000-of-00001", False), ("data.tfrecord.zlib", False),
])
def test_tensorflow_tfrecord_names_need_no_input_format(dlprep, tmp_path, name, compress):
    src = write_table(tmp_path / "in.parquet")
    dlprep("convert", "-i", src, "-o", tmp_path / "t", "-q")
    part = next(p for p in (tmp_path / "t").iterdir() if p.name.startswith("part-"))
    data = part.read_bytes()
    (tmp_path / "named").mkdir()
    target = tmp_path / "named" / name
    target.write_bytes(gzip.compress(data) if compress else data)
    for given in [target, tmp_path / "named"]:
        dlprep("convert", "-i", given, "-o", tmp_path / "back", "--format", "parquet",
               "--overwrite", "-q")
        assert pq.read_table(tmp_path / "back").column("id").to_pylist() == list(range(6))
    shutil.rmtree(tmp_path / "named")


# --- Parquet encodings ---------------------------------------------------------------

def test_parquet_float_columns_have_no_dictionary_strings_keep_it(dlprep, tmp_path):
    n = 64
    t = pa.table({
        "f32": pa.array([float(i % 4) for i in range(n)], pa.float32()),
        "f64": pa.array([float(i % 4) for i in range(n)], pa.float64()),
        "vec": pa.array([[0.5, float(i % 3)] for i in range(n)], pa.list_(pa.float32())),
        "nested": pa.array([[[1.0], [float(i % 2)]] for i in range(n)],
                           pa.list_(pa.list_(pa.float32()))),
        "label": ["cat" if i % 2 else "dog" for i in range(n)],
        "id": pa.array([i % 5 for i in range(n)], pa.int64()),
    })
    pq.write_table(t, tmp_path / "in.parquet")
    dlprep("convert", "-i", tmp_path / "in.parquet", "-o", tmp_path / "o", "--format",
           "parquet", "-q")
    part = next((tmp_path / "o").glob("part-*.parquet"))
    rg = pq.ParquetFile(part).metadata.row_group(0)
    columns = {rg.column(i).path_in_schema: rg.column(i) for i in range(rg.num_columns)}
    for path, c in columns.items():
        top = path.split(".")[0]
        if top in ("label", "id"):
            assert c.has_dictionary_page, path
            assert "RLE_DICTIONARY" in c.encodings, path
        else:
            assert not c.has_dictionary_page, path
            assert "RLE_DICTIONARY" not in c.encodings and "PLAIN" in c.encodings, path
    assert {p.split(".")[0] for p in columns} == set(t.column_names)
    assert pq.read_table(tmp_path / "o").equals(t)
