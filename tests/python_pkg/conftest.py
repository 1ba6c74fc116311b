"""Fixtures of the Python package's tests. They run against the installed wheel (make
pytest-pkg installs it into .venv-pkg and runs pytest from outside the source tree), and
compare with the `dlprep` command that the same wheel installs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("DLPREP_SOURCE", Path(__file__).resolve().parents[2]))
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def installed_package():
    import dlprep
    where = Path(dlprep.__file__).resolve()
    assert (SOURCE / "python").resolve() not in where.parents and "site-packages" in str(where), (
        f"dlprep was imported from the source tree ({where}); the tests run against the "
        "installed wheel (make pytest-pkg)")
    return where.parent


class Cli:
    """Runs the installed `dlprep` command (the wheel's console script)."""

    exe = str(BIN / "dlprep")

    def __call__(self, *args, check=True, timeout=300):
        p = subprocess.run([self.exe, *map(str, args)], capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"dlprep {' '.join(map(str, args))} exited {p.returncode}:\n"
                                 f"{p.stderr}")
        return p


@pytest.fixture(scope="session")
def cli():
    return Cli()


def data_files(folder):
    """The data files of a dlprep output folder, in the manifest's order."""
    import json
    with open(Path(folder) / "_manifest.json") as f:
        m = json.load(f)
    return [Path(folder) / e["name"] for e in m["files"]]


def file_bytes(folder):
    """Every data file's bytes, in order (names hold random ids; contents must match)."""
    return [p.read_bytes() for p in data_files(folder)]


@pytest.fixture()
def model_server():
    """tests/python/model_server.py's server (the three scoring protocols) on 127.0.0.1,
    stopped at the end of the test, also when it fails. `.K` is its model's factor."""
    sys.path.insert(0, str(SOURCE / "tests" / "python"))
    try:
        import model_server as module
    finally:
        sys.path.pop(0)
    server = module.ModelServer().start()
    server.K = module.K
    try:
        yield server
    finally:
        server.stop()
