"""Ranker scoring latency over HTTP: the inference server as a process, 100 / 500 / 1,000 candidates per request.

    python -m benchmarks.bench_scoring [--model-dir DIR] [--requests 1000] [--workers N]

Without --model-dir, a bundle is trained first with the default configs (LTR: up to 200 trees for pCTR plus the
pCVR head; Random Forest), the way `make demo` trains one (recsys.evaluation.pipeline.train_model): on the
MovieTweetings development data when ../shared/datasets/movietweetings-100k exists, else on seeded synthetic data
(recsys.datasets.synthetic: 2,000 users, 800 items, 120,000 events, 30 days). Rows are real assembled candidate rows (tiled to the request size). One client on one keep-alive
connection sends the requests one after another (wall time per request, client on the same machine), after 50
warm-up requests, in both body formats: application/x-npy (the compact one the recommend API sends) and JSON.
Target: p99 <= 10 ms for 1,000 candidates.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from benchmarks.common import percentile, record
from containers.inference.server import start_local_server

SIZES = (100, 500, 1000)
REPO = Path(__file__).resolve().parents[1]


MOVIETWEETINGS = REPO.parent / "shared" / "datasets" / "movietweetings-100k"


def train_bundle_for_bench(out: Path) -> str:
    """Train the benchmark's bundle into out/model; returns what it was trained on."""
    from recsys.evaluation.pipeline import EvalConfig, train_model

    if (MOVIETWEETINGS / "ratings.dat").is_file():
        train_model(MOVIETWEETINGS, out / "model")
        return "MovieTweetings 100k"
    from recsys.datasets.synthetic import generate

    generate(out / "data", n_users=2000, n_items=800, n_events=120_000, days=30, seed=7)
    train_model(out / "data", out / "model", config=EvalConfig(positive_event_types=("like", "purchase")))
    return "synthetic data"


def sample_rows(model_dir: Path, n: int) -> np.ndarray:
    """Real rows: one user's assembled candidate pool, tiled to n rows."""
    from recsys.models import CandidateRequest
    from recsys.ranking.bundle import ModelBundle
    from recsys.ranking.features import assemble

    bundle = ModelBundle.load(model_dir)
    models = bundle.candidates
    some_items = tuple(models.catalog.item_ids[:20].tolist())
    query = models.query(CandidateRequest(user_id="bench", history=some_items, now=models["popularity"].info.cutoff))
    pool = models.pool(query)
    rows = assemble(models, bundle.schema, query, pool.items)
    return np.resize(rows, (n, rows.shape[1])).astype(np.float32)


PATHS = {  # request body -> response body
    "npy->npy": ("application/x-npy", "application/x-npy"),
    "npy->json": ("application/x-npy", "application/json"),
    "json->json": ("application/json", "application/json"),
}


def encode(rows: np.ndarray, path: str) -> tuple[bytes, dict[str, str]]:
    content_type, accept = PATHS[path]
    if content_type == "application/x-npy":
        buffer = io.BytesIO()
        np.save(buffer, rows)
        return buffer.getvalue(), {"Content-Type": content_type, "Accept": accept}
    features = [[None if v != v else float(v) for v in row] for row in rows.tolist()]
    return json.dumps({"features": features}).encode(), {"Content-Type": content_type, "Accept": accept}


def measure(url: str, body: bytes, headers: dict[str, str], requests: int) -> list[float]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    samples = []
    for i in range(requests + 50):
        started = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"scoring failed with {response.status}")
        if i >= 50:
            samples.append(elapsed * 1000)
    connection.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else Path(tmp) / "model"
        trained_on = f"the bundle in {args.model_dir}"
        if not args.model_dir:
            began = time.perf_counter()
            trained_on = f"a bundle trained on {train_bundle_for_bench(Path(tmp))}"
            print(f"trained the benchmark bundle in {time.perf_counter() - began:.0f}s")
        info = json.loads((model_dir / "bundle.json").read_text())
        ranker = json.loads((model_dir / "rankers" / info["default_ranker"] / "ranker.json").read_text())
        trees = ranker["info"]["trees"]
        url, stop = start_local_server(model_dir, workers=args.workers)
        try:
            load = os.getloadavg()[0]
            results = {}
            for path in PATHS:
                for n in SIZES:
                    body, headers = encode(sample_rows(model_dir, n), path)
                    samples = measure(url, body, headers, args.requests)
                    results[(path, n)] = (percentile(samples, 50), percentile(samples, 99), max(samples))
                    print(f"{path:10} {n:5} candidates: p50 {results[(path, n)][0]:.2f} ms, "
                          f"p99 {results[(path, n)][1]:.2f} ms, max {results[(path, n)][2]:.2f} ms")
        finally:
            stop()
    conditions = (f"LTR ranker ({trees['ctr']} + {trees['cvr']} trees, {len(info['schema']['model'])} features; "
                  f"{trained_on}), "
                  f"POST /invocations over HTTP keep-alive, {args.requests} sequential requests after 50 warm-up, "
                  f"{args.workers} server workers + the client on the same machine; load average {load:.1f} at start")
    extra = {f"{path} {n}": {"p50_ms": round(v[0], 3), "p99_ms": round(v[1], 3), "max_ms": round(v[2], 3)}
             for (path, n), v in results.items()}
    for path, key in (("npy->npy", "scoring_p99_ms_1000"), ("npy->json", "scoring_p99_ms_1000_npy_json"),
                      ("json->json", "scoring_p99_ms_1000_json")):
        p50, p99, _ = results[(path, 1000)]
        record(key, figure=f"Ranker scoring p99, 1,000 candidates ({path})", value=p99, unit="ms",
               conditions=f"{conditions}; p50 {p50:.2f} ms", target="≤ 10 ms", meets=p99 <= 10.0,
               extra=extra if path == "npy->npy" else None)


if __name__ == "__main__":
    main()
