"""Reproducer: a race in Numba's CUDA simulator swaps the wrong ``cuda``.

Run with::

    NUMBA_ENABLE_CUDASIM=1 python bug.py

It prints the versions in use, then launches a small kernel until the
simulator raises::

    AttributeError: tid=[..] ctaid=[..]: module 'numba.cuda' has no attribute 'local'

Exit status: 1 when the error appears (the bug is present), 0 when it does
not appear within the launches below (the bug is fixed), 2 for anything else.

The race needs a device function whose module is *not* the kernel's module.
A real project has the two in separate files; to keep this reproducer in one
file, the device function's module is made below from a string.
"""
import os
import sys
import types

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    sys.exit("run with NUMBA_ENABLE_CUDASIM=1: this reproduces a bug in the "
             "CUDA simulator")

from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402
from numba import cuda, float32  # noqa: E402

LAUNCHES = 100
THREADS_PER_BLOCK = 32
BLOCKS = 2
ALLOCATIONS_PER_THREAD = 8

# Threads are preempted every microsecond instead of every 5 ms: the race is
# the same, it just shows up in seconds instead of hours.
sys.setswitchinterval(1e-6)

# --- The allocator's module (in a real project: its own .py file). ---
ALLOCATOR_MODULE_SOURCE = """
from numba import cuda, float32

USE_SHARED = False      # compile-time constants, as in CuBIE's buffer
USE_PERSISTENT = False  # registry: this buffer lives in local memory

@cuda.jit(device=True, inline=True)
def allocate_buffer(shared_parent, persistent_parent):
    if USE_SHARED:
        array = shared_parent[0:4]
    elif USE_PERSISTENT:
        array = persistent_parent[0:4]
    else:
        array = cuda.local.array(4, float32)
    for i in range(4):
        array[i] = float32(0.0)
    return array
"""
allocators = types.ModuleType("allocators")
exec(ALLOCATOR_MODULE_SOURCE, allocators.__dict__)


# --- The kernel's module (this file). ---
@cuda.jit
def kernel(output, n_threads):
    i = cuda.grid(1)
    if i >= n_threads:
        return
    shared = cuda.shared.array(4, float32)
    persistent = cuda.local.array(4, float32)
    for _ in range(ALLOCATIONS_PER_THREAD):
        buffer = allocators.allocate_buffer(shared, persistent)
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


def main():
    print(versions())
    print(f"numba.cuda is {getattr(cuda, 'implementation', 'built-in')}: "
          f"{os.path.dirname(cuda.__file__)}")
    n_threads = THREADS_PER_BLOCK * BLOCKS
    for launch in range(1, LAUNCHES + 1):
        output = np.zeros(n_threads, dtype=np.float32)
        try:
            kernel[BLOCKS, THREADS_PER_BLOCK](output, n_threads)
        except AttributeError as error:
            if "has no attribute 'local'" not in str(error):
                raise
            print(f"launch {launch}: {type(error).__name__}: {error}")
            print("BUG PRESENT: the simulator restored the real numba.cuda "
                  "while another thread was still inside a device function.")
            return 1
        if not (output == 1).all():
            print(f"launch {launch}: wrong output {output}")
            return 2
    print(f"not reproduced in {LAUNCHES} launches: the bug looks fixed here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
