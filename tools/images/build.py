"""Build every container image of the CDK app without a Docker daemon, then run each image's contract.

    .venv/bin/python -m tools.images.build [--only inference,training] [--no-contracts]     (make images)

1. A Debian bookworm root file system from Debian's packages (debootstrap), imported as
   `localhost/recsys-standin/debian:bookworm`: image registries cannot be reached here.
2. Stand-ins for the Dockerfiles' bases, built on it and tagged with the bases' own names, so the Dockerfiles
   build unchanged (`STANDINS`). A base with no stand-in (AWS's Spark processing image) is reported, not built.
3. Each image asset of the synthesized app (its `*.assets.json`: the staged context `cdk deploy` would build, the
   Dockerfile, the build arguments), built with buildah from exactly that context, for this machine's CPU.
4. The contracts (tools/images/contracts.py), run with `buildah run` (runc) in the image.

Writes build/images/report.json and prints one line per image: build result, size, contract.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WORK = REPO_ROOT / "build" / "images"
STANDIN_DIR = Path(__file__).resolve().parent / "standins"
SUITE = "bookworm"
DEBIAN = f"localhost/recsys-standin/debian:{SUITE}"
MIRROR = "http://deb.debian.org/debian"
RUNTIME = "/usr/sbin/runc"  # crun cannot set up this machine's hybrid cgroups
# The host's trust store, bind-mounted into build steps (never copied into an image) with a pip.conf naming it: pip
# in the image then trusts what the host's pip trusts, e.g. an HTTPS proxy between this machine and PyPI.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Stand-in Containerfile for each base a Dockerfile names (FROM), tagged with that name.
STANDINS = {
    "python:3.11.11-slim-bookworm": "python.Containerfile",
    "public.ecr.aws/lambda/python:3.12-arm64": "lambda-python.Containerfile",
}
# A CPython 3.12 for the Lambda stand-in (Debian bookworm ships 3.11): this machine's pyenv build.
LAMBDA_PYTHON_GLOB = "versions/3.12*"


@dataclass
class ImageResult:
    name: str
    dockerfile: str
    base: str
    built: bool = False
    seconds: float = 0.0
    size_mb: float | None = None
    tag: str = ""
    contract: str = "not run"
    notes: list[str] = field(default_factory=list)


def build_mounts() -> list[str]:
    if not HOST_CA_BUNDLE.exists():
        return []
    pip_conf = WORK / "pip.conf"
    pip_conf.write_text("[global]\ncert = /run/recsys-host-ca.crt\n")
    return ["--volume", f"{HOST_CA_BUNDLE}:/run/recsys-host-ca.crt:ro", "--volume", f"{pip_conf}:/etc/pip.conf:ro"]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, text=True, **kwargs)


def image_exists(name: str) -> bool:
    return subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True).returncode == 0


def debian_base() -> None:
    if image_exists(DEBIAN):
        return
    rootfs = WORK / f"rootfs-{SUITE}"
    shutil.rmtree(rootfs, ignore_errors=True)
    run(["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE, str(rootfs), MIRROR],
        stdout=subprocess.DEVNULL)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(["podman", "import", "-", DEBIAN], stdin=tar.stdout,
        stdout=subprocess.DEVNULL)
    if tar.wait() != 0:
        raise RuntimeError("tar of the debootstrap root file system failed")
    shutil.rmtree(rootfs)


def _lambda_python(context: Path) -> None:
    """Copy this machine's CPython 3.12 into the stand-in's context, without its site-packages but pip."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(Path(root).glob(LAMBDA_PYTHON_GLOB)) if root else []
    if not found:
        raise RuntimeError("the Lambda stand-in needs a CPython 3.12 (pyenv install 3.12)")

    def skip(directory: str, names: list[str]) -> set[str]:
        if directory.endswith("site-packages"):
            return {n for n in names if not n.startswith("pip")}
        return {n for n in names if n in ("test", "idlelib", "tkinter", "__pycache__")}

    shutil.copytree(found[-1], context / "python", ignore=skip, symlinks=True)


def standin(base: str) -> str | None:
    """Build the stand-in tagged `base`, unless it exists; None when there is none for it."""
    containerfile = STANDINS.get(base)
    if containerfile is None:
        return None
    if not image_exists(base):
        with tempfile.TemporaryDirectory(dir=WORK) as context:
            for path in STANDIN_DIR.iterdir():
                shutil.copy(path, context)
            if containerfile.startswith("lambda"):
                _lambda_python(Path(context))
            run(["buildah", "bud", "--runtime", RUNTIME, "--pull=never", "--isolation", "chroot", *build_mounts(), "-f",
                 str(Path(context) / containerfile), "--build-arg", f"BASE={DEBIAN}", "-t", base, context],
                stdout=subprocess.DEVNULL)
    return base


