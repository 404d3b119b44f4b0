"""Where figures come from: the machine, its OS and its Python builds."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def stamp(command: str) -> dict:
    """A result file's provenance: its command, when, on what machine."""
    return {"command": command, "finished": now_iso(),
            "machine": machine_info()}


def machine_info() -> dict:
    """This machine, labelled ``RACEMATRIX_MACHINE`` or its host name."""
    try:
        distribution = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:  # not Linux
        distribution = platform.mac_ver()[0] or platform.version()
    return {"label": os.environ.get("RACEMATRIX_MACHINE") or
            socket.gethostname(),
            "os": f"{platform.system()} {platform.release()}",
            "distribution": distribution, "arch": platform.machine(),
            "cores": os.cpu_count(), "gpu": gpu_name()}


def gpu_name() -> str | None:
    """The first NVIDIA GPU's name (nvidia-smi), or None."""
    try:
        probe = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    names = probe.stdout.strip().splitlines()
    return names[0].strip() if probe.returncode == 0 and names else None
