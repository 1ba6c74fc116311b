"""A small real model server for the score-http tests and benchmark (127.0.0.1 only).

Speaks the three protocols of `dlprep score-http` over HTTP/1.1 with keep-alive
(Python's ThreadingHTTPServer, one thread per connection):

* kserve-v2: POST /v2/models/<name>/infer  {"inputs": [...]} -> {"outputs": [...]}
* tfserving: POST /v1/models/<name>:predict {"instances": [...]} -> {"predictions": [...]}
* records:   POST /records                  [{...}, ...] -> [...]

The "model" is deterministic: for a row with numeric input `features` (any nesting)
score = K * sum(features), pair = [sum(features), max(features)], row_id = the row's
`id` input, echo = the row's `text` input (records and tfserving), len = its length.

Every request is counted (ids received, ids answered with 200 and good data, order of
completion), and faults can be injected per request (see ModelServer.fault) to check
that the client scores every row exactly once, in order, or reports it.

Run standalone for the benchmark: python model_server.py --port 0 --delay 0.005
(prints the port on the first line of stdout).
"""

import argparse
import collections
import json
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

K = 0.5


def _flatten(x, out):
    if isinstance(x, list):
        for v in x:
            _flatten(v, out)
    else:
        out.append(x)
    return out


def _row_outputs(row):
    """The model on one row: a dict of input name -> value."""
    feats = _flatten(row.get("features", []), [])
    s = float(sum(feats))
    out = {"score": K * s, "pair": [s, float(max(feats)) if feats else 0.0]}
    if "id" in row:
        out["row_id"] = row["id"]
    if "text" in row:
        out["echo"] = row["text"]
        out["len"] = len(row["text"]) if row["text"] is not None else -1
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code, body, headers=(), content_type="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self):
        # Abort the connection with a TCP RST and no response.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def do_POST(self):  # noqa: N802
        srv = self.server.model
        with srv.lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            self._post()
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _post(self):
        srv = self.server.model
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        path = self.path
        try:
            body = json.loads(raw)
        except ValueError as e:
            self._send(400, json.dumps({"error": f"bad JSON: {e}"}))
            return
        try:
            protocol, rows, single = self._rows(path, body)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            self._send(400, json.dumps({"error": f"bad request: {e!r}"}))
            return
        ids = tuple(r.get("id") for r in rows)
        with srv.lock:
            srv.requests += 1
            srv.bodies_bytes += len(raw)
            for i in ids:
                srv.received[i] += 1
            srv.attempts[ids] += 1
            attempt = srv.attempts[ids]
            srv.headers_seen.append(dict(self.headers))
        if srv.required_auth is not None and self.headers.get("Authorization") != srv.required_auth:
            self._send(401, json.dumps({"error": "unauthorized",
                                        "got": self.headers.get("Authorization")}))
            return
        if srv.delay:
            time.sleep(srv.delay)
        f = srv.fault or {}
        mode = f.get("mode")
        hit = attempt <= f.get("times", 1 << 30)
        if mode == "first_slow" and 0 in ids:
            time.sleep(f["seconds"])
        if mode == "fail_ids" and any(i in f["ids"] for i in ids):
            self._send(f["code"], json.dumps({"error": "permanent failure",
                                              "auth": self.headers.get("Authorization")}))
            return
        if hit and mode == "status":
            self._send(f["code"], json.dumps({"error": f"injected {f['code']}",
                                              "auth": self.headers.get("Authorization")}))
            return
        if hit and mode == "retry_after":
            self._send(f["code"], json.dumps({"error": "come back later"}),
                       [("Retry-After", str(f["after"]))])
            return
        if hit and mode == "reset":
            self._reset()
            return
        if hit and mode == "slow":
            time.sleep(f["seconds"])
        if hit and mode == "redirect":
            self._send(f["code"], json.dumps({"error": "moved"}),
                       [("Location", f["location"])])
            return
        if hit and mode == "html":
            self._send(200, "<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>",
                       content_type="text/html")
            return
        if hit and mode == "malformed":
            self._send(200, '{"outputs": [{"name": "score", "data": [1, 2')
            return
        outs = [_row_outputs(r) for r in rows]
        if hit and mode == "wrong_rows":
            outs = outs[:-1] if len(outs) > 1 else outs + outs
        response = self._response(protocol, outs, single)
        if hit and mode == "padded" and protocol == "kserve-v2" and \
                any(i in f.get("ids", ids) for i in ids):
            response["padding"] = "x" * f["bytes"]
        self._send(200, json.dumps(response))
        with srv.lock:
            for i in ids:
                srv.answered[i] += 1
            srv.completed.append(ids)

    def _rows(self, path, body):
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            inputs = {t["name"]: t for t in body["inputs"]}
            n = None
            cols = {}
            for name, t in inputs.items():
                shape = t["shape"]
                if n is None:
                    n = shape[0]
                if shape[0] != n:
                    raise ValueError("inputs disagree on the batch size")
                data = t["data"]
                per = 1
                for d in shape[1:]:
                    per *= d
                if len(data) != n * per:
                    raise ValueError(f"{name}: {len(data)} values for shape {shape}")
                if len(shape) == 1:
                    cols[name] = list(data)
                else:
                    cols[name] = [data[i * per:(i + 1) * per] for i in range(n)]
            rows = [{k: v[i] for k, v in cols.items()} for i in range(n)]
            return "kserve-v2", rows, False
        if path.endswith(":predict"):
            inst = body["instances"]
            if inst and not isinstance(inst[0], dict):
                return "tfserving", [{"features": x} for x in inst], True
            return "tfserving", inst, False
        if path == "/records":
            if not isinstance(body, list):
                raise TypeError("records: expected a JSON array")
            return "records", body, False
        raise KeyError(f"no such endpoint {path}")

    def _response(self, protocol, outs, single):
        n = len(outs)
        if protocol == "kserve-v2":
            res = [{"name": "score", "shape": [n], "datatype": "FP64",
                    "data": [o["score"] for o in outs]},
                   {"name": "pair", "shape": [n, 2], "datatype": "FP64",
                    "data": [v for o in outs for v in o["pair"]]}]
            if outs and "row_id" in outs[0]:
                res.append({"name": "row_id", "shape": [n], "datatype": "INT64",
                            "data": [o["row_id"] for o in outs]})
            return {"model_name": "m", "outputs": res}
        if protocol == "tfserving":
            return {"predictions": [o["score"] for o in outs] if single else outs}
        return outs


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many client connections open at once
    daemon_threads = True

    ssl_context = None  # set for https: each connection is wrapped in its own thread

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                self.model.tls_failures += 1  # a client that refused us, or we it
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        # A client that timed out and closed its connection is expected here.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class ModelServer:
    """The server on 127.0.0.1 at an ephemeral port, served from a background thread.

    Attributes the tests read (under `lock`): requests, received / answered (Counter
    of row ids), completed (ids of answered requests in completion order), attempts
    (Counter by the tuple of ids of a request), headers_seen, max_in_flight (most
    requests being handled at once).

    `fault` injects one failure mode, applied to the first `times` attempts of each
    distinct request (by its row ids) unless noted:
      {"mode": "status", "code": 500}            that status, body echoing Authorization
      {"mode": "retry_after", "code": 429, "after": 1}   with a Retry-After header
      {"mode": "slow", "seconds": 2}             answers late (a client timeout)
      {"mode": "reset"}                          TCP RST, no response
      {"mode": "malformed"}                      200 with unparseable JSON
      {"mode": "html"}                           200 with an HTML page (a proxy's login)
      {"mode": "wrong_rows"}                     200 with one row too few
      {"mode": "first_slow", "seconds": 1}       every request holding id 0 is slow
      {"mode": "fail_ids", "ids": {...}, "code": 400}   always, for requests with them
      {"mode": "redirect", "code": 307, "location": URL}  a redirect
      {"mode": "padded", "bytes": N, "ids": {...}}  kserve-v2 answer padded by N
                                                 bytes (only with those ids, if given)

    ssl_context: an ssl.SSLContext (server side) makes it an https server; TLS
    handshakes that fail are counted in tls_failures.
    """

    def __init__(self, delay=0.0, ssl_context=None):
        self.delay = delay
        self.tls_failures = 0
        self.fault = None
        self.required_auth = None
        self.lock = threading.Lock()
        self.reset_counts()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.model = self
        self.httpd.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def reset_counts(self):
        with self.lock:
            self.requests = 0
            self.bodies_bytes = 0
            self.received = collections.Counter()
            self.answered = collections.Counter()
            self.attempts = collections.Counter()
            self.completed = []
            self.headers_seen = []
            self.in_flight = 0
            self.max_in_flight = 0

    def url(self, protocol):
        base = f"{self.scheme}://127.0.0.1:{self.port}"
        return {"kserve-v2": base + "/v2/models/m/infer",
                "tfserving": base + "/v1/models/m:predict",
                "records": base + "/records"}[protocol]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0,
                    help="seconds each request takes (models inference latency)")
    args = ap.parse_args()
    server = ModelServer(delay=args.delay)
    if args.port:
        server.httpd.server_close()
        server.httpd = _Server(("127.0.0.1", args.port), _Handler)
        server.httpd.daemon_threads = True
        server.httpd.model = server
        server.port = args.port
    print(server.port, flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
