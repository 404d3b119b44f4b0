"""The launch price in a suite's own pytest process, after its tests and
its JUnit XML (``-p racematrix.launch_plugin --launch-time-json PATH
[--launch-time-options "--pairs 3"]``, the project on PYTHONPATH): the
rates stay untouched, numba is imported once, the suite stays the
reproducer. The lock's price shows only with a core free, so under ``nox
-j`` each row's tests hold a shared flock on ``LOCK_FILE`` and the pairs of
a swap other than the unlocked one take it exclusive, for at most
``LOCK_WAIT`` s (the record's ``lock_wait`` and ``exclusive`` say how)."""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import tempfile
import time

import pytest

from . import launch_time

LOCK_FILE = os.path.join(tempfile.gettempdir(), "racematrix-launch.lock")
LOCK_WAIT = 60.0


def _take(config: pytest.Config, mode: int) -> bool:
    """Wait up to LOCK_WAIT for flock ``mode``; True if held."""
    since = time.monotonic()
    while time.monotonic() - since < LOCK_WAIT:
        try:
            fcntl.flock(config.launch_lock, mode | fcntl.LOCK_NB)  # type: ignore[attr-defined]
            return True
        except OSError:
            time.sleep(0.05)
    return False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("launch time", "time launches after the tests")
    group.addoption("--launch-time-json", default=None, metavar="PATH",
                    help="after the tests, time launches of the MWE's kernel "
                         "in this process and write the record here")
    group.addoption("--launch-time-options", default="", metavar="OPTIONS",
                    help="racematrix/launch_time.py's options for them")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("launch_time_json"):
        try:
            config.launch_time_args = launch_time.parse_args(  # type: ignore[attr-defined]
                shlex.split(config.getoption("launch_time_options")))
        except SystemExit:
            raise pytest.UsageError("--launch-time-options: not valid "
                                    "options of racematrix/launch_time.py "
                                    "(see its --help)") from None
        config.launch_lock = open(LOCK_FILE, "a")  # type: ignore[attr-defined]
        _take(config, fcntl.LOCK_SH)  # the tests: shared


@pytest.hookimpl(trylast=True)  # after the JUnit XML is written
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config, path = session.config, session.config.getoption(
        "launch_time_json")
    if not path or config.option.collectonly or not session.testscollected:
        return  # no test ran here: nothing to time after
    waited, exclusive = time.monotonic(), False
    # The unlocked swap's own code reads alike with or without a free core:
    # it keeps its shared lock; any other swap waits for the others' tests.
    if not launch_time.runs_unlocked_code():
        fcntl.flock(config.launch_lock, fcntl.LOCK_UN)  # type: ignore[attr-defined]
        exclusive = _take(config, fcntl.LOCK_EX)
    waited = round(time.monotonic() - waited, 2)
    try:
        record = launch_time.price(config.launch_time_args)  # type: ignore[attr-defined]
    finally:
        config.launch_lock.close()  # type: ignore[attr-defined]
    record.update(lock_wait=waited, exclusive=exclusive)
    with open(f"{path}.part", "w") as stream:
        json.dump({"launch_seconds": record}, stream)
    os.replace(f"{path}.part", path)
