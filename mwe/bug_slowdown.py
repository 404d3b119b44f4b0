"""Reproducer: since the race fix, the CUDA simulator stalls some launches
for seconds on the lock in ``swapped_cuda_module``.

Run with::

    NUMBA_ENABLE_CUDASIM=1 python bug_slowdown.py

The kernel below has each of 32 threads call a device function from another
module 1,000 times, at Python's default switch interval, as a CuBIE kernel
does. It prints the versions in use and the time of each of LAUNCHES
launches. Where every device-function call takes a per-module lock (the
race fix: a lock and a reference count around the swap of ``cuda``), most
launches take about as long as before, but some stall for many times the
median: the threads queue on the lock, and each hand-over waits for the
GIL. The first launch that runs past STACK_AFTER seconds prints the stack
of every thread (``faulthandler``) to stderr: the block's threads wait at
the ``with lock:`` lines of ``swapped_cuda_module``. A launch past LIMIT
seconds prints the stacks again and ends the program.

Exit status: 1 when a launch took more than STALL times the median of the
launches (a stall), or ran past LIMIT; 0 when none did; 2 for anything
else. Launches that fail with the race's ``AttributeError`` (simulators
without the fix) are counted and left out. Stalls come and go with the
machine's load: run it more than once before calling a simulator clean.
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

LAUNCHES = 12
THREADS = 32
CALLS_PER_THREAD = 1000
STALL = 3.0          # a launch over this many times the median is a stall
STACK_AFTER = 5.0    # seconds: the first launch this long prints its stacks
LIMIT = 120.0        # seconds: a launch this long prints stacks and exits

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


def timed_launch(stack_after):
    """Seconds of one launch, or None when it failed with the race."""
    output = np.zeros(THREADS, dtype=np.float32)
    if stack_after:
        faulthandler.dump_traceback_later(stack_after)
    else:
        faulthandler.dump_traceback_later(LIMIT, exit=True)
    started = time.perf_counter()
    try:
        kernel[1, THREADS](output, CALLS_PER_THREAD)
    except AttributeError as error:
        if "has no attribute" not in str(error):
            raise
        return None
    finally:
        faulthandler.cancel_dump_traceback_later()
    seconds = time.perf_counter() - started
    if not (output == 1).all():
        print(f"wrong output: {output}")
        sys.exit(2)
    return seconds


def main():
    print(versions())
    print(f"numba.cuda is {getattr(cuda, 'implementation', 'built-in')}: "
          f"{os.path.dirname(cuda.__file__)}")
    print(f"switch interval {sys.getswitchinterval()} s; {LAUNCHES} launches "
          f"of {THREADS} threads x {CALLS_PER_THREAD} device-function calls")
    sys.stdout.flush()
    seconds, race, stack_after = [], 0, STACK_AFTER
    for launch in range(1, LAUNCHES + 1):
        took = timed_launch(stack_after)
        if took is None:
            race += 1
            print(f"launch {launch}: race AttributeError", flush=True)
            continue
        if stack_after and took > stack_after:
            stack_after = None  # stacks printed once; now only the limit
        seconds.append(took)
        print(f"launch {launch}: {took:.3f} s", flush=True)
    if not seconds:
        print("every launch failed with the race")
        return 2
    median = statistics.median(seconds)
    stalls = [s for s in seconds if s > STALL * median]
    print(f"median {median:.3f} s, max {max(seconds):.3f} s over "
          f"{len(seconds)} launches" +
          (f" ({race} failed with the race)" if race else ""))
    if stalls:
        print(f"SLOWDOWN PRESENT: {len(stalls)} of {len(seconds)} launches "
              f"stalled (over {STALL:g} x the median), the longest "
              f"{max(stalls) / median:.0f} times the median; device-function "
              f"calls queue on the lock in swapped_cuda_module.")
        return 1
    print(f"no launch over {STALL:g} x the median.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
