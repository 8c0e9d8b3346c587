"""`python -m recsys.monitoring` on local files: what on-call runs without AWS."""

import json

import numpy as np
import pytest

from recsys.events import Event
from recsys.monitoring.__main__ import main
from recsys.monitoring.abtest import Exposure
from recsys.monitoring.drift import build_baseline


def test_drift_command(tmp_path, capsys):
    rng = np.random.default_rng(0)
    build_baseline({"age": rng.normal(30, 5, 2000)}).save(str(tmp_path / "baseline.json"))
    served = [json.dumps({"features": {"age": float(v)}}) for v in rng.normal(40, 5, 600)]
    (tmp_path / "served.jsonl").write_text("\n".join(served))
    assert main(["drift", "--baseline", str(tmp_path / "baseline.json"), "--served", str(tmp_path / "served.jsonl"),
                 "--report", str(tmp_path / "reports")]) == 0
    out = capsys.readouterr().out
    assert "drift: 600 rows, 0 rejected, in alarm: age" in out
    assert "FeatureDriftPSI[Feature=age] = " in out and "DriftedFeatures = 1" in out
    assert (tmp_path / "reports" / "drift-latest.html").exists()


def test_ab_command(tmp_path, capsys):
    exposures = [Exposure(f"r{i}", "champion" if i % 2 else "B", f"u{i}", 1.7e9).to_dict() for i in range(40)]
    (tmp_path / "exposures.jsonl").write_text("\n".join(map(json.dumps, exposures)))
    (tmp_path / "events.jsonl").write_text(Event("e1", "u1", "click", 1.7e9 + 1, recommendation_id="r1").to_json())
    assert main(["ab", "--exposures", str(tmp_path / "exposures.jsonl"), "--outcomes", str(tmp_path / "events.jsonl"),
                 "--report", str(tmp_path / "reports"), "--weights", "champion=1,B=1"]) == 0
    out = capsys.readouterr().out
    assert "ab: 40 exposures, SRM p=1, significant: none" in out
    assert "ABCtr[Variant=champion] = 0.05" in out
    assert json.loads((tmp_path / "reports" / "ab-latest.json").read_text())["weights"] == {"B": 1.0, "champion": 1.0}


def test_bad_arguments_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["ab", "--exposures", "x", "--outcomes", "y", "--report", "z", "--weights", "champion"])
    assert "--weights: expected name=value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ab", "--exposures", "x", "--outcomes", "y", "--report", "z", "--endpoint", "e"])
    assert "--endpoint needs --variants and --decision-log" in capsys.readouterr().err
