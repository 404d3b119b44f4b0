"""The launch price in a suite's own pytest process, after its tests: a
pytest plugin handed to the suite from outside (``-p
racematrix.launch_plugin``, the project on PYTHONPATH), so that the suite
stays the reproducer.

``--launch-time-json PATH [--launch-time-options "..."]`` runs
``launch_time``'s pairs once every test has run and the JUnit XML is
written, so the tests' rates are untouched and numba is imported once. The
options are ``launch_time``'s; the record is the one it prints.

The lock's price shows only with a core free, so under ``nox -j`` the
pairs wait for the other rows' tests: each row's test phase holds a shared
flock on one machine-wide file (``LOCK_FILE``) and its pairs take it
exclusive, for at most ``LOCK_WAIT`` seconds (then they run anyway; the
record's ``lock_wait`` and ``exclusive`` say how it went).
"""
from __future__ import annotations

import json
import os
import shlex
import tempfile
import time

import pytest

from . import launch_time

try:
    import fcntl
except ImportError:  # not POSIX: the pairs run without waiting
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = os.path.join(tempfile.gettempdir(), "racematrix-launch.lock")
LOCK_WAIT = 60.0


def _lock(config: pytest.Config, mode: int) -> bool:
    """flock ``mode`` (non-blocking) on the row's lock file; True if held."""
    stream = getattr(config, "launch_lock", None)
    if stream is None:
        return False
    try:
        fcntl.flock(stream, mode | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("launch time", "time launches after the tests")
    group.addoption("--launch-time-json", default=None, metavar="PATH",
                    help="after the tests, time launches of the MWE's kernel "
                         "in this process and write the record here")
    group.addoption("--launch-time-options", default="", metavar="OPTIONS",
                    help="racematrix/launch_time.py's options for those "
                         "launches, e.g. '--pairs 3'")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("launch_time_json"):
        try:
            config.launch_time_args = launch_time.parse_args(  # type: ignore[attr-defined]
                shlex.split(config.getoption("launch_time_options")))
        except SystemExit:
            raise pytest.UsageError("--launch-time-options: not valid "
                                    "options of racematrix/launch_time.py "
                                    "(see its --help)") from None
        if fcntl is not None:  # the test phase: shared
            config.launch_lock = open(LOCK_FILE, "a")  # type: ignore[attr-defined]
            since = time.monotonic()  # another row's pairs may be running
            while not _lock(config, fcntl.LOCK_SH) and \
                    time.monotonic() - since < LOCK_WAIT:
                time.sleep(0.05)


@pytest.hookimpl(trylast=True)  # after the JUnit XML is written
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("launch_time_json")
    if not path or session.config.option.collectonly or \
            not session.testscollected:
        return  # no test ran here: nothing to time after
    config = session.config
    waited, exclusive = time.monotonic(), False
    if fcntl is not None:
        fcntl.flock(config.launch_lock, fcntl.LOCK_UN)  # type: ignore[attr-defined]
        while not (exclusive := _lock(config, fcntl.LOCK_EX)) and \
                time.monotonic() - waited < LOCK_WAIT:
            time.sleep(0.05)
    waited = round(time.monotonic() - waited, 2)
    try:
        record = launch_time.price(config.launch_time_args)  # type: ignore[attr-defined]
    finally:
        if fcntl is not None:
            config.launch_lock.close()  # type: ignore[attr-defined]
    record.update(lock_wait=waited, exclusive=exclusive)
    with open(f"{path}.part", "w") as stream:
        json.dump({"launch_seconds": record}, stream)
    os.replace(f"{path}.part", path)
