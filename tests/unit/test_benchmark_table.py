import json

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
    update_readme(readme, results)
    update_readme(readme, results)
    text = readme.read_text()
    assert text.count("| Feature read p99 | 1.25 ms ✅ | ≤ 2 ms | 1 user + 1,000 items |") == 1
    assert text.startswith("intro\n") and text.endswith("outro\n")
