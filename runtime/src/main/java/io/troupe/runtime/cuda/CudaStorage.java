package io.troupe.runtime.cuda;

import io.troupe.runtime.tensor.Storage;
import jcuda.driver.CUdeviceptr;

/**
 * Device memory from a {@link CudaAllocator}; closing it returns the block to the allocator's cache
 * (safe without a synchronisation because every use of the block is ordered on the device's one
 * stream). Threading: the device's issuing thread only.
 */
final class CudaStorage implements Storage {
    private final CudaAllocator allocator;
    private final DevicePointer pointer;
    private final long lengthBytes;
    private final long blockBytes;
    private boolean open = true;

    CudaStorage(CudaAllocator allocator, DevicePointer pointer, long lengthBytes, long blockBytes) {
        this.allocator = allocator;
        this.pointer = pointer;
        this.lengthBytes = lengthBytes;
        this.blockBytes = blockBytes;
    }

    @Override
    public long lengthBytes() {
        return lengthBytes;
    }

    @Override
    public long address() {
        return pointer.address();
    }

    /** The JCuda pointer at {@code byteOffset} into this block, for memcpy and memset calls. */
    CUdeviceptr pointerAt(long byteOffset) {
        return byteOffset == 0 ? pointer : pointer.withByteOffset(byteOffset);
    }

    DevicePointer pointer() {
        return pointer;
    }

    long blockBytes() {
        return blockBytes;
    }

    CudaAllocator allocator() {
        return allocator;
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public void close() {
        if (open) {
            open = false;
            allocator.release(this);
        }
    }
}
