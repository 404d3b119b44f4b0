"""``python bug_slowdown.py``: launches with the installed simulator's
``swapped_cuda_module`` alternate with launches with numba-cuda 0.24.0's
(no lock), put in at run time. Exit status 1 where the installed one's
median launch is at least 1.5 times as long, or a launch runs past
``LIMIT`` seconds (stopped there). The device function reads no ``cuda``."""
import os

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported

import contextlib
import statistics
import sys
import threading
import time
import types
from importlib.metadata import distributions

import numpy as np
from numba import cuda
from numba.cuda.simulator import kernel as simulator

THREADS, CALLS, PAIRS = 32, 1000, 8  # PAIRS even: each side first as often
LIMIT = 10  # seconds per launch; one takes about 0.5 s unless it stalls

device = types.ModuleType("device")  # a module of its own, as in a project
exec("from numba import cuda\n@cuda.jit(device=True)\n"
     "def bump(cell):\n    cell[0] += 1.0\n", device.__dict__)


@cuda.jit
def kernel(out, calls):
    for _ in range(calls):
        device.bump(out[cuda.grid(1)])


@contextlib.contextmanager
def unlocked_swap(fn, fake_cuda_module):  # numba-cuda 0.24.0's, verbatim
    from numba import cuda

    fn_globs = fn.__globals__
    orig = dict((k, v) for k, v in fn_globs.items() if v is cuda)
    repl = dict((k, fake_cuda_module) for k, v in orig.items())
    fn_globs.update(repl)
    try:
        yield
    finally:
        fn_globs.update(orig)


def stopped(name):
    print(f"{name}: a launch ran past {LIMIT} s: stopped", flush=True)
    os._exit(1)  # the simulator's threads cannot be interrupted


def launch_seconds(name, swap):
    simulator.swapped_cuda_module = swap
    out = np.zeros((THREADS, 1))
    watchdog = threading.Timer(LIMIT, stopped, (name,))
    watchdog.start()
    started = time.perf_counter()
    kernel[1, THREADS](out, CALLS)
    watchdog.cancel()
    assert (out == CALLS).all(), out
    return time.perf_counter() - started


found = {d.metadata["Name"].lower(): d.version for d in distributions()}
print("Python", sys.version.split()[0], *(f"{name} {found.get(name, '-')}"
                                         for name in ("numba", "numba-cuda")))
swaps = {"installed": simulator.swapped_cuda_module, "unlocked": unlocked_swap}
times = {name: [] for name in swaps}
launch_seconds("unlocked", unlocked_swap)  # warm up: the first sets things up
for pair in range(PAIRS):  # in turn, each side first every other time
    for name in sorted(swaps, reverse=pair % 2 == 1):
        times[name].append(launch_seconds(name, swaps[name]))
median = {name: statistics.median(seconds) for name, seconds in times.items()}
for name, seconds in times.items():
    print(f"{name:>9}: median {median[name]:.3f} s, max {max(seconds):.3f} s,"
          f" {THREADS * CALLS / median[name]:,.0f} device calls/s")
ratio = median["installed"] / median["unlocked"]
slower = ratio >= 1.5
print(f"installed / unlocked: {ratio:.2f}x, "
      + ("clearly slower (1.5x or more)" if slower else "not clearly slower"))
sys.exit(1 if slower else 0)
