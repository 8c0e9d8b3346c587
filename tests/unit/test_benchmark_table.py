import json

from benchmarks import common
from benchmarks.common import percentile
from benchmarks.readme_table import update_readme


def test_percentile_nearest_rank():
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_table_is_rendered_between_markers_and_rerendered_in_place(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- BENCHMARKS -->\noutro\n")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"a": {"figure": "Feature read p99", "value": 1.25, "unit": "ms",
                                         "target": "≤ 2 ms", "meets": True, "conditions": "1 user + 1,000 items"}}))
    full = tmp_path / "benchmarks.md"
    update_readme(readme, results, full)
    update_readme(readme, results, full)
    text = readme.read_text()
    assert text.count("| Feature read p99 | 1.25 ms ✅ | ≤ 2 ms |\n") == 1  # the README: no conditions
    assert "1 user + 1,000 items" not in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "| Feature read p99 | 1.25 ms ✅ | ≤ 2 ms | — | 1 user + 1,000 items |" in full.read_text()


def _record_many(worker: int) -> None:
    for n in range(10):
        common.record(f"w{worker}_{n}", figure="f", value=n, unit="ms", conditions="c")


def test_concurrent_benchmarks_keep_every_figure(tmp_path, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results.json")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_record_many, range(8))
    assert len(json.loads((tmp_path / "results.json").read_text())) == 80
