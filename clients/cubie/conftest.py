"""Options, fixtures and JUnit properties for CuBIE's own code under the
CUDA simulator.

Settings are natural by default: Python's own switch interval, and sizes
like CuBIE's. Every knob is a command-line option (``pytest --help``, group
"cubie client"); the names follow mwe/conftest.py where the knob is the
same. The versions and settings are written into the JUnit XML report as
testsuite properties, so a results table can label its rows.
"""
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from importlib import metadata

import pytest

KNOBS = {
    "switch_interval": (float, None, "seconds between forced thread "
                                     "switches (sys.setswitchinterval); "
                                     "default: Python's own"),
    "threads_per_block": (int, 8, "CUDA threads (Python threads) per block "
                                  "of the allocator kernel"),
    "blocks": (int, 1, "blocks per launch of the allocator kernel"),
    "device_calls": (int, 1000, "allocator calls per thread per launch"),
    "buffer_size": (int, 4, "elements of each buffer the registry lays out"),
    "launches": (int, 100, "allocator-kernel launches, one test each"),
    "solves": (int, 3, "solve_ivp calls, one test each"),
    "solve_runs": (int, 256, "runs (initial-value sets) in each solve"),
    "budget": (float, 60.0, "seconds of tests; once spent, the tests left "
                            "are skipped and say so"),
}
VERSIONED = ("cubie", "numba", "numba-cuda", "cubie-numba-cuda-mlir",
             "numpy", "sympy")


@dataclass(frozen=True)
class ClientSettings:
    switch_interval: float
    threads_per_block: int
    blocks: int
    device_calls: int
    buffer_size: int
    launches: int
    solves: int
    solve_runs: int
    budget: float

    @property
    def grid_threads(self):
        return self.threads_per_block * self.blocks


def pytest_addoption(parser):
    group = parser.getgroup("cubie client")
    for name, (kind, default, text) in KNOBS.items():
        shown = "" if default is None else f" (default: {default})"
        group.addoption("--" + name.replace("_", "-"), type=kind,
                        default=default, metavar="N", help=text + shown)


def _settings_from(config):
    values = {name: config.getoption(name) for name in KNOBS}
    if values["switch_interval"] is None:
        values["switch_interval"] = sys.getswitchinterval()
    if values["switch_interval"] <= 0:
        raise pytest.UsageError("--switch-interval must be positive, got "
                                f"{values['switch_interval']}")
    for name, value in values.items():
        if name not in ("switch_interval", "budget") and value < 1:
            raise pytest.UsageError(f"--{name.replace('_', '-')} must be at "
                                    f"least 1, got {value}")
    if values["budget"] <= 0:
        raise pytest.UsageError(f"--budget must be positive, got "
                                f"{values['budget']}")
    return ClientSettings(**values)


def pytest_configure(config):
    config.client_settings = _settings_from(config)
    config.saved_switch_interval = sys.getswitchinterval()
    # Process-wide on purpose: the simulator's threads are what we preempt.
    sys.setswitchinterval(config.client_settings.switch_interval)


def pytest_unconfigure(config):
    if hasattr(config, "saved_switch_interval"):
        sys.setswitchinterval(config.saved_switch_interval)


def pytest_generate_tests(metafunc):
    settings = metafunc.config.client_settings
    for fixture, count in (("launch", settings.launches),
                           ("solve", settings.solves)):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, range(count),
                                 ids=[f"{fixture}{i}" for i in range(count)])


def pytest_collection_modifyitems(items):
    # Spread the solves among the launches, so that a budget spent early
    # (a slow simulator) leaves evidence of both kinds.
    def kind(item):
        params = getattr(item, "callspec", None)
        return next((name for name in ("launch", "solve")
                     if params is not None and name in params.params), None)
    launches = [item for item in items if kind(item) == "launch"]
    solves = [item for item in items if kind(item) == "solve"]
    if not launches or not solves:
        return
    others = [item for item in items if kind(item) is None]
    step = len(launches) / (len(solves) + 1)
    order, placed = [], 0
    for number, launch in enumerate(launches, 1):
        order.append(launch)
        # Solve k (from 1) goes after launch round(k * step).
        while placed < len(solves) and number >= round((placed + 1) * step):
            order.append(solves[placed])
            placed += 1
    order += solves[placed:]
    items[:] = order + others


def pytest_collection_finish(session):
    session.config.tests_started = time.monotonic()


def pytest_runtest_setup(item):
    # A fixed simulator can take seconds per launch; the budget keeps a
    # row's time bounded (each test also has pytest-timeout's limit).
    config = item.config
    spent = time.monotonic() - getattr(config, "tests_started",
                                       time.monotonic())
    if spent > config.client_settings.budget:
        pytest.skip(f"time budget spent: {spent:.0f} s of tests, past "
                    f"--budget {config.client_settings.budget:g}")


def pytest_report_header(config):
    settings = getattr(config, "client_settings", None)
    if settings is not None:
        return ["cubie client: " + ", ".join(
            f"{k}={v}" for k, v in asdict(settings).items())]


def installed_versions():
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


@pytest.fixture(scope="session", autouse=True)
def client_properties(request, record_testsuite_property):
    """Write the knobs and versions into the JUnit XML report."""
    record_testsuite_property("suite", "cubie")
    for name, value in asdict(request.config.client_settings).items():
        record_testsuite_property(name, value)
    record_testsuite_property("python", sys.version.split()[0])
    for name, version in installed_versions().items():
        record_testsuite_property(name, version)
    record_testsuite_property("cudasim", os.environ.get(
        "NUMBA_ENABLE_CUDASIM", "0"))
    return record_testsuite_property


@pytest.fixture(scope="session")
def buffer_registry(client_properties):
    """CuBIE's buffer-registry module, with the simulator it runs on
    recorded; skipped, with the reason, when there is nothing to run on."""
    from cubie import buffer_registry
    cuda = buffer_registry.cuda
    client_properties("cuda_module", getattr(cuda, "__name__", ""))
    client_properties("cuda_module_path", getattr(cuda, "__file__", ""))
    if not cuda.is_available():
        pytest.skip("no CUDA GPU: NUMBA_ENABLE_CUDASIM is not 1 and no CUDA "
                    "device was found")
    return buffer_registry


@pytest.fixture(scope="session")
def client_settings(request):
    return request.config.client_settings


@pytest.fixture(autouse=True)
def join_straggling_threads():
    """After a failed launch the simulator raises at once and leaves the
    block's other threads to finish; wait for them, so that they cannot
    touch the next test's launch."""
    yield
    deadline = time.monotonic() + 5
    for thread in threading.enumerate():
        if type(thread).__name__ == "BlockThread":
            # Bounded: a thread left waiting at a barrier never finishes.
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
