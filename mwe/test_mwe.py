"""The MWE: CuBIE's buffer-allocation pattern under the CUDA simulator.

Where the simulator race exists, the ``test_buffer_allocation`` cases fail
with::

    AttributeError: tid=[..] ctaid=[..]: module 'numba.cuda' has no attribute 'local'

Any other failure (an assertion on the output, an import error) is a
different problem and reads differently.
"""
import json
import re

import numpy as np
import pytest

# The race's signature, exactly as the simulator words it.
RACE_ERROR = re.compile(
    r"tid=\[(?P<tid>[\d, ]+)\] ctaid=\[(?P<ctaid>[\d, ]+)\]: "
    r"module '[\w.]*cuda' has no attribute 'local'")

# Launches of the failing-threads control: each records its failing thread.
CONTROL_LAUNCHES = 5

# Each case launches the kernel once per thread count in its sequence.
THREAD_COUNT_CASES = [
    (1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12), (13, 14, 15),
    (16, 17, 18), (19, 20, 21), (22, 23, 24), (25, 26, 27), (28, 29, 30),
    (31, 32, 33), (34, 40, 47), (48, 50, 55), (56, 60, 63), (64, 63, 1),
    (32, 16, 8),
]


def launch(kernel, settings, n_threads):
    """Run ``kernel`` over the whole grid with ``n_threads`` working threads
    and return its output."""
    output = np.zeros(settings.grid_threads, dtype=np.float32)
    kernel[settings.blocks, settings.threads_per_block](output, n_threads)
    return output


def assert_first_m_are_one(output, n_threads):
    m = min(n_threads, output.size)
    expected = np.concatenate([np.ones(m), np.zeros(output.size - m)])
    mismatched = np.flatnonzero(output != expected)
    assert mismatched.size == 0, (
        f"wrong output: expected the first {m} of {output.size} outputs to "
        f"be 1 and the rest 0; {mismatched.size} differ, first at index "
        f"{mismatched[0]}")


@pytest.mark.parametrize("thread_counts", THREAD_COUNT_CASES,
                         ids=lambda counts: "-".join(map(str, counts)))
def test_buffer_allocation(kernel, race_settings, thread_counts):
    """CuBIE's pattern: allocator in its own module, early return, then
    allocate and write."""
    for requested in thread_counts:
        n_threads = min(requested, race_settings.grid_threads)
        assert_first_m_are_one(launch(kernel, race_settings, n_threads),
                               n_threads)


def test_syncthreads_trigger(syncing_kernel, race_settings):
    """Deterministic trigger: every thread waits at a barrier inside the
    allocator's device function, so all are inside it at once."""
    n_threads = race_settings.grid_threads
    assert_first_m_are_one(launch(syncing_kernel, race_settings, n_threads),
                           n_threads)


@pytest.mark.parametrize("thread_counts", THREAD_COUNT_CASES[::4],
                         ids=lambda counts: "-".join(map(str, counts)))
def test_control_allocator_in_kernel_module(kernel_local_kernel,
                                            race_settings, thread_counts):
    """Control (a): the same allocator defined in the kernel's module never
    fails, under the same settings."""
    for requested in thread_counts:
        n_threads = min(requested, race_settings.grid_threads)
        assert_first_m_are_one(
            launch(kernel_local_kernel, race_settings, n_threads), n_threads)


def test_control_failing_threads_did_work(kernel, race_settings,
                                          record_property):
    """Control (b): the threads named in the race's error are threads that
    did work (index < n_threads), never threads that returned early.

    Launches with half the grid working; records every failing thread so a
    report can count them. Passes where the bug is fixed too (nothing to
    record).
    """
    n_threads = max(1, race_settings.grid_threads // 2)
    failing = []
    for _ in range(CONTROL_LAUNCHES):
        try:
            launch(kernel, race_settings, n_threads)
        except AttributeError as error:
            match = RACE_ERROR.search(str(error))
            if match is None:
                raise
            tid = [int(x) for x in match["tid"].split(",")]
            ctaid = [int(x) for x in match["ctaid"].split(",")]
            index = ctaid[0] * race_settings.threads_per_block + tid[0]
            failing.append({"tid": tid, "ctaid": ctaid, "index": index})
    record_property("n_threads", n_threads)
    record_property("failing_threads", json.dumps(failing))
    early = [f for f in failing if f["index"] >= n_threads]
    assert not early, f"threads that returned early failed: {early}"
