"""A second module of device functions: calls across modules and back."""
from numba import cuda

import devmod


@cuda.jit(device=True)
def middle(x):
    return devmod.leaf(x) + 100 * (type(cuda).__name__ == "FakeCUDAModule")
