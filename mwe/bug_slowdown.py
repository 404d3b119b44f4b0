"""Reproducer: the CUDA simulator's lock in ``swapped_cuda_module`` makes
launches erratically slow.

Run with::

    NUMBA_ENABLE_CUDASIM=1 python bug_slowdown.py

The kernel below has each of 32 threads call a device function from another
module 1,000 times, at Python's default switch interval, as a CuBIE kernel
does. The same 32,000 calls are also made by a kernel of one thread, where
no two threads can meet. It prints the versions in use and the time of
every launch of both, then compares them.

Since the race fix (a per-module lock and reference count around every
device-function call), the 32-thread launches are much slower than the
same work on one thread, and vary from launch to launch; on a simulator
without the lock they take about as long. A launch still running after
LIMIT seconds dumps the stack of every thread (``faulthandler``) and ends
the program: the threads wait at the ``with lock:`` lines of
``swapped_cuda_module``.

Exit status: 1 when the 32-thread launches are slower than SLOWDOWN times
the one-thread launches (median against median), or one ran past LIMIT;
0 otherwise; 2 for anything else. Launches that fail with the race's
``AttributeError`` (simulators without the fix) are counted and left out.
"""
import faulthandler
import os
import statistics
import sys
import time
import types

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    sys.exit("run with NUMBA_ENABLE_CUDASIM=1: this shows a slowdown of the "
             "CUDA simulator")

from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402
from numba import cuda, float32  # noqa: E402

LAUNCHES = 8
THREADS = 32
CALLS_PER_THREAD = 1000
LIMIT = 60.0      # seconds: a launch longer than this dumps stacks and exits
SLOWDOWN = 3.0    # median ratio counted as the slowdown

# --- The device function's module (in a real project: its own .py file). ---
DEVICE_MODULE_SOURCE = """
from numba import cuda, float32

@cuda.jit(device=True, inline=True)
def allocate_buffer():
    array = cuda.local.array(4, float32)
    for i in range(4):
        array[i] = float32(0.0)
    return array
"""
device_functions = types.ModuleType("device_functions")
exec(DEVICE_MODULE_SOURCE, device_functions.__dict__)


# --- The kernel's module (this file). ---
@cuda.jit
def kernel(output, calls):
    i = cuda.grid(1)
    for _ in range(calls):
        buffer = device_functions.allocate_buffer()
        buffer[0] = float32(1.0)
    output[i] = buffer[0]


def versions():
    found = [f"Python {sys.version.split()[0]}"]
    for name in ("numba", "numba-cuda", "numpy"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def timed_launch(threads, calls):
    """Seconds of one launch, or None when it failed with the race."""
    output = np.zeros(threads, dtype=np.float32)
    faulthandler.dump_traceback_later(LIMIT, exit=True)
    started = time.perf_counter()
    try:
        kernel[1, threads](output, calls)
    except AttributeError as error:
        if "has no attribute" not in str(error):
            raise
        return None
    finally:
        faulthandler.cancel_dump_traceback_later()
    seconds = time.perf_counter() - started
    if not (output == 1).all():
        sys.exit(2)
    return seconds


def main():
    print(versions())
    print(f"numba.cuda is {getattr(cuda, 'implementation', 'built-in')}: "
          f"{os.path.dirname(cuda.__file__)}")
    print(f"switch interval {sys.getswitchinterval()} s; {LAUNCHES} launches "
          f"of each; a launch past {LIMIT:g} s dumps stacks and exits")
    sys.stdout.flush()
    times = {}
    for threads, calls in ((1, THREADS * CALLS_PER_THREAD),
                           (THREADS, CALLS_PER_THREAD)):
        label = f"{threads} thread{'s' * (threads > 1)} x {calls} calls"
        seconds, race = [], 0
        for _ in range(LAUNCHES):
            took = timed_launch(threads, calls)
            if took is None:
                race += 1
            else:
                seconds.append(took)
            print(f"{label}: " + ("race AttributeError" if took is None
                                  else f"{took:.3f} s"), flush=True)
        if not seconds:
            print(f"{label}: every launch failed with the race")
            return 2
        times[threads] = statistics.median(seconds)
        print(f"{label}: median {times[threads]:.3f} s, max "
              f"{max(seconds):.3f} s over {len(seconds)} launches"
              + (f" ({race} failed with the race)" if race else ""))
    ratio = times[THREADS] / times[1]
    print(f"the same calls take {ratio:.1f} times as long on {THREADS} "
          f"threads as on one")
    if ratio > SLOWDOWN:
        print(f"SLOWDOWN PRESENT: more than {SLOWDOWN:g} times; device-"
              f"function calls of the threads serialize on the lock in "
              f"swapped_cuda_module.")
        return 1
    print("no slowdown beyond the threads' own overhead.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
