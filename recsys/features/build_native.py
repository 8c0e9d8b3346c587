"""Compiles the FeatureReader's native decoder, `_decode.c`, next to this file.

    python recsys/features/build_native.py

It uses the compiler and headers of the interpreter that runs it (`sysconfig`; `CC` overrides the compiler), so it
needs gcc and the Python headers (Debian: gcc python3-dev), and imports nothing of the platform: the recommend
image builds it in a stage of its own. A build is for that interpreter and machine only: Lambda zip bundles and
image contexts skip `*.so` files. Without it the reader falls back to numpy (recsys/features/native.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

SOURCE = Path(__file__).with_name("_decode.c")
TARGET = SOURCE.with_suffix(sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def build() -> Path:
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    command = [*compiler, "-O2", "-fPIC", "-shared", "-Wall", f"-I{sysconfig.get_paths()['include']}", str(SOURCE),
               "-o", str(TARGET)]
    subprocess.run(command, check=True)
    return TARGET


if __name__ == "__main__":
    try:
        print(f"built {build()}")
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"could not build the native decoder ({exc}): it needs a C compiler and the Python headers "
                 "(e.g. apt-get install gcc python3-dev)")
