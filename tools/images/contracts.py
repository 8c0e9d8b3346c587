"""Each image's contract, checked in the built image (tools/images/build.py runs them).

- training: SageMaker's `docker run <image> train` on the /opt/ml layout (channels and hyperparameters in, the
  bundle out in /opt/ml/model), from synthetic data;
- inference: `serve` with that bundle in /opt/ml/model, answering GET /ping and POST /invocations on port 8080;
  the scores must equal the ones this machine computes from the same bundle;
- recommend (the Lambda image): its CMD handler through the image's runtime interface client (awslambdaric), fed
  one API Gateway event by a minimal Lambda Runtime API (the emulator is not packaged for PyPI or Debian), with the
  inference image scoring and a Valkey server as MemoryDB;
- monitoring: its entrypoint runs the A/B job on local folders and writes its report.

The containers run with `buildah run` (the image's own entrypoint, user and environment) in a network namespace
made for the check, so port 8080 and the Runtime API port are the images' own and no host service is reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "recsys-images"
RUNTIME = "/usr/sbin/runc"
SERVING_PORT = 8080
RUNTIME_API_PORT = 9001
TRAINED = "trained-model"


def run_contract(name: str, tag: str, work: Path) -> str:
    """`passed: ...` or `failed: ...`, from a subprocess in the check's own network namespace."""
    subprocess.run(["ip", "netns", "add", NAMESPACE], capture_output=True)
    subprocess.run(["ip", "-n", NAMESPACE, "link", "set", "lo", "up"], check=True)
    # nsenter joins the network namespace only (`ip netns exec` also remounts /sys, hiding the cgroups runc needs).
    completed = subprocess.run(["nsenter", f"--net=/var/run/netns/{NAMESPACE}", sys.executable, "-m",
                                "tools.images.contracts", name, tag, str(work)], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=1800)
    (work / f"{name}.contract.log").write_text(completed.stdout + completed.stderr)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(("passed", "failed"))]
    return lines[-1] if lines else f"failed: no result (exit {completed.returncode}, see {name}.contract.log)"


