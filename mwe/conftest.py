"""Fixtures and options for the simulator-race MWE.

Fixture chain, as in CuBIE: race_settings -> allocator_factory ->
kernel_factory -> kernel. Every knob is a command-line option (see
``pytest --help``, group "simulator race") and is written into the JUnit XML
report as a testsuite property, so a results table can label its rows.
"""
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass

import pytest

from allocator_factory import BufferAllocatorFactory, SyncingAllocatorFactory
from kernel_factory import KernelFactory, KernelLocalAllocatorFactory

# A preset fixes every knob; an explicit option overrides one knob of it.
# "faithful" uses CuBIE-like sizes and Python's default switch interval, to
# show the natural (rare) rate. "aggressive" raises the preemption rate and
# the number of device-function calls so that one run of the suite fails.
PRESETS = {
    "aggressive": dict(switch_interval=1e-6, threads_per_block=32, blocks=2,
                       device_calls=8, buffer_size=4),
    "faithful": dict(switch_interval=None, threads_per_block=32, blocks=1,
                     device_calls=1, buffer_size=4),
}
KNOBS = {
    "switch_interval": (float, "seconds between forced thread switches "
                               "(sys.setswitchinterval); Python's default is "
                               "0.005"),
    "threads_per_block": (int, "CUDA threads (Python threads) per block"),
    "blocks": (int, "blocks per launch; the simulator runs them one by one"),
    "device_calls": (int, "allocator calls per working thread per launch"),
    "buffer_size": (int, "float32 elements per local buffer"),
}


@dataclass(frozen=True)
class RaceSettings:
    preset: str
    switch_interval: float
    threads_per_block: int
    blocks: int
    device_calls: int
    buffer_size: int

    @property
    def grid_threads(self):
        return self.threads_per_block * self.blocks


def pytest_addoption(parser):
    group = parser.getgroup("simulator race")
    group.addoption("--preset", choices=sorted(PRESETS), default="aggressive",
                    help="starting values of every knob below "
                         "(default: aggressive)")
    for name, (kind, text) in KNOBS.items():
        group.addoption("--" + name.replace("_", "-"), type=kind, default=None,
                        metavar="N", help=text + " (overrides the preset)")


def _settings_from(config):
    preset = config.getoption("preset")
    values = dict(PRESETS[preset])
    for name in KNOBS:
        given = config.getoption(name)
        if given is not None:
            values[name] = given
    if values["switch_interval"] is None:
        values["switch_interval"] = sys.getswitchinterval()
    for name in ("threads_per_block", "blocks", "device_calls", "buffer_size"):
        if values[name] < 1:
            raise pytest.UsageError(f"--{name.replace('_', '-')} must be at "
                                    f"least 1, got {values[name]}")
    if values["switch_interval"] <= 0:
        raise pytest.UsageError("--switch-interval must be positive")
    return RaceSettings(preset=preset, **values)


def pytest_configure(config):
    config.race_settings = _settings_from(config)
    config.saved_switch_interval = sys.getswitchinterval()
    # Process-wide on purpose: the simulator's threads are what we preempt.
    sys.setswitchinterval(config.race_settings.switch_interval)


def pytest_unconfigure(config):
    if hasattr(config, "saved_switch_interval"):
        sys.setswitchinterval(config.saved_switch_interval)


def pytest_report_header(config):
    settings = getattr(config, "race_settings", None)
    if settings is not None:
        return ["simulator race: " + ", ".join(
            f"{k}={v}" for k, v in asdict(settings).items())]


def _versions():
    from importlib import metadata
    found = {}
    for name in ("numba", "numba-cuda", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


@pytest.fixture(scope="session", autouse=True)
def race_properties(request, record_testsuite_property):
    """Write the knobs and versions into the JUnit XML report."""
    for name, value in asdict(request.config.race_settings).items():
        record_testsuite_property(name, value)
    record_testsuite_property("python", sys.version.split()[0])
    for name, version in _versions().items():
        record_testsuite_property(name, version)
    record_testsuite_property("cudasim", os.environ.get(
        "NUMBA_ENABLE_CUDASIM", "0"))


@pytest.fixture(scope="session", autouse=True)
def cuda_target(race_properties):
    """Skip everything, with the reason, when there is nothing to run on."""
    from numba import cuda
    if not cuda.is_available():
        pytest.skip("no CUDA GPU: NUMBA_ENABLE_CUDASIM is not 1 and no CUDA "
                    "device was found")
    return cuda


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


@pytest.fixture
def race_settings(request):
    return request.config.race_settings


@pytest.fixture
def allocator_factory(race_settings):
    return BufferAllocatorFactory(race_settings.buffer_size)


@pytest.fixture
def kernel_factory(allocator_factory, race_settings):
    return KernelFactory(allocator_factory, race_settings.device_calls)


@pytest.fixture
def kernel(kernel_factory):
    return kernel_factory.build()


@pytest.fixture
def syncing_kernel(race_settings):
    # One allocation per thread: the barrier is then always behind every
    # thread before any leaves, so the race can only strike at `cuda.local`
    # (with more calls a thread could meet the real module already at
    # `cuda.syncthreads` of its next call: the same race, another message).
    factory = SyncingAllocatorFactory(race_settings.buffer_size)
    return KernelFactory(factory, device_calls=1).build()


@pytest.fixture
def kernel_local_kernel(race_settings):
    factory = KernelLocalAllocatorFactory(race_settings.buffer_size)
    return KernelFactory(factory, race_settings.device_calls).build()
