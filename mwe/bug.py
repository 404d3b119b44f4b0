"""CUDA simulator race: "module 'numba.cuda' has no attribute 'local'".

Run as ``python bug.py``. Exit status 1: the simulator raised the error
(the race is there); 0: no error in 100 launches.

Every simulated thread is a Python thread, and each call of a device
function swaps the ``cuda`` globals of the function's module for the
kernel's fake module and back. Two threads inside device functions of one
module (not the kernel's) can restore the real ``numba.cuda`` under each
other's feet.
"""
import os

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported

import sys
import types
from importlib.metadata import distributions

import numpy as np
from numba import cuda

sys.setswitchinterval(1e-6)  # switch threads often: seconds instead of hours

# The device function lives in a module of its own, as in a real project.
allocators = types.ModuleType("allocators")
exec(
    "from numba import cuda, float32\n"
    "@cuda.jit(device=True)\n"
    "def allocate():\n"
    "    buffer = cuda.local.array(4, float32)\n"
    "    buffer[0] = 1.0\n"
    "    return buffer\n",
    allocators.__dict__,
)


@cuda.jit
def kernel(out):
    for _ in range(8):
        buffer = allocators.allocate()
    out[cuda.grid(1)] = buffer[0]


found = {d.metadata["Name"].lower(): d.version for d in distributions()}
print("Python", sys.version.split()[0], *(f"{name} {found.get(name, '-')}"
                                         for name in ("numba", "numba-cuda")))
for launch in range(1, 101):
    try:
        kernel[2, 32](np.zeros(64, np.float32))
    except AttributeError as error:
        print(f"launch {launch}: AttributeError: {error}")
        sys.exit(1)
print("no error in 100 launches")