def _config(tag: str) -> dict[str, Any]:
    out = subprocess.run(["buildah", "inspect", "--type", "image", tag], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["OCIv1"]["config"]


@contextlib.contextmanager
def container(tag: str, args: list[str], *, volumes: dict[str, str] | None = None, env: dict[str, str] | None = None,
              log: Path | None = None) -> Iterator[subprocess.Popen]:
    """The image's ENTRYPOINT + `args` (or its CMD), running until the block ends."""
    config = _config(tag)
    command = (config.get("Entrypoint") or []) + (args or config.get("Cmd") or [])
    name = subprocess.run(["buildah", "from", "--pull=never", tag], check=True, capture_output=True,
                          text=True).stdout.strip()
    argv = ["buildah", "run", "--runtime", RUNTIME, "--network", "host"]
    for source, target in (volumes or {}).items():
        argv += ["-v", f"{source}:{target}"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([*argv, name, "--", *command], stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["buildah", "rm", name], capture_output=True)


def _until(probe, what: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the container exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if probe():
                return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not ready after {timeout_s:.0f} s")


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def training(tag: str, work: Path) -> str:
    from recsys.datasets.synthetic import write_training_channels

    root = Path(tempfile.mkdtemp(dir=work, prefix="opt-ml-"))
    cutoff = write_training_channels(root, n_users=150, n_items=80, n_events=6_000, seed=4)
    (root / "input/config").mkdir(parents=True, exist_ok=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({
        "cutoff": str(cutoff), "ctr_label": "label_interaction", "cvr_label": "label_click",
        "rankers": json.dumps({"ltr": {"num_boost_round": 30},
                               "rf": {"family": "random_forest", "features": ["m_popularity", "m_recent"],
                                      "forest": {"n_estimators": 10}}})}))
    for writable in ("model", "output"):
        (root / writable).mkdir(exist_ok=True)
        (root / writable).chmod(0o777)  # the image runs as its own non-root user
    started = time.monotonic()
    with container(tag, ["train"], volumes={str(root / "input"): "/opt/ml/input:ro", str(root / "model"):
                                            "/opt/ml/model", str(root / "output"): "/opt/ml/output"},
                   log=work / "training.run.log") as proc:
        code = proc.wait(1200)
    if code != 0:
        failure = root / "output/failure"
        raise AssertionError(f"train exited {code}: {failure.read_text()[:300] if failure.exists() else ''}")
    from recsys.ranking.bundle import ModelBundle

    bundle = ModelBundle.load(root / "model")
    shutil.rmtree(work / TRAINED, ignore_errors=True)
    shutil.copytree(root / "model", work / TRAINED)
    return (f"passed: train on /opt/ml ({time.monotonic() - started:.0f} s) wrote bundle {bundle.version} "
            f"with rankers {', '.join(sorted(bundle.rankers))}")


@contextlib.contextmanager
def serving(tag: str, work: Path, model_dir: Path) -> Iterator[str]:
    with container(tag, ["serve"], volumes={str(model_dir): "/opt/ml/model:ro"},
                   env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}, log=work / "inference.run.log") as proc:
        url = f"http://127.0.0.1:{SERVING_PORT}"
        _until(lambda: urllib.request.urlopen(f"{url}/ping", timeout=2).status == 200, "GET /ping", 120, proc)
        yield url


def inference(tag: str, work: Path) -> str:
    import numpy as np

    from recsys.ranking.bundle import ModelBundle

    model_dir = work / TRAINED
    if not (model_dir / "bundle.json").exists():
        raise AssertionError("no trained bundle: the training contract runs first")
    bundle = ModelBundle.load(model_dir, with_candidates=False)
    rows = np.random.default_rng(0).random((50, len(bundle.schema.names)), dtype=np.float32)
    expected = bundle.ranker().predict(rows).score
    with serving(tag, work, model_dir) as url:
        status, body = _post(f"{url}/invocations", json.dumps({"features": rows.tolist(),
                                                                "schema_id": bundle.schema.id}).encode())
        if status != 200:
            raise AssertionError(f"POST /invocations: {status} {body[:200]!r}")
        scores = np.asarray(json.loads(body)["score"])
        if not np.allclose(scores, expected, rtol=1e-5, atol=1e-7):
            raise AssertionError("POST /invocations: scores differ from this machine's for the same bundle")
        bad, _ = _post(f"{url}/invocations", b"not json")
    if bad != 400:
        raise AssertionError(f"POST /invocations with a bad body: {bad}, expected 400")
    return f"passed: GET /ping 200, POST /invocations 200 on {SERVING_PORT} (50 rows = host scores), bad body 400"


class _RuntimeApi(ThreadingHTTPServer):
    """The two calls of the Lambda Runtime API a handler's invocation makes: next, and its response or error."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", RUNTIME_API_PORT), _RuntimeHandler)
        self.event = event
        self.given = False
        self.result: tuple[str, Any] | None = None
        self.done = threading.Event()


class _RuntimeHandler(BaseHTTPRequestHandler):
    server: _RuntimeApi
    REQUEST_ID = "contract-0001"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if not self.path.endswith("/runtime/invocation/next") or self.server.given:
            self.server.done.wait(60)  # a second `next` waits: one invocation per check
            self.send_response(410)
            self.end_headers()
            return
        self.server.given = True
        body = json.dumps(self.server.event).encode()
        self.send_response(200)
        for key, value in {"Lambda-Runtime-Aws-Request-Id": self.REQUEST_ID,
                           "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                           "Lambda-Runtime-Invoked-Function-Arn":
                               "arn:aws:lambda:us-east-1:000000000000:function:recsys-dev-recommend",
                           "Content-Type": "application/json", "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"null")
        kind = "response" if self.path.endswith("/response") else "error"
        self.server.result = (kind, payload)
        self.send_response(202)
        self.end_headers()
        self.server.done.set()


def recommend(tag: str, work: Path) -> str:
    from recsys.local.services import start_valkey

    model_dir = work / TRAINED
    inference_tag = _sibling_tag(work, "inference")
    event = {"resource": "/recommendations", "path": "/recommendations", "httpMethod": "POST",
             "headers": {"Content-Type": "application/json"}, "isBase64Encoded": False,
             "requestContext": {"requestId": "contract", "stage": "v1", "identity": {"sourceIp": "127.0.0.1"}},
             "body": json.dumps({"userId": "u0000001", "numResults": 5})}  # a user of the synthetic data
    valkey = start_valkey(work / "valkey-logs")
    api = _RuntimeApi(event)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        with serving(inference_tag, work, model_dir) as scoring_url:
            env = {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{RUNTIME_API_PORT}", "RECSYS_MODEL_DIR": "/opt/model",
                   "RECSYS_SCORING_URL": scoring_url, "RECSYS_REDIS_URL": valkey.url, "RECSYS_FEATURE_STORE": "local",
                   "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_LAMBDA_FUNCTION_NAME": "recsys-dev-recommend",
                   "POWERTOOLS_METRICS_NAMESPACE": "recsys-dev", "POWERTOOLS_TRACE_DISABLED": "true"}
            with container(tag, [], volumes={str(model_dir): "/opt/model:ro"}, env=env,
                           log=work / "recommend.run.log") as proc:
                if not api.done.wait(300):
                    raise AssertionError(f"no invocation result in 300 s (exit {proc.poll()})")
    finally:
        api.shutdown()
        valkey.stop()
    kind, payload = api.result or ("none", None)
    if kind != "response" or payload.get("statusCode") != 200:
        raise AssertionError(f"handler {kind}: {json.dumps(payload)[:300]}")
    items = json.loads(payload["body"]).get("itemList", [])
    return (f"passed: CMD handler via awslambdaric answered POST /recommendations 200 with {len(items)} items "
            "(scored by the inference image)")


def monitoring(tag: str, work: Path) -> str:
    root = Path(tempfile.mkdtemp(dir=work, prefix="monitoring-"))
    for folder in ("exposures", "outcomes", "report"):
        (root / folder).mkdir()
        (root / folder).chmod(0o777)
    with container(tag, ["ab", "--exposures", "/in/exposures", "--outcomes", "/in/outcomes", "--report", "/out",
                         "--weights", "champion=1,challenger=1"],
                   volumes={str(root / "exposures"): "/in/exposures:ro", str(root / "outcomes"): "/in/outcomes:ro",
                            str(root / "report"): "/out"}, log=work / "monitoring.run.log") as proc:
        code = proc.wait(600)
    written = sorted(p.name for p in (root / "report").rglob("*") if p.is_file())
    if code != 0 or not written:
        raise AssertionError(f"ab job exited {code}, wrote {written}")
    return f"passed: entrypoint ran the A/B job on local folders and wrote {', '.join(written)}"


def _sibling_tag(work: Path, name: str) -> str:
    for entry in json.loads((work / "report.partial.json").read_text()):
        if entry["name"] == name and entry["built"]:
            return entry["tag"]
    raise AssertionError(f"the {name} image is needed and was not built")


CONTRACTS = {"training": training, "inference": inference, "recommend": recommend, "monitoring": monitoring}


def main(argv: list[str]) -> int:
    name, tag, work = argv
    check = CONTRACTS.get(name)
    if check is None:
        print(f"failed: no contract for the {name} image")
        return 1
    os.chdir(REPO_ROOT)
    try:
        print(check(tag, Path(work)))
        return 0
    except Exception as error:  # noqa: BLE001 - the report names every failure
        print(f"failed: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
