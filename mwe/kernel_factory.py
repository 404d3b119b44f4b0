"""A kernel factory in CuBIE's style: it builds the allocator it is given and
captures it in the kernel's closure."""
from numba import cuda, float32

from allocator_factory import BufferAllocatorFactory


class KernelFactory:
    """Builds a kernel in which each working thread allocates buffers through
    the allocator and writes 1 to its slot of the output. The shared and
    persistent parent arrays are made here, as CuBIE's loop makes them."""

    def __init__(self, allocator_factory, device_calls=1):
        self.allocator_factory = allocator_factory
        self.device_calls = device_calls

    def build(self):
        allocate_buffer = self.allocator_factory.build()
        buffer_size = self.allocator_factory.buffer_size
        device_calls = self.device_calls

        @cuda.jit
        def kernel(output, n_threads):
            i = cuda.grid(1)
            if i >= n_threads:
                return
            shared = cuda.shared.array(buffer_size, float32)
            persistent = cuda.local.array(buffer_size, float32)
            for _ in range(device_calls):
                buffer = allocate_buffer(shared, persistent)
                for j in range(buffer_size):
                    buffer[j] = float32(1.0)
            output[i] = buffer[buffer_size - 1]

        return kernel


class KernelLocalAllocatorFactory(BufferAllocatorFactory):
    """The control: the same allocator as BufferAllocatorFactory, but defined
    in the kernel's own module, so the race cannot happen."""

    def build(self):
        # Same body as the parent's; written here so that the device
        # function's globals are this module's.
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