def synthesized_assets(outdir: Path) -> list[dict]:
    """Every Docker image asset of the app: its staged directory, Dockerfile and build arguments."""
    from stacks.platform import create_app

    app, _ = create_app(outdir=str(outdir), builtin_validation=False)
    app.synth()
    assets = []
    for manifest in sorted(outdir.glob("*.assets.json")):
        for asset_hash, asset in json.loads(manifest.read_text()).get("dockerImages", {}).items():
            source = asset["source"]
            assets.append({"hash": asset_hash, "directory": outdir / source["directory"],
                           "dockerfile": source.get("dockerFile", "Dockerfile"),
                           "build_args": source.get("dockerBuildArgs", {}), "platform": source.get("platform")})
    return assets


def image_name(dockerfile: str) -> str:
    return Path(dockerfile).parent.name  # containers/inference/Dockerfile -> inference


def bases(dockerfile: Path) -> list[str]:
    """The external bases of a Dockerfile (FROM lines that are not earlier stages)."""
    stages: set[str] = set()
    found = []
    for base, _, stage in re.findall(r"^FROM\s+(\S+)(\s+AS\s+(\S+))?", dockerfile.read_text(), re.M | re.I):
        if base not in stages:
            found.append(base)
        if stage:
            stages.add(stage)
    return found


def build(asset: dict) -> ImageResult:
    dockerfile = asset["directory"] / asset["dockerfile"]
    result = ImageResult(image_name(asset["dockerfile"]), asset["dockerfile"], ", ".join(bases(dockerfile)))
    try:
        missing = [b for b in bases(dockerfile) if standin(b) is None]
    except subprocess.CalledProcessError as error:
        result.notes.append(f"its base's stand-in failed to build: {error}")
        return result
    if missing:
        result.notes.append(f"no stand-in for its base {', '.join(missing)}: not built here")
        return result
    result.tag = f"localhost/recsys/{result.name}:{asset['hash'][:12]}"
    if asset.get("platform"):
        result.notes.append(f"deployed for {asset['platform']}; built here for this machine's CPU")
    started = time.monotonic()
    argv = ["buildah", "bud", "--runtime", RUNTIME, "--pull=never", "--isolation", "chroot", "--layers",
            *build_mounts(), "-f", str(dockerfile), "-t", result.tag]
    for name, value in asset["build_args"].items():
        argv += ["--build-arg", f"{name}={value}"]
    log = WORK / f"{result.name}.build.log"
    with open(log, "w") as out:
        completed = subprocess.run([*argv, str(asset["directory"])], stdout=out, stderr=subprocess.STDOUT)
    result.seconds = round(time.monotonic() - started, 1)
    result.built = completed.returncode == 0
    if not result.built:
        result.notes.append(f"build failed: see {log.relative_to(REPO_ROOT)}")
        return result
    size = run(["podman", "image", "inspect", "--format", "{{.Size}}", result.tag], capture_output=True).stdout
    result.size_mb = round(int(size.strip()) / 2**20, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated image names (inference, training, monitoring, ...)")
    parser.add_argument("--no-contracts", action="store_true")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    debian_base()
    assets = synthesized_assets(WORK / "cdk.out")
    if args.only:
        wanted = set(args.only.split(","))
        assets = [a for a in assets if image_name(a["dockerfile"]) in wanted]
    results = [build(asset) for asset in assets]
    (WORK / "report.partial.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    if not args.no_contracts:
        from tools.images.contracts import CONTRACTS, run_contract

        # In the contracts' order: the training image's bundle is what the inference and recommend images serve.
        order = list(CONTRACTS)
        for result in sorted(results, key=lambda r: order.index(r.name) if r.name in order else len(order)):
            if result.built:
                result.contract = run_contract(result.name, result.tag, WORK)
    (WORK / "report.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    for r in results:
        size = f"{r.size_mb:,.0f} MB" if r.size_mb is not None else "-"
        state = f"built in {r.seconds:.0f} s" if r.built else "NOT BUILT"
        print(f"{r.name:12} {state:18} {size:>9}  contract: {r.contract}" + "".join(f"\n{'':14}{n}" for n in r.notes))
    failed = [r.name for r in results if (r.tag and not r.built) or (r.built and not r.contract.startswith("passed"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
