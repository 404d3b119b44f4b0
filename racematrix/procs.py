"""Child processes: run in a venv, streamed, their group ended with ours."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def venv_environ(bin_dir: str | Path, extra_env: dict[str, str]
                 ) -> dict[str, str]:
    """A venv's environment, bytecode on (uv installs none: numba compiles)."""
    bin_dir = Path(bin_dir).absolute()  # commands may run from elsewhere
    return {**{key: value for key, value in os.environ.items()
               if key != "PYTHONDONTWRITEBYTECODE"}, **extra_env,
            "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(bin_dir.parent)}


def run_streaming(session: Any, command: list, extra_env: dict[str, str],
                  echo: bool = True, cwd: str | Path | None = None,
                  timeout: float | None = None) -> tuple[int, list[str]]:
    """(exit code, last lines) of ``command``; past ``timeout`` its group is
    ended and ``subprocess.TimeoutExpired`` raised."""
    if echo:  # quiet: the caller says what came of it
        session.log(" ".join(map(str, command)))
    tail: list[str] = []
    process = subprocess.Popen(
        command, env=venv_environ(session.bin, extra_env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", start_new_session=True, cwd=cwd,
        preexec_fn=die_with_parent)
    assert process.stdout is not None  # stdout=PIPE
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        stop_process_group(process)
    timer = threading.Timer(timeout or 0, stop)
    if timeout is not None:
        timer.start()
    try:
        for line in process.stdout:
            if echo:
                sys.stdout.write(line)
            tail = (tail + [line.rstrip()])[-60:]
        sys.stdout.flush()
        process.wait()
    except BaseException:
        stop_process_group(process)
        raise
    finally:
        timer.cancel()
        process.stdout.close()
    if stopped.is_set():
        raise subprocess.TimeoutExpired(command, timeout or 0,
                                        output="\n".join(tail))
    return process.returncode, tail


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL (simulated threads ignore an interrupt)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2.0)
            return


def die_with_parent() -> None:
    """In the child, before exec: Linux SIGKILLs it when its parent dies."""
    import ctypes
    with contextlib.suppress(OSError, AttributeError):  # 1: PR_SET_PDEATHSIG
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def terminate_on_sigterm() -> None:
    """SIGTERM as KeyboardInterrupt: a CI job's cancellation is a Ctrl-C."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, interrupt)
