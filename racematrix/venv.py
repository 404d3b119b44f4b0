"""Virtual environments made outside a nox session, and what any
environment holds: its interpreter and every distribution in it."""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


READ_ENVIRONMENT = r"""
import json, platform, sys
from importlib import metadata
# Every distribution in the environment, by its normalised name: what
# anyone needs to rebuild it.
import re
packages = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        packages[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
packages = dict(sorted(packages.items()))
print(json.dumps({"python": platform.python_version(),
                  "python_build": f"{platform.python_implementation()} "
                                  f"{sys.version}".replace("\n", " "),
                  "packages": packages}))
"""


class ProbeEnvironment:
    """A virtual environment made outside a nox session (bisect probes, the
    MWE's figures); looks like the part of a nox Session the runner uses."""
    venv_backend = "uv"

    def __init__(self, location: str | Path, python: str,
                 log: Callable[[str], object]) -> None:
        # Absolute: the suite runs from a scratch folder.
        self.location = Path(location).absolute()
        self.bin = str(self.location / "bin")
        self.python = python
        self.log = log

    def create(self) -> None:
        if (self.location / "bin" / "python").exists():
            return
        subprocess.run(["uv", "venv", "-q", "-p", self.python,
                        str(self.location)], check=True,
                       env={"UV_PYTHON_DOWNLOADS": "never", **os.environ})


def venv_python(session: Any) -> str:
    return str(Path(session.bin) / "python")


def read_environment(session: Any) -> dict:
    done = subprocess.run([venv_python(session), "-c", READ_ENVIRONMENT],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the environment: {done.stderr}")
    return json.loads(done.stdout)
