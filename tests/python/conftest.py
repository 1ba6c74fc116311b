import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def dlprep_binary():
    build = Path(os.environ.get("DLPREP_BUILD", ROOT / "build"))
    exe = build / "dlprep"
    if not exe.exists():
        raise RuntimeError(f"{exe} not built; run `make build`")
    return str(exe)


class Dlprep:
    """Runs the dlprep CLI and returns the CompletedProcess."""

    def __init__(self):
        self.exe = dlprep_binary()

    def __call__(self, *args, check=True, timeout=300, **kw):
        proc = subprocess.run([self.exe, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"dlprep {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def dlprep():
    return Dlprep()


def read_manifest(path):
    with open(Path(path) / "_manifest.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def server():
    """tests/python/model_server.py's server on 127.0.0.1 for a test module, stopped at
    its end (also when a test fails)."""
    from model_server import ModelServer
    s = ModelServer().start()
    yield s
    s.stop()


@pytest.fixture()
def srv(server):
    """The module's server, reset: no fault, no auth, no delay, counts at zero."""
    server.fault = None
    server.required_auth = None
    server.delay = 0.0
    server.reset_counts()
    return server
