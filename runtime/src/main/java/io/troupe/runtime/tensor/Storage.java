package io.troupe.runtime.tensor;

/**
 * A block of memory owned by one device: host memory for the CPU backend, device memory for CUDA.
 * Storage is reference-free: whoever allocated it closes it, and views never outlive it.
 */
public interface Storage extends AutoCloseable {
    /** Size in bytes. */
    long lengthBytes();

    /**
     * The base address: a native host address for CPU storage, a device pointer for CUDA storage.
     * Always 64-byte aligned for storage made by a device.
     */
    long address();

    /** True while the memory may be used. */
    boolean isOpen();

    /** Frees the memory. Idempotent. */
    @Override
    void close();
}
