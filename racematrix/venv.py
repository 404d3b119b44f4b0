"""Environments made outside nox, and what any environment holds."""
from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Every distribution by its normalised name: what rebuilds the environment.
READ_ENVIRONMENT = r"""
import json, platform, re, sys
from importlib import metadata
packages = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
            for d in metadata.distributions() if d.metadata["Name"]}
print(json.dumps({"python": platform.python_version(),
                  "python_build": f"{platform.python_implementation()} "
                                  f"{sys.version}".replace("\n", " "),
                  "packages": dict(sorted(packages.items()))}))
"""


class ProbeEnvironment:
    """An environment outside nox with the parts of a nox Session we use."""
    venv_backend = "uv"

    def __init__(self, location: str | Path, python: str) -> None:
        # Absolute: the suite runs from a scratch folder.
        self.location = Path(location).absolute()
        self.bin = str(self.location / "bin")
        self.python = python

    def log(self, message: str) -> None:
        logger.info("%s", message)

    def create(self) -> None:
        if not (self.location / "bin" / "python").exists():
            subprocess.run(["uv", "venv", "-q", "-p", self.python,
                            str(self.location)], check=True,
                           env={"UV_PYTHON_DOWNLOADS": "never", **os.environ})


def venv_python(session: Any) -> str:
    return str(Path(session.bin) / "python")


def read_environment(session: Any) -> dict[str, Any]:
    done = subprocess.run([venv_python(session), "-c", READ_ENVIRONMENT],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the environment: {done.stderr}")
    return json.loads(done.stdout)
