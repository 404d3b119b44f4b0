"""Launch time in the suite's own process, after its tests (pytest plugin,
loaded by conftest.py; idle unless asked).

``pytest mwe --launch-time-json PATH [--launch-time-options "..."]`` times
launches of ``launch_time.py``'s kernel once every test has run and the
JUnit XML is written, so the tests' rates are untouched and numba is
imported once: each launch runs in a fork of this process (where
``os.fork`` exists), and a fork past the limit is killed there. The
options are ``launch_time.py``'s (``--launches``, ``--max-launches``,
``--reference-median``, ``--reference-p95``, ``--limit``, ``--budget``,
``--stack-file``); the record is the one that script prints.
"""
import json
import os
import shlex

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("launch time", "time launches after the tests")
    group.addoption("--launch-time-json", default=None, metavar="PATH",
                    help="after the tests, time launches of launch_time.py's "
                         "kernel in this process and write the record here")
    group.addoption("--launch-time-options", default="", metavar="OPTIONS",
                    help="launch_time.py's options for those launches, e.g. "
                         "'--launches 3 --max-launches 10'")


def pytest_configure(config):
    if config.getoption("launch_time_json"):
        import launch_time
        try:
            config.launch_time_args = launch_time.parse_args(
                shlex.split(config.getoption("launch_time_options")))
        except SystemExit:
            raise pytest.UsageError("--launch-time-options: not valid "
                                    "options of launch_time.py (see "
                                    "`python launch_time.py --help`)")


@pytest.hookimpl(trylast=True)  # after the JUnit XML is written
def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("launch_time_json")
    if not path or session.config.option.collectonly or \
            not session.testscollected:
        return  # no test ran here: nothing to time after
    import launch_time
    record = launch_time.measure_here(session.config.launch_time_args)
    with open(f"{path}.part", "w") as stream:
        json.dump({"launch_seconds": record}, stream)
    os.replace(f"{path}.part", path)
