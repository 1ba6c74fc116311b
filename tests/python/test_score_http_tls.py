"""dlprep score-http over https: the server's certificate checked against --cacert (a
private CA made here with the openssl command), refused without it (not retried, with a
hint), skipped with --insecure, and client certificates (--cert/--key) for a server that
requires them. The server is model_server.py wrapped in TLS on 127.0.0.1."""

import json
import shutil
import ssl
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from model_server import K, ModelServer
from test_score_http import read_errors, write_input

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="the openssl command is not installed")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ec_key_and_csr(name, cn, cwd):
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
             cwd=cwd)


def _sign(name, ca, ext, cwd):
    (cwd / f"{name}.ext").write_text(ext + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem signs server.pem (127.0.0.1, localhost) and client.pem; other-ca.pem is
    an unrelated CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=dlprep test {ca}",
                 cwd=d)
    _ec_key_and_csr("server", "localhost", d)
    _sign("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost", d)
    _ec_key_and_csr("client", "dlprep client", d)
    _sign("client", "ca", "extendedKeyUsage=clientAuth", d)
    return d


def _server(pki, require_client_cert=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.pem")
    return ModelServer(ssl_context=ctx).start()


@pytest.fixture(scope="module")
def https(pki):
    s = _server(pki)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mtls(pki):
    s = _server(pki, require_client_cert=True)
    yield s
    s.stop()


@pytest.fixture()
def srv(https):
    https.reset_counts()
    https.tls_failures = 0
    return https


def score(dlprep, server, tmp_path, *extra, check=True):
    return dlprep("score-http", "--url", server.url("kserve-v2"), "--input", tmp_path / "in",
                  "--model-input", "id,features", "--outputs", "score:float64,row_id:int64",
                  "--output", tmp_path / "out", "--format", "parquet",
                  "--errors", tmp_path / "errors.jsonl",
                  "--stats", tmp_path / "stats.json", "--batch-size", "50",
                  "--backoff", "0.01", *extra, check=check)


def assert_scored(tmp_path, f):
    t = pq.read_table(tmp_path / "out")
    assert t.column("row_id").to_pylist() == list(range(len(f)))
    np.testing.assert_allclose(t.column("score").to_numpy(), K * f.astype(np.float64).sum(1),
                               rtol=1e-6, atol=1e-6)
    assert read_errors(tmp_path) == []


def test_https_with_cacert_scores_every_row(dlprep, srv, pki, tmp_path):
    f = write_input(tmp_path / "in", n=200)
    score(dlprep, srv, tmp_path, "--cacert", pki / "ca.pem")
    assert_scored(tmp_path, f)
    assert srv.requests == 4 and srv.tls_failures == 0


def test_https_unknown_ca_fails_every_row_without_retrying(dlprep, srv, pki, tmp_path):
    write_input(tmp_path / "in", n=200)
    for extra in ([], ["--cacert", pki / "other-ca.pem"]):
        p = score(dlprep, srv, tmp_path, "--retries", "3", "--overwrite", *extra,
                  check=False)
        assert p.returncode == 1 and "200 of 200 input rows failed" in p.stderr
        errors = read_errors(tmp_path)
        assert len(errors) == 200
        assert all("certificate" in e["error"] and "--cacert" in e["error"] and
                   "(not retried; 1 attempt)" in e["error"] for e in errors), errors[0]
        s = json.loads((tmp_path / "stats.json").read_text())["http"]
        assert s["requests"] == 4 and s["retries"] == 0 and s["transport_errors"] == 4
    assert srv.requests == 0  # nothing was sent to a server we could not trust


def test_insecure_skips_the_check_and_warns(dlprep, srv, tmp_path):
    f = write_input(tmp_path / "in", n=120)
    p = score(dlprep, srv, tmp_path, "--insecure")
    assert "warning: --insecure" in p.stderr
    assert_scored(tmp_path, f)


def test_client_certificate(dlprep, mtls, pki, tmp_path):
    f = write_input(tmp_path / "in", n=150)
    score(dlprep, mtls, tmp_path, "--cacert", pki / "ca.pem", "--cert", pki / "client.pem",
          "--key", pki / "client.key")
    assert_scored(tmp_path, f)
    # Without it the server ends the handshake: every row is reported, none scored.
    p = score(dlprep, mtls, tmp_path, "--cacert", pki / "ca.pem", "--retries", "1",
              "--overwrite", check=False)
    assert p.returncode == 1 and "150 of 150 input rows failed" in p.stderr
    # The earlier output stays.
    assert pq.read_table(tmp_path / "out").column("row_id").to_pylist() == list(range(150))
    assert len(read_errors(tmp_path)) == 150
    assert mtls.tls_failures > 0


def test_pipeline_file_tls_keys(dlprep, srv, pki, tmp_path):
    f = write_input(tmp_path / "in", n=100)
    dry = score(dlprep, srv, tmp_path, "--cacert", pki / "ca.pem", "--dry-run")
    step = json.loads(dry.stdout.split("\n", 1)[1])["steps"][0]["score_http"]
    assert step["ca_cert"] == str(pki / "ca.pem")
    assert step["max_response_size"] == 256 << 20
    (tmp_path / "p.yaml").write_text(dry.stdout)
    dlprep("run", tmp_path / "p.yaml")
    assert_scored(tmp_path, f)


@pytest.mark.parametrize("args,needle", [
    (["--cacert", "{pki}/nope.pem"], "option --cacert: cannot read '{pki}/nope.pem'"),
    (["--cert", "{pki}/client.pem", "--key", "{pki}/nope.key"],
     "option --key: cannot read"),
    (["--key", "{pki}/client.key"], "option --key: give the client certificate with --cert"),
])
def test_tls_option_errors(dlprep, srv, pki, tmp_path, args, needle):
    write_input(tmp_path / "in", n=10)
    p = score(dlprep, srv, tmp_path, *[a.format(pki=pki) for a in args], check=False)
    assert p.returncode == 1 and needle.format(pki=pki) in p.stderr, p.stderr
    assert srv.requests == 0 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--cacert", "ca.pem"], ["--insecure"]])
def test_tls_options_refused_for_http_urls(dlprep, pki, tmp_path, option):
    write_input(tmp_path / "in", n=10)
    if option[0] == "--cacert":
        option = ["--cacert", pki / "ca.pem"]
    p = dlprep("score-http", "--url", "http://127.0.0.1:9/v2/models/m/infer",
               "--input", tmp_path / "in", "--model-input", "features",
               "--output", tmp_path / "out", *option, check=False)
    assert p.returncode == 1
    assert f"option {option[0]}: applies to https:// URLs only" in p.stderr
