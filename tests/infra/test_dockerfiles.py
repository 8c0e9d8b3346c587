"""hadolint finds nothing in any Dockerfile of the app or Containerfile of the image stand-ins, and every base an
image is built from here has a stand-in (tools/images), but AWS's Spark processing image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.images.build import STANDINS, bases

HADOLINT = Path(sys.executable).parent / "hadolint"
REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted([*REPO_ROOT.glob("containers/*/Dockerfile"), *REPO_ROOT.glob("lambdas/*/Dockerfile"),
                      *REPO_ROOT.glob("tools/images/standins/*.Containerfile")])
PROCESSING_BASE = "${REGISTRY_ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/sagemaker-spark-processing:3.5-cpu-py312-v1.0"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", "--failure-threshold", "info", str(path)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert (result.returncode, result.stdout) == (0, "")


def test_hadolint_does_find_problems(tmp_path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN cd /tmp && pip install numpy\n")
    result = hadolint(broken)
    assert result.returncode != 0 and "DL3007" in result.stdout  # the :latest tag


def test_every_base_has_a_stand_in_but_the_spark_processing_image() -> None:
    assert len(DOCKERFILES) >= 7
    used = {base for path in DOCKERFILES if path.name == "Dockerfile" for base in bases(path)}
    assert used - set(STANDINS) == {PROCESSING_BASE}
