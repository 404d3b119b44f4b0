"""Device functions of a module that is not the kernels' (the simulator
swaps its ``cuda`` global only while, or once, they run): what their code
sees of the module's globals."""
import sys

from numba import cuda

import devmod_other

CONST = 7
COUNTER = 0
REBOUND = 1


@cuda.jit(device=True)
def eval_const():
    return eval("CONST")


@cuda.jit(device=True)
def pdb_print_const():
    # What pdb's `p CONST` runs: eval in the frame's globals and locals.
    frame = sys._getframe()
    return eval("CONST", frame.f_globals, frame.f_locals)


@cuda.jit(device=True)
def frame_globals_are_module_dict():
    return sys._getframe().f_globals is sys.modules[__name__].__dict__


@cuda.jit(device=True)
def globals_view():
    names = globals()
    return ("CONST" in names, names.get("CONST"), type(names).__name__)


@cuda.jit(device=True)
def cuda_seen():
    return type(cuda).__name__, cuda.threadIdx.x


@cuda.jit(device=True)
def write_counter(value):
    global COUNTER
    COUNTER = value


@cuda.jit(device=True)
def read_counter():
    return COUNTER


@cuda.jit(device=True)
def read_rebound():
    return REBOUND


@cuda.jit(device=True)
def read_added():
    return globals().get("ADDED", "absent"), eval("ADDED")


@cuda.jit(device=True)
def factorial(n):
    # The fake module at every depth of the recursion.
    if n <= 1:
        return 1, type(cuda).__name__
    below, seen = factorial(n - 1)
    return n * below, seen


@cuda.jit(device=True)
def outer(x):
    return devmod_other.middle(x) + 1


@cuda.jit(device=True)
def leaf(x):
    return x * 10 + cuda.threadIdx.x


def make_scaled_sum(factor):
    """CuBIE's factory pattern: a device function built in a closure over
    settings, reaching `cuda` through the module's globals."""

    @cuda.jit(device=True)
    def scaled_sum(values):
        scratch = cuda.local.array(2, dtype=values.dtype)
        scratch[0] = values[0] * factor
        scratch[1] = values[1] * factor
        return scratch[0] + scratch[1]

    return scaled_sum


@cuda.jit(device=True)
def raise_inside():
    raise ValueError("raised in a device function")


@cuda.jit(device=True)
def plain(x):
    return x + 1


@cuda.jit(device=True)
def alias_seen():
    return type(globals()["late_alias"]).__name__
