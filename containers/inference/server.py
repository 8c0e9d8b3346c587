"""The ranker's HTTP server: the SageMaker hosting contract, pre-forked worker processes, stdlib only.

Contract (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html):
- GET /ping: 200 once the model is loaded;
- POST /invocations: score one batch of candidate rows (assembled by recsys.ranking.features.assemble, in the
  order of the model's feature schema);
- port 8080, or SAGEMAKER_BIND_TO_PORT; the model from /opt/ml/model, or RECSYS_MODEL_DIR.

Request bodies:
- application/json: {"features": [[...], ...], "feature_names": [...] (optional: columns are then matched by
  name), "schema_id": "..." (optional)}; "instances" is accepted for "features"; null means missing;
- application/x-npy: one 2-D numeric array in NumPy's .npy format (np.save), columns in schema order. The schema
  id may be sent as `schema_id=<id>` in the X-Amzn-SageMaker-Custom-Attributes header.
Responses (Accept):
- application/json (default): {"model_version", "ranker", "schema_id", "pctr": [...], "pcvr": [...], "score": [...]};
- application/x-npy: an (n, 3) float64 array of pctr, pcvr, score; the model version is in the
  X-Amzn-SageMaker-Custom-Attributes response header (`model_version=...`), which InvokeEndpoint passes back.
Errors are JSON {"error": "..."}: 415 unknown content type, 406 unknown Accept, 400 bad body or shape (the message
names the problem), 404/405 for other routes and methods. Bad input never gives a 500.

Workers: the parent binds the socket and forks SAGEMAKER_MODEL_SERVER_WORKERS (default: one per core) processes;
each loads the model itself (after the fork: no shared OpenMP state) and serves keep-alive connections with a
thread per connection, scoring one batch at a time with single-threaded predictors. A worker that dies is
replaced.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
DEFAULT_MAX_CANDIDATES = 2000
MAX_BODY_BYTES = 64 * 1024 * 1024
JSON = "application/json"
NPY = "application/x-npy"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _accepted(header: str | None) -> str | None:
    """The response type for an Accept header: the first supported type listed; JSON for none or a wildcard."""
    listed = [_media_type(part) for part in (header or "").split(",") if part.strip()]
    if not listed:
        return JSON
    for media_type in listed:
        if media_type in (JSON, NPY):
            return media_type
        if media_type in ("*/*", "application/*"):
            return JSON
    return None


def _custom_attributes(header: str | None) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in (header or "").split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


class Scorer:
    """The loaded ranker, and request decoding/validation against its schema."""

    def __init__(self, model_dir: str, ranker: str | None, max_candidates: int) -> None:
        from recsys.ranking.bundle import ModelBundle

        bundle = ModelBundle.load(model_dir, with_candidates=False, rankers=(ranker,) if ranker else None)
        self.ranker = bundle.ranker(ranker)
        self.ranker_name = ranker or bundle.default_ranker
        self.schema_id = bundle.schema.id
        self.names = bundle.schema.names
        self.position = {name: i for i, name in enumerate(self.names)}
        self.version = bundle.version
        self.max_candidates = max_candidates
        self.lock = threading.Lock()
        self.score(np.zeros((1, len(self.names)), np.float32))  # warm up (first predict allocates)

    def _check_rows(self, rows: np.ndarray) -> np.ndarray:
        if rows.ndim != 2:
            raise BadRequest(400, f"features: expected a 2-D array (candidates × {len(self.names)}), "
                                  f"got {rows.ndim}-D")
        if rows.shape[0] == 0:
            raise BadRequest(400, "features: no candidates")
        if rows.shape[0] > self.max_candidates:
            raise BadRequest(400, f"features: {rows.shape[0]} candidates; at most {self.max_candidates} per request")
        if rows.shape[1] != len(self.names):
            raise BadRequest(400, f"features: rows have {rows.shape[1]} values; the model's schema "
                                  f"{self.schema_id} has {len(self.names)} features")
        if np.isinf(rows).any():
            raise BadRequest(400, "features: infinite values; send null (JSON) or NaN for a missing value")
        return rows

    def _check_schema(self, schema_id: Any) -> None:
        if schema_id is not None and schema_id != self.schema_id:
            raise BadRequest(400, f"schema_id: {schema_id!r} does not match the model's {self.schema_id!r}")

    def decode_json(self, body: bytes) -> np.ndarray:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(400, f"body: not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise BadRequest(400, "body: expected a JSON object with a \"features\" array")
        self._check_schema(document.get("schema_id"))
        features = document.get("features", document.get("instances"))
        if not isinstance(features, list):
            raise BadRequest(400, "features: required, a list of rows (lists of numbers)")
        if not features:
            raise BadRequest(400, "features: no candidates")
        if not all(isinstance(row, list) for row in features):
            raise BadRequest(400, "features: every row must be a list of numbers")
        widths = {len(row) for row in features}
        if len(widths) > 1:
            raise BadRequest(400, f"features: rows of different lengths {sorted(widths)}")
        try:
            rows = np.array(features, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadRequest(400, "features: values must be numbers or null") from None
        names = document.get("feature_names")
        if names is not None:
            rows = self._reorder(names, rows)
        return self._check_rows(rows)

    def _reorder(self, names: Any, rows: np.ndarray) -> np.ndarray:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest(400, "feature_names: must be a list of strings")
        if len(names) != rows.shape[1]:
            raise BadRequest(400, f"feature_names: {len(names)} names for rows of {rows.shape[1]} values")
        unknown = [n for n in names if n not in self.position]
        if unknown:
            raise BadRequest(400, f"feature_names: unknown to the model: {', '.join(unknown[:10])}")
        missing = [n for n in self.names if n not in set(names)]
        if missing:
            raise BadRequest(400, f"feature_names: missing: {', '.join(missing[:10])}")
        return rows[:, [names.index(n) for n in self.names]]

    def decode_npy(self, body: bytes, attributes: dict[str, str]) -> np.ndarray:
        self._check_schema(attributes.get("schema_id"))
        try:
            rows = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise BadRequest(400, f"body: not a .npy array ({exc})") from None
        if rows.dtype.kind not in "biuf":
            raise BadRequest(400, f"features: expected a numeric array, got dtype {rows.dtype}")
        return self._check_rows(rows.astype(np.float32, copy=False))

    def score(self, rows: np.ndarray):
        with self.lock:
            return self.ranker.predict(rows, threads=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recsys-ranker"
    # TCP_NODELAY: headers and body leave at once instead of waiting out the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    scorer: Scorer  # set on the class by `serve_worker`

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Quiet per-request logging (the endpoint's metrics count requests); errors go to stderr."""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), JSON)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path != "/ping":
            self._error(404, f"path: no route {self.path}; use GET /ping or POST /invocations")
            return
        body = {"status": "ok", "model_version": self.scorer.version, "ranker": self.scorer.ranker_name,
                "schema_id": self.scorer.schema_id, "feature_names": list(self.scorer.names), "pid": os.getpid()}
        self._send(200, json.dumps(body).encode(), JSON)

    def do_POST(self) -> None:  # noqa: N802
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length is not None else -1
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(400 if size < 0 else 413, "body: a Content-Length up to "
                                                  f"{MAX_BODY_BYTES} bytes is required")
            return
        body = self.rfile.read(size)
        if self.path != "/invocations":
            self._error(404 if self.path != "/ping" else 405, f"path: no POST route {self.path}; use /invocations")
            return
        try:
            self._invoke(body)
        except BadRequest as exc:
            self._error(exc.status, exc.message)

    def _invoke(self, body: bytes) -> None:
        scorer = self.scorer
        content_type = _media_type(self.headers.get("Content-Type"))
        accept = _accepted(self.headers.get("Accept"))
        if accept is None:
            raise BadRequest(406, f"Accept: {self.headers.get('Accept')} is not supported; use {JSON} or {NPY}")
        attributes = _custom_attributes(self.headers.get(CUSTOM_ATTRIBUTES))
        if content_type == JSON:
            rows = scorer.decode_json(body)
        elif content_type == NPY:
            rows = scorer.decode_npy(body, attributes)
        else:
            raise BadRequest(415, f"Content-Type: {content_type or '(none)'} is not supported; use {JSON} or {NPY}")
        out = scorer.score(rows)
        version_header = {CUSTOM_ATTRIBUTES: f"model_version={scorer.version},ranker={scorer.ranker_name}"}
        if accept == NPY:
            buffer = io.BytesIO()
            np.save(buffer, np.column_stack([out.pctr, out.pcvr, out.score]).astype(np.float64), allow_pickle=False)
            self._send(200, buffer.getvalue(), NPY, version_header)
            return
        document = {"model_version": scorer.version, "ranker": scorer.ranker_name, "schema_id": scorer.schema_id,
                    "pctr": out.pctr.tolist(), "pcvr": out.pcvr.tolist(), "score": out.score.tolist()}
        self._send(200, json.dumps(document).encode(), JSON, version_header)


