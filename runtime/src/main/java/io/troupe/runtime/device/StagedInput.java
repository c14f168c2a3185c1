package io.troupe.runtime.device;

import io.troupe.runtime.tensor.Tensor;

/**
 * An inbound data-plane buffer of one device: host memory the network writes a received tensor
 * into, and the device tensor the stage's kernels read. Made by {@link Device#openStagedInput}.
 *
 * <p>One use goes through four calls, in this order (anything else throws {@link IllegalStateException}):
 * <ol>
 *   <li>the network fills {@link #host()} (any thread; a CPU tensor whose {@code address()} is host memory);</li>
 *   <li>{@link #upload()} (device thread, once the bytes are complete) starts the host-to-device copy
 *       and returns at once; on a GPU it runs on a copy stream, waiting only for the kernels that read
 *       the previous contents (see {@link #release()}), so it overlaps unrelated compute;</li>
 *   <li>{@link #acquire()} (device thread, right before issuing the consumer) makes the kernels issued
 *       after it wait for the copy, and returns the device tensor;</li>
 *   <li>{@link #release()} (device thread, after issuing the last kernel that reads that tensor) marks
 *       the point the next upload must wait for.</li>
 * </ol>
 * {@link #host()} may be rewritten once {@link #awaitUpload()} has returned (or the device has been
 * synchronised since the upload). On the CPU the host and device tensors are one tensor and every call
 * but {@link #host()} only checks the order.
 *
 * <p>Threading: {@link #host()} from any thread; the others from the device's issuing thread.
 */
public interface StagedInput extends AutoCloseable {

    /** The host-memory tensor the network writes into (a CPU tensor). */
    Tensor host();

    /** Starts copying {@link #host()} to the device tensor; never blocks on the copy itself. */
    void upload();

    /** Kernels issued from now on see the uploaded bytes; returns the device tensor they read. */
    Tensor acquire();

    /** Every kernel reading the acquired tensor has been issued; the next {@link #upload()} waits for them. */
    void release();

    /** Blocks until the last upload has read {@link #host()}, so the host bytes may be rewritten. */
    void awaitUpload();

    /** Frees both tensors. Call after the device has finished every use (e.g. after a synchronize). */
    @Override
    void close();
}
