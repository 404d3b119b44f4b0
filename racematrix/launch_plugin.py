"""The launch price in a suite's own pytest process, after its tests: a
pytest plugin handed to the suite from outside (``-p
racematrix.launch_plugin``, the project on PYTHONPATH), so that the suite
stays the reproducer.

``--launch-time-json PATH [--launch-time-options "..."]`` runs
``launch_time``'s pairs once every test has run and the JUnit XML is
written, so the tests' rates are untouched and numba is imported once. The
options are ``launch_time``'s; the record is the one it prints.
"""
from __future__ import annotations

import json
import os
import shlex

import pytest

from . import launch_time


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


@pytest.hookimpl(trylast=True)  # after the JUnit XML is written
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("launch_time_json")
    if not path or session.config.option.collectonly or \
            not session.testscollected:
        return  # no test ran here: nothing to time after
    record = launch_time.price(session.config.launch_time_args)  # type: ignore[attr-defined]
    with open(f"{path}.part", "w") as stream:
        json.dump({"launch_seconds": record}, stream)
    os.replace(f"{path}.part", path)