class _WorkerServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-response is routine; anything else is printed (to stderr) as usual."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, listener: socket.socket) -> None:
        super().__init__(listener.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener


def serve_worker(listener: socket.socket, model_dir: str, ranker: str | None, max_candidates: int) -> None:
    Handler.scorer = Scorer(model_dir, ranker, max_candidates)
    server = _WorkerServer(listener)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    server.serve_forever(poll_interval=0.5)


def _settings() -> dict[str, Any]:
    env = os.environ
    return {
        "model_dir": env.get("RECSYS_MODEL_DIR", DEFAULT_MODEL_DIR),
        "port": int(env.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT)),
        "host": env.get("RECSYS_BIND_HOST", "0.0.0.0"),
        "workers": int(env.get("SAGEMAKER_MODEL_SERVER_WORKERS") or os.cpu_count() or 1),
        "ranker": env.get("RECSYS_RANKER") or None,
        "max_candidates": int(env.get("RECSYS_MAX_CANDIDATES", DEFAULT_MAX_CANDIDATES)),
    }


def main() -> int:
    """The `serve` entrypoint: bind, fork the workers, keep them alive until SIGTERM/SIGINT."""
    settings = _settings()
    from recsys.ranking.bundle import BUNDLE_FILE

    if not (Path(settings["model_dir"]) / BUNDLE_FILE).is_file():
        print(f"serve: no model bundle in {settings['model_dir']} (set RECSYS_MODEL_DIR)", file=sys.stderr)
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings["host"], settings["port"]))
    listener.listen(1024)
    print(f"serve: {settings['workers']} workers on {settings['host']}:{listener.getsockname()[1]}, "
          f"model {settings['model_dir']}", file=sys.stderr, flush=True)
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers with SIGTERM
            code = 0
            try:
                serve_worker(listener, settings["model_dir"], settings["ranker"], settings["max_candidates"])
            except BaseException as exc:  # noqa: BLE001 - report and exit the child, whatever happened
                print(f"serve: worker {os.getpid()} failed: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        children.add(pid)

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(max(1, settings["workers"])):
        spawn()
    failures: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        if stopping:
            continue
        failures = [t for t in failures if time.monotonic() - t < 60] + [time.monotonic()]
        if len(failures) > 3 * settings["workers"]:
            print("serve: workers keep failing; giving up", file=sys.stderr, flush=True)
            stop()
            return 1
        spawn()
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_local_server(model_dir: str | Path, port: int | None = None, *, workers: int | None = None,
                       ranker: str | None = None, timeout_s: float = 60.0):
    """Run `serve` as a separate process on 127.0.0.1; returns (url, stop) once /ping answers 200. `stop.pid`
    is the server's process (and process group) id, for tests and benchmarks that stall or kill it."""
    port = port or _free_port()
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "RECSYS_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
           "RECSYS_BIND_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers or os.cpu_count() or 1),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if ranker:
        env["RECSYS_RANKER"] = ranker
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("serve"))], env=env,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    stop.pid = process.pid  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with code {process.returncode} before answering /ping")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
                if response.status == 200:
                    return url, stop
        except OSError:
            time.sleep(0.1)
    stop()
    raise TimeoutError(f"serve did not answer {url}/ping within {timeout_s:.0f}s")
