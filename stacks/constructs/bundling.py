"""Lambda bundles built on this machine: no Docker.

A bundle is `recsys/` + `lambdas/<handler>/` (laid out as in the repo, so the handler imports exactly as the
tests import it) + the runtime dependencies of requirements.txt. Those are installed once per requirement set
with pip's cross-platform mode (`--platform manylinux2014_aarch64 --python-version 3.12 --only-binary=:all:`),
so the wheels match the Lambda runtime even on an x86 laptop, into `build/lambda-deps/<hash>/`, keyed by the
hash of requirements.txt, constraints.txt and the target. Repeated synths and tests reuse that directory and
never touch the network.

boto3 and the packages it brings (botocore, s3transfer, jmespath, python-dateutil, six, urllib3) are not bundled,
even when another dependency requires them (aws-xray-sdk requires botocore): the Lambda Python runtime ships a
coherent set of them, and bundling ours would add ~25 MB to every function. Code that needs a newer AWS API
than the runtime's boto3 must bring boto3 in a layer.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
_PYTHON_VERSION = RUNTIME.name.removeprefix("python")  # pip resolves wheels for the runtime's Python
_PLATFORM = "manylinux2014_aarch64"
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})
# Bump to force every bundle to be rebuilt after a change to how bundles are laid out.
_LAYOUT_VERSION = "3"
_SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
# Built on this machine, for its Python: no image build context takes them (a .so would not match the image's).
HOST_BUILD_OUTPUTS = ("**/__pycache__", "**/*.pyc", "**/*.so")
# .so: a native module built here is for this machine, not for Lambda's ARM64 Python 3.12
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".so")


def image_context(*paths: str) -> list[str]:
    """Docker-style excludes for a build context at the repository root that stages only `paths`."""
    return ["*", *(f"!{path}" for path in paths), *HOST_BUILD_OUTPUTS]


def image_asset(scope: Construct, id: str, *, dockerfile: str, exclude: list[str], platform: ecr_assets.Platform,
                display_name: str | None = None) -> ecr_assets.DockerImageAsset:
    """An image `cdk deploy` builds from the repository root, its context limited by `exclude` (`image_context`);
    synth only stages the context, so no Docker is needed here."""
    return ecr_assets.DockerImageAsset(
        scope,
        id,
        directory=str(REPO_ROOT),
        file=dockerfile,
        exclude=exclude,
        ignore_mode=IgnoreMode.DOCKER,
        platform=platform,
        display_name=display_name,
    )


def _requirement_name(line: str) -> str:
    return re.split(r"[\s\[=<>!~;@]", line, maxsplit=1)[0].lower().replace("_", "-")


def _remove_runtime_provided(site_packages: Path) -> None:
    """Delete the installed distributions the Lambda runtime already has, file by file from their RECORD."""
    for dist_info in site_packages.glob("*.dist-info"):
        if _requirement_name(dist_info.name.split("-", 1)[0]) not in RUNTIME_PROVIDED:  # name-version.dist-info
            continue
        for line in (dist_info / "RECORD").read_text().splitlines():
            (site_packages / line.split(",", 1)[0]).unlink(missing_ok=True)
        for directory in sorted(site_packages.rglob("*"), key=lambda path: len(path.parts), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        shutil.rmtree(dist_info, ignore_errors=True)


def bundled_requirements(requirements: Path) -> list[str]:
    """The requirement lines to install into bundles: requirements.txt minus what the runtime provides."""
    lines = [line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines()]
    return [line for line in lines if line and _requirement_name(line) not in RUNTIME_PROVIDED]


def dependencies_key(repo_root: Path = REPO_ROOT) -> str:
    """Names one installed dependency set: changes with requirements.txt, constraints.txt or the target."""
    key = hashlib.sha256()
    for part in (*bundled_requirements(repo_root / "requirements.txt"), _PYTHON_VERSION, _PLATFORM, _LAYOUT_VERSION):
        key.update(part.encode() + b"\n")
    constraints = repo_root / "constraints.txt"
    if constraints.exists():
        key.update(constraints.read_bytes())
    return key.hexdigest()[:20]


@cache
def dependencies_dir(repo_root: Path = REPO_ROOT) -> Path:
    """The installed runtime dependencies of every bundle, built once per requirement set."""
    requirements = bundled_requirements(repo_root / "requirements.txt")
    constraints = repo_root / "constraints.txt"
    cache = repo_root / "build" / "lambda-deps" / dependencies_key(repo_root)
    if cache.is_dir():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent, prefix=".installing-") as tmp:
        requirements_file = Path(tmp) / "requirements.txt"
        requirements_file.write_text("\n".join(requirements) + "\n")
        target = Path(tmp) / "site-packages"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(target), "--platform", _PLATFORM, "--implementation", "cp",
            "--python-version", _PYTHON_VERSION, "--only-binary=:all:", "-r", str(requirements_file),
        ]  # fmt: skip
        if constraints.exists():
            command += ["-c", str(constraints)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"installing the Lambda dependencies failed:\n{result.stdout}\n{result.stderr}")
        shutil.rmtree(target / "bin", ignore_errors=True)
        _remove_runtime_provided(target)
        try:
            target.rename(cache)
        except OSError:
            if not cache.is_dir():  # another synth finished first, which is fine; anything else is not
                raise
    for stale in cache.parent.iterdir():  # dependency sets of older requirement files
        if stale.is_dir() and stale != cache and not stale.name.startswith("."):
            shutil.rmtree(stale, ignore_errors=True)
    return cache


def _source_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not _SKIPPED_DIRS.intersection(path.relative_to(root).parts)
        and not path.name.endswith(_SKIPPED_SUFFIXES)
    )


def _hash_tree(digest: hashlib._Hash, root: Path, base: Path) -> None:
    for path in _source_files(root):
        digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")


@cache
def _shared_hash(repo_root: Path) -> str:
    digest = hashlib.sha256(_LAYOUT_VERSION.encode())
    digest.update(dependencies_key(repo_root).encode())
    _hash_tree(digest, repo_root / "recsys", repo_root)
    package_init = repo_root / "lambdas" / "__init__.py"
    if package_init.exists():
        digest.update(package_init.read_bytes())
    return digest.hexdigest()


def bundle_hash(handler: str, repo_root: Path = REPO_ROOT) -> str:
    """Changes exactly when the bundle's content would: dependencies, `recsys/` or the handler's folder."""
    digest = hashlib.sha256(_shared_hash(repo_root).encode())
    _hash_tree(digest, repo_root / "lambdas" / handler, repo_root)
    return digest.hexdigest()


def _link_or_copy(source: str, destination: str) -> None:
    # Hard links make a bundle of the shared dependencies nearly free; across file systems, copy.
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name in _SKIPPED_DIRS or name.endswith(_SKIPPED_SUFFIXES)}


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """Called by CDK instead of a Docker build; writes the bundle of `handler` into the asset's output dir."""

    def __init__(self, handler: str, repo_root: Path = REPO_ROOT) -> None:
        self._handler = handler
        self._repo_root = repo_root

    def try_bundle(self, output_dir: str, options: BundlingOptions | None = None) -> bool:
        out = Path(output_dir)
        shutil.copytree(dependencies_dir(self._repo_root), out, dirs_exist_ok=True, copy_function=_link_or_copy)
        shutil.copytree(self._repo_root / "recsys", out / "recsys", ignore=_ignore, dirs_exist_ok=True)
        package_init = self._repo_root / "lambdas" / "__init__.py"
        if package_init.exists():
            (out / "lambdas").mkdir(exist_ok=True)
            shutil.copy2(package_init, out / "lambdas" / "__init__.py")
        handler_dir = self._repo_root / "lambdas" / self._handler
        shutil.copytree(handler_dir, out / "lambdas" / self._handler, ignore=_ignore, dirs_exist_ok=True)
        return True


def python_code(handler: str, repo_root: Path = REPO_ROOT) -> lambda_.Code:
    """The Lambda code asset of `lambdas/<handler>/`, bundled locally."""
    handler_dir = repo_root / "lambdas" / handler
    if not (handler_dir / "handler.py").is_file():
        raise FileNotFoundError(f"Lambda handler {handler!r}: {handler_dir / 'handler.py'} does not exist")
    return lambda_.Code.from_asset(
        str(handler_dir),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundle_hash(handler, repo_root),
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds, and CDK wants an image name regardless.
            image=DockerImage.from_registry("unused-local-bundling"),
            local=LocalPythonBundler(handler, repo_root),
        ),
    )
