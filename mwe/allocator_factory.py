"""Buffer allocators, built the way CuBIE builds them.

This module must stay separate from ``kernel_factory.py``: the simulator race
only happens when a device function's module is not the kernel's module.
"""
from numba import cuda, float32


class BufferAllocatorFactory:
    """Builds a device function that hands out one thread-local buffer."""

    def __init__(self, buffer_size):
        self.buffer_size = buffer_size

    def build(self):
        buffer_size = self.buffer_size

        @cuda.jit(device=True, inline=True)
        def allocate_buffer():
            return cuda.local.array(buffer_size, float32)

        return allocate_buffer


class SyncingAllocatorFactory(BufferAllocatorFactory):
    """Like BufferAllocatorFactory, but every thread waits at a barrier
    inside the device function before allocating.

    All threads of the block are then inside a device function of this module
    at the same moment, which is exactly the condition the race needs.
    """

    def build(self):
        buffer_size = self.buffer_size

        @cuda.jit(device=True, inline=True)
        def allocate_buffer():
            cuda.syncthreads()
            return cuda.local.array(buffer_size, float32)

        return allocate_buffer
