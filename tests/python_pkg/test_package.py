"""The installed wheel: the CLI on PATH, the import, the pinned pyarrow, relative RPATHs."""
import re
import subprocess
import sys


from conftest import BIN


def test_cli_is_on_path_and_runs(cli, tmp_path):
    p = cli("--help")
    assert "convert" in p.stdout and "windows" in p.stdout
    # The console script runs the native binary from the package, from any folder.
    p = subprocess.run([str(BIN / "dlprep"), "gen", "churn", "--customers", "5", "--days",
                        "10", "-o", str(tmp_path / "d"), "-q"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert list((tmp_path / "d").rglob("*.parquet"))


def test_import_from_outside_the_source_tree(tmp_path):
    p = subprocess.run([sys.executable, "-c",
                        "import dlprep, pyarrow as pa; print(dlprep.__file__); "
                        "print(dlprep.from_arrow(pa.table({'a': [1]})).to_arrow().num_rows)"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "site-packages" in p.stdout and p.stdout.split()[-1] == "1"


def test_a_different_pyarrow_is_refused_with_the_version_needed(tmp_path):
    # The installed pyarrow reporting another version stands in for another release.
    code = ("import pyarrow; pyarrow.__version__ = '20.0.0'\n"
            "try:\n import dlprep\nexcept ImportError as e:\n print('ImportError:', e)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert "ImportError:" in p.stdout
    assert "pyarrow 21.0.0" in p.stdout and "20.0.0" in p.stdout
    assert "pip install 'pyarrow==21.0.0'" in p.stdout


def _runpath(path):
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    m = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", out)
    return m.group(1).split(":") if m else []


def test_binaries_find_arrow_through_relative_rpaths(installed_package):
    pkg = installed_package
    ext = next(pkg.glob("_dlprep*.so"))
    lib = next((pkg / "lib").glob("libdlprep.so*"))
    exe = pkg / "bin" / "dlprep"
    for f in (ext, lib, exe):
        rp = _runpath(f)
        assert rp, f"{f} has no RUNPATH"
        assert all(p.startswith("$ORIGIN") for p in rp), f"{f}: {rp}"
    assert "$ORIGIN/../pyarrow" in _runpath(ext)
    # And they resolve: ldd finds pyarrow's libarrow inside site-packages.
    out = subprocess.run(["ldd", str(ext)], capture_output=True, text=True).stdout
    assert re.search(r"libarrow\.so\.\d+ => .*site-packages/(dlprep/\.\./)?pyarrow/", out), out
    assert "not found" not in out, out


def test_steps_of_this_build():
    import dlprep
    names = dlprep.steps()
    for n in ("select", "filter", "windows", "audio", "score", "score_http", "map_batches"):
        assert n in names


def test_score_without_torch_backend_says_how_to_get_it(tmp_path):
    # Point the plugin lookup at nothing: the package must still work, and `score`
    # explains itself when planned.
    code = ("import dlprep, pyarrow as pa\n"
            "t = pa.table({'x': pa.array([[1.0, 2.0]], pa.list_(pa.float32()))})\n"
            "ds = dlprep.from_arrow(t).select(['x'])\n"
            "print(ds.to_arrow().num_rows)\n"
            "try:\n"
            "  dlprep.from_arrow(t).score('m.pt', 'x').schema\n"
            "except dlprep.Error as e:\n"
            "  print(type(e).__name__, e)\n")
    env = {"DLPREP_TORCH_BACKEND": "/nonexistent/libdlprep_torch.so", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("InvalidInput") or lines[1].startswith("IOError"), lines[1]
    assert "step 'score' is unavailable" in lines[1]
    assert "apt-get install libtorch-dev" in lines[1]
