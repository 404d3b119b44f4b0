"""Buffer allocators, built the way CuBIE's buffer registry builds them.

This module must stay separate from ``kernel_factory.py``: the simulator race
only happens when a device function's module is not the kernel's module.
"""
from numba import cuda, float32

LOCATIONS = ("local", "shared", "persistent")


class BufferAllocatorFactory:
    """Builds a device function that hands out one buffer: a slice of the
    shared or persistent parent array, or a fresh ``cuda.local.array``
    (the default, and the only case the race touches)."""

    def __init__(self, buffer_size, location="local", zero=True):
        if location not in LOCATIONS:
            raise ValueError(f"location must be one of {LOCATIONS}")
        self.buffer_size = buffer_size
        self.location = location
        self.zero = zero

    def build(self):
        # Compile-time constants captured in the closure, as in CuBIE.
        buffer_size = self.buffer_size
        _use_shared = self.location == "shared"
        _use_persistent = self.location == "persistent"
        _zero = self.zero

        @cuda.jit(device=True, inline=True)
        def allocate_buffer(shared_parent, persistent_parent):
            if _use_shared:
                array = shared_parent[0:buffer_size]
            elif _use_persistent:
                array = persistent_parent[0:buffer_size]
            else:
                array = cuda.local.array(buffer_size, float32)
            if _zero:
                for i in range(buffer_size):
                    array[i] = float32(0.0)
            return array

        return allocate_buffer


class SyncingAllocatorFactory(BufferAllocatorFactory):
    """Like BufferAllocatorFactory (local buffers), but every thread waits at
    a barrier inside the device function before allocating.

    All threads of the block are then inside a device function of this module
    at the same moment, which is exactly the condition the race needs.
    """

    def build(self):
        buffer_size = self.buffer_size

        @cuda.jit(device=True, inline=True)
        def allocate_buffer(shared_parent, persistent_parent):
            cuda.syncthreads()
            return cuda.local.array(buffer_size, float32)

        return allocate_buffer
