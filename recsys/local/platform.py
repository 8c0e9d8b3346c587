"""Start, reuse and stop the local platform's services (`make up` / `make down`)."""

from __future__ import annotations

from pathlib import Path

from recsys.local.services import LocalPlatform


def attach_or_start(state_file: Path) -> tuple[LocalPlatform, bool]:
    """The running platform recorded in `state_file`, or a new one. The flag says whether we started it."""
    running = LocalPlatform.load(state_file)
    if running is not None:
        running.apply_env()
        return running, False
    platform = LocalPlatform.start(state_file.parent / "logs")
    platform.save(state_file)
    platform.apply_env()
    return platform, True


def shut_down(state_file: Path) -> None:
    platform = LocalPlatform.load(state_file)
    if platform is None:
        print("nothing running")
    else:
        platform.stop()
        print(f"stopped moto (pid {platform.moto.pid}) and valkey (pid {platform.valkey.pid})")
    state_file.unlink(missing_ok=True)


def describe(state_file: Path) -> str:
    platform = LocalPlatform.load(state_file)
    if platform is None:
        return "local platform: not running (start it with `make up`)"
    lines = [
        f"AWS APIs (moto)      {platform.moto.url}   pid {platform.moto.pid}   log {platform.moto.log}",
        f"MemoryDB (Valkey 8)  {platform.valkey.url}   pid {platform.valkey.pid}   log {platform.valkey.log}",
        "Use them from a shell:",
        *(f"  export {name}={value}" for name, value in platform.env.items()),
    ]
    return "\n".join(lines)
