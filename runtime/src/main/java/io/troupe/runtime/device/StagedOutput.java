package io.troupe.runtime.device;

import io.troupe.runtime.tensor.Tensor;

/**
 * An outbound data-plane buffer of one device: the tensor a stage sends (an activation, an input
 * gradient) brought into host memory that the network can read. Made by {@link Device#openStagedOutput}.
 *
 * <p>Use: {@link #download(Tensor)} on the device thread right after issuing the kernels that write
 * {@code src}; then, once {@link #isDone()} (poll) or {@link #await()} (block), hand {@link #host()} to
 * the data plane. On a GPU the download snapshots {@code src} on the compute stream (a device-to-device
 * copy) and copies the snapshot to pinned host memory on a copy stream, ordered by events, so the
 * stage may go on computing (and overwrite {@code src}) while the bytes travel to the host; {@code host()}
 * then holds {@code src} as it was at the download. On the CPU there is nothing to move: {@code host()}
 * is {@code src} itself and is done at once, so it must be sent before {@code src} is next written.
 *
 * <p>Threading: {@link #isDone()} from any thread; the others from the device's issuing thread.
 */
public interface StagedOutput extends AutoCloseable {

    /**
     * Starts bringing {@code src} (same dtype and element count as this buffer's shape) to the host. A
     * previous download still in flight is awaited first.
     *
     * @throws IllegalArgumentException when {@code src} does not fit, naming both shapes
     */
    void download(Tensor src);

    /** True once {@link #host()} holds the last download; never blocks. */
    boolean isDone();

    /** Blocks until the last download has reached the host. */
    void await();

    /**
     * The host-memory copy of the last download (a CPU tensor).
     *
     * @throws IllegalStateException before the first download or while it is in flight
     */
    Tensor host();

    /** Frees the buffers (awaits a download in flight first). */
    @Override
    void close();
}
