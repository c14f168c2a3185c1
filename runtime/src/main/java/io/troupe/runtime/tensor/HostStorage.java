package io.troupe.runtime.tensor;

/**
 * Storage in host memory that the CPU backend may read and write at its {@link #address()}: the CPU
 * device's own allocations and a GPU device's page-locked staging buffers (the host side of a staged
 * input or output, which the CPU writes before an upload and reads after a download).
 */
public interface HostStorage extends Storage {
}
