"""Child processes: a command run in a virtual environment, its output
streamed, its process group ended on an interrupt, its death tied to ours."""
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
    """A command's environment in a venv, without PYTHONDONTWRITEBYTECODE
    (uv installs no bytecode: each run would compile numba again)."""
    bin_dir = Path(bin_dir).absolute()  # commands may run from elsewhere
    return {**{key: value for key, value in os.environ.items()
               if key != "PYTHONDONTWRITEBYTECODE"}, **extra_env,
            "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(bin_dir.parent)}


def run_streaming(session: Any, command: list, extra_env: dict[str, str],
                  echo: bool = True, cwd: str | Path | None = None,
                  timeout: float | None = None) -> tuple[int, list[str]]:
    """(exit code, last lines) of a command in the session's environment;
    an interrupt, or ``timeout`` s passing, ends its process group; it dies
    with this process."""
    if echo:  # quiet: the caller says what came of it
        session.log(" ".join(map(str, command)))
    tail: list[str] = []
    process = subprocess.Popen(
        command, env=venv_environ(session.bin, extra_env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", start_new_session=True, cwd=cwd,
        preexec_fn=die_with_parent)
    assert process.stdout is not None  # stdout=PIPE
    timer = threading.Timer(timeout or 0, stop_process_group, (process,))
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
    return process.returncode, tail


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL 2 s on, to ``process``'s group (a simulated
    kernel's threads ignore a KeyboardInterrupt)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2.0)
            return


def die_with_parent() -> None:
    """In the child, before exec: Linux SIGKILLs it when its parent dies."""
    import ctypes
    with contextlib.suppress(OSError, AttributeError):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                signal.SIGKILL)


def terminate_on_sigterm() -> None:
    """SIGTERM as KeyboardInterrupt: a CI job's cancellation is a Ctrl-C."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, interrupt)
