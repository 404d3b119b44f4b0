"""CuBIE's own code under the CUDA simulator.

Where the simulator race exists, these tests fail with::

    AttributeError: tid=[..] ctaid=[..]: module '...cuda' has no attribute 'local'

raised inside CuBIE, at the ``cuda.local.array`` of an allocator that
``cubie/buffer_registry.py`` builds. Each failing test records the file and
line that raised its error (``raised_at``), so a report can say whether the
race CuBIE hits is the MWE's.
"""
import os
import traceback

import attrs
import numpy as np
import pytest

# The kernel must see the very module object CuBIE's device functions use:
# the simulator swaps module globals named like it while a kernel runs.
from cubie.buffer_registry import BufferGroup, cuda, float32


def site_relative(filename):
    """A source path without the folder it is installed in."""
    marker = os.sep + "site-packages" + os.sep
    return filename.split(marker, 1)[-1] if marker in filename else filename


def record_where_raised(record_property, error):
    """Record the innermost frame of ``error``: where it was raised."""
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        frame = frames[-1]
        record_property("raised_at",
                        f"{site_relative(frame.filename)}:{frame.lineno}")
        record_property("raised_line", (frame.line or "").strip())
        record_property("raised_in", frame.name)


def call_recording_errors(record_property, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except Exception as error:
        record_where_raised(record_property, error)
        raise


def new_buffer_group():
    """A BufferGroup, from the releases whose groups name their parent
    (up to 0.2) as well as the later ones."""
    init_fields = {field.name for field in attrs.fields(BufferGroup)
                   if field.init}
    return BufferGroup(parent=object()) if "parent" in init_fields \
        else BufferGroup()


@pytest.fixture(scope="module")
def allocator_kernel(buffer_registry, client_settings):
    """A kernel in which every thread calls, ``device_calls`` times, the
    allocator CuBIE's registry builds for a local buffer, then writes 1."""
    group = new_buffer_group()
    group.register(name="client_buffer", size=client_settings.buffer_size,
                   location="local")
    allocate_buffer = group.get_allocator("client_buffer")
    buffer_size = client_settings.buffer_size
    device_calls = client_settings.device_calls

    @cuda.jit
    def kernel(output, shared_parent, persistent_parent):
        i = cuda.grid(1)
        if i >= output.size:
            return
        for _ in range(device_calls):
            buffer = allocate_buffer(shared_parent, persistent_parent)
            for j in range(buffer_size):
                buffer[j] = float32(1.0)
        output[i] = buffer[buffer_size - 1]

    return kernel


def test_registry_allocator(allocator_kernel, client_settings,
                            record_property, launch):
    """CuBIE's registry allocators, called from many simulator threads."""
    settings = client_settings
    output = np.zeros(settings.grid_threads, dtype=np.float32)
    parents = np.zeros(settings.buffer_size, dtype=np.float32)
    call_recording_errors(
        record_property,
        allocator_kernel[settings.blocks, settings.threads_per_block],
        output, parents, parents.copy())
    assert np.all(output == 1.0), (
        f"wrong output: {np.count_nonzero(output != 1.0)} of {output.size} "
        f"threads did not write 1")


@pytest.fixture(scope="module")
def two_state_system(buffer_registry):
    from cubie import create_ODE_system
    return create_ODE_system(["dx = -k*x + y", "dy = -y"],
                             states={"x": 1.0, "y": 0.5},
                             parameters={"k": 0.5}, precision=np.float32)


def test_solve_ivp(two_state_system, client_settings, record_property, solve):
    """A small real solve through CuBIE's public API (rk45)."""
    from cubie import solve_ivp
    n = client_settings.solve_runs
    result = call_recording_errors(
        record_property, solve_ivp, two_state_system,
        y0={"x": np.linspace(0.5, 1.5, n, dtype=np.float32),
            "y": np.full(n, 0.5, dtype=np.float32)},
        parameters={"k": np.full(n, 0.5, dtype=np.float32)},
        method="rk45", duration=1.0, grid_type="verbatim")
    # The one output every release has (later ones add ``state``).
    saved = np.asarray(result.time_domain_array)
    assert saved.size > 0, "the solve saved no output"
    # CuBIE sets the trajectories of runs that report an error to NaN.
    assert np.isfinite(saved).all(), (
        f"{np.count_nonzero(~np.isfinite(saved))} saved values are not "
        f"finite: some runs reported an error")
