"""What device code sees under the CUDA simulator: module globals, a
debugger's view, `global` writes, globals rebound or added, recursion,
calls across modules, closures, exceptions, and launches from two host
threads. Device functions live in another module (devmod.py) than the
kernels, as in CuBIE. One simulated thread wherever a device function of
devmod reads `cuda`, so the race of the unfixed releases cannot interfere."""
import sys
import threading

import numpy as np
from numba import cuda

import devmod
import devmod_other
from conftest import outcome

import numba.cuda as real_cuda


def launch(kernel, *args, threads=1):
    out = [None] * threads
    kernel[1, threads](out, *args)
    return out


def fake_module_name():
    @cuda.jit
    def kernel(out):
        out[0] = type(cuda).__name__

    return launch(kernel)[0]


def test_eval_of_module_constant(observe):
    @cuda.jit
    def kernel(out):
        out[0] = devmod.eval_const()

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [7]}


def test_debugger_print_of_module_constant(observe):
    @cuda.jit
    def kernel(out):
        out[0] = devmod.pdb_print_const()

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [7]}


def test_frame_globals_are_the_module_dict(observe):
    @cuda.jit
    def kernel(out):
        out[0] = devmod.frame_globals_are_module_dict()

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [True]}


def test_globals_mapping_in_device_function(observe):
    @cuda.jit
    def kernel(out):
        out[0] = list(devmod.globals_view())

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [[True, 7, "dict"]]}


def test_cuda_seen_by_device_function(observe):
    @cuda.jit
    def kernel(out):
        out[0] = list(devmod.cuda_seen())

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [[fake_module_name(), 0]]}


def test_global_write_from_kernel(observe):
    @cuda.jit
    def kernel(out):
        devmod.write_counter(5)
        out[0] = devmod.read_counter()

    devmod.COUNTER = 0
    inside = outcome(launch, kernel)
    seen = observe({"inside": inside, "host_after": devmod.COUNTER})
    assert seen == {"inside": {"value": [5]}, "host_after": 5}


def test_global_write_from_host_code(observe):
    devmod.COUNTER = 0
    called = outcome(devmod.write_counter, 9)
    seen = observe({"call": called, "host_after": devmod.COUNTER,
                    "read_from_host": outcome(devmod.read_counter)})
    assert seen == {"call": {"value": None}, "host_after": 9,
                    "read_from_host": {"value": 9}}


def test_device_function_from_host_code(observe):
    seen = observe({"plain": outcome(devmod.plain, 1),
                    "reads_cuda": outcome(devmod.cuda_seen),
                    "cuda_after": devmod.cuda is real_cuda})
    assert seen["plain"] == {"value": 2}
    assert seen["cuda_after"] is True


def test_global_rebound_between_launches(observe):
    @cuda.jit
    def kernel(out):
        out[0] = devmod.read_rebound()

    devmod.REBOUND = 1
    first = outcome(launch, kernel)
    devmod.REBOUND = 2
    second = outcome(launch, kernel)
    seen = observe([first, second])
    assert seen == [{"value": [1]}, {"value": [2]}]


def test_global_rebound_during_launch(observe):
    @cuda.jit
    def kernel(out):
        before = devmod.read_rebound()
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            devmod.REBOUND = 42
        cuda.syncthreads()
        out[cuda.threadIdx.x] = [before, devmod.read_rebound()]

    devmod.REBOUND = 1
    seen = observe(outcome(launch, kernel, threads=2))
    devmod.REBOUND = 1
    assert seen == {"value": [[1, 42], [1, 42]]}


def test_global_added_during_launch(observe):
    @cuda.jit
    def kernel(out):
        devmod.read_rebound()
        if cuda.threadIdx.x == 0:
            devmod.ADDED = 11
        cuda.syncthreads()
        out[cuda.threadIdx.x] = list(devmod.read_added())

    vars(devmod).pop("ADDED", None)
    seen = observe(outcome(launch, kernel, threads=2))
    vars(devmod).pop("ADDED", None)
    assert seen == {"value": [[11, 11], [11, 11]]}


def test_recursive_device_function(observe):
    @cuda.jit
    def kernel(out):
        out[0] = list(devmod.factorial(5))

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [[120, fake_module_name()]]}


def test_nested_calls_across_modules(observe):
    @cuda.jit
    def kernel(out):
        out[0] = devmod.outer(3)

    seen = observe(outcome(launch, kernel))
    assert seen == {"value": [131]}


def test_closure_from_a_factory(observe):
    scaled_sum = devmod.make_scaled_sum(3.0)

    @cuda.jit
    def kernel(out, values):
        out[0] = float(scaled_sum(values))

    seen = observe(outcome(launch, kernel, np.array([1.0, 2.0])))
    assert seen == {"value": [9.0]}


def test_exception_in_device_function(observe):
    @cuda.jit
    def kernel(out):
        devmod.plain(1)
        devmod_other.middle(1)
        devmod.raise_inside()

    raised = outcome(launch, kernel)
    seen = observe({"launch": raised,
                    "devmod_cuda_after": devmod.cuda is real_cuda,
                    "other_cuda_after": devmod_other.cuda is real_cuda,
                    "next_launch": outcome(launch, _reads_cuda_kernel())})
    assert seen == {"launch": {"raised": "ValueError",
                               "message": "raised in a device function"},
                    "devmod_cuda_after": True, "other_cuda_after": True,
                    "next_launch": {"value": [[fake_module_name(), 0]]}}


def _reads_cuda_kernel():
    @cuda.jit
    def kernel(out):
        out[0] = list(devmod.cuda_seen())

    return kernel


def test_module_cuda_after_a_launch(observe):
    launch(_reads_cuda_kernel())
    seen = observe({"devmod": devmod.cuda is real_cuda,
                    "devmod_other": devmod_other.cuda is real_cuda})
    assert seen == {"devmod": True, "devmod_other": True}


def test_host_code_reads_module_cuda_between_calls(observe):
    @cuda.jit
    def kernel(out):
        before = type(devmod.cuda).__name__
        devmod.plain(1)
        out[0] = [before, type(devmod.cuda).__name__]

    seen = observe(outcome(launch, kernel))
    # The unpatched simulator swaps devmod's `cuda` only while one of its
    # device functions runs.
    assert seen == {"value": [["module", "module"]]}


def test_name_bound_to_cuda_during_launch(observe):
    @cuda.jit
    def kernel(out):
        devmod.plain(1)
        # The kernel's own module has every name for numba.cuda swapped.
        devmod.late_alias = sys.modules["numba.cuda"]
        out[0] = devmod.alias_seen()

    seen = observe(outcome(launch, kernel))
    vars(devmod).pop("late_alias", None)
    assert seen == {"value": [fake_module_name()]}


def test_two_kernels_from_two_host_threads(observe):
    started, release = threading.Event(), threading.Event()

    @cuda.jit
    def waiting(out):
        started.set()
        release.wait(10)
        out[0] = devmod.plain(1)

    @cuda.jit
    def other(out):
        out[0] = devmod.plain(2)

    first = {}

    def run_first():
        first.update(outcome(launch, waiting))

    thread = threading.Thread(target=run_first)
    thread.start()
    started.wait(10)
    second = outcome(launch, other)
    release.set()
    thread.join(30)
    seen = observe({"first": first, "second": second,
                    "devmod_cuda_after": devmod.cuda is real_cuda})
    assert seen["first"] == {"value": [2]}
    assert seen["devmod_cuda_after"] is True
