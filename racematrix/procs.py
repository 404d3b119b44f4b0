"""Child processes: a command run in a virtual environment with its output
streamed, its process group ended on an interrupt, and its death tied to
ours."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def caching_environ() -> dict[str, str]:
    """This process's environment without PYTHONDONTWRITEBYTECODE (set on
    some machines), for a Python that runs in environments that are ours
    to cache in: uv installs no bytecode, so each run would otherwise
    compile what it imports from source again (numba, about 1 s a run;
    SciPy and matplotlib for the report, about 2.5 s)."""
    return {key: value for key, value in os.environ.items()
            if key != "PYTHONDONTWRITEBYTECODE"}


def venv_environ(bin_dir: str | Path, extra_env: dict[str, str]
                 ) -> dict[str, str]:
    """The process environment of a command run inside a virtual env
    (``caching_environ``)."""
    environ = caching_environ()
    bin_dir = Path(bin_dir).absolute()  # commands may run from elsewhere
    return {**environ, **extra_env,
            "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(bin_dir.parent)}


def run_streaming(session: Any, command: list, extra_env: dict[str, str],
                  echo: bool = True, cwd: str | Path | None = None
                  ) -> tuple[int, list[str]]:
    """Run a command in the session's environment, passing its output
    through (unless ``echo`` is false); returns (exit code, its last
    lines). An interrupt (Ctrl-C, SIGTERM) ends the command and its threads
    before it goes on up, and the command dies with this process even if
    this process is killed outright."""
    env = venv_environ(session.bin, extra_env)
    if echo:  # quiet: the caller says what came of it
        session.log(" ".join(map(str, command)))
    tail = []
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True,
                               cwd=cwd,
                               preexec_fn=die_with_parent)
    assert process.stdout is not None  # stdout=PIPE
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
        process.stdout.close()
    return process.returncode, tail


def stop_process_group(process: subprocess.Popen,
                       grace: float = 2.0) -> None:
    """End ``process`` and everything in its process group: SIGTERM, then
    SIGKILL after ``grace`` seconds. A simulated kernel's threads do not
    stop for a KeyboardInterrupt in the main thread; a signal to the whole
    group does."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when its parent
    dies (nox killed by SIGKILL, a CI runner's cancellation); elsewhere a
    no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    with contextlib.suppress(OSError, AttributeError):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                signal.SIGKILL)


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt in this (main) thread, so that a
    CI job's cancellation stops a run the way Ctrl-C does: children ended,
    finished rows kept. Call from the main thread."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, interrupt)
