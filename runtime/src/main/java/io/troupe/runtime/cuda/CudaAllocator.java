package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;

/**
 * A caching allocator over plain {@code cuMemAlloc} (never managed memory). Sizes round up to a
 * bin (512 bytes up to 1 MiB, then 2 MiB steps); a released block waits in its bin's free list and
 * serves the next request of the same bin. When {@code cuMemAlloc} runs out of memory, the cache is
 * emptied and the allocation retried once.
 *
 * <p>Reuse without synchronisation is safe because every kernel and copy that touches a block is
 * issued on the owning device's single stream: a later user is ordered after the earlier one.
 *
 * <p>Threading: thread-safe (every method locks the allocator), because a staged input may be
 * allocated from the network's thread while the device's issuing thread runs (see
 * {@link CudaDevice#openStagedInput}); the reuse argument above still holds, since whoever takes a
 * block issues its first use on the same stream, after everything issued before.
 */
final class CudaAllocator {
    private static final long SMALL_ROUND_BYTES = 512;
    private static final long SMALL_LIMIT_BYTES = 1L << 20;
    private static final long LARGE_ROUND_BYTES = 2L << 20;

    private final CUstream stream;
    private final Map<Long, ArrayDeque<DevicePointer>> free = new HashMap<>();
    private long bytesInUse;
    private long bytesCached;
    private boolean closed;

    /** @param stream the device's one stream: drained before cached blocks go back to the driver */
    CudaAllocator(CUstream stream) {
        this.stream = stream;
    }

    /** Bin size for a request: what is actually allocated. */
    static long blockBytesFor(long lengthBytes) {
        long round = lengthBytes <= SMALL_LIMIT_BYTES ? SMALL_ROUND_BYTES : LARGE_ROUND_BYTES;
        long n = Math.max(lengthBytes, 1);
        return (n + round - 1) / round * round;
    }

    synchronized CudaStorage allocate(long lengthBytes) {
        if (closed) {
            throw new IllegalStateException("CUDA allocator is closed");
        }
        if (lengthBytes < 0) {
            throw new IllegalArgumentException("allocation size must be >= 0: lengthBytes=" + lengthBytes);
        }
        long block = blockBytesFor(lengthBytes);
        ArrayDeque<DevicePointer> bin = free.get(block);
        DevicePointer p = bin == null ? null : bin.pollLast();
        if (p != null) {
            bytesCached -= block;
        } else {
            p = new DevicePointer();
            int rc = cuMemAlloc(p, block);
            if (rc == CUresult.CUDA_ERROR_OUT_OF_MEMORY && bytesCached > 0) {
                emptyCache();
                rc = cuMemAlloc(p, block);
            }
            CudaDevice.check("allocate", "cuMemAlloc(" + block + " bytes)", rc);
        }
        bytesInUse += block;
        return new CudaStorage(this, p, lengthBytes, block);
    }

    synchronized void release(CudaStorage s) {
        bytesInUse -= s.blockBytes();
        if (closed) {
            cuMemFree(s.pointer());
            return;
        }
        free.computeIfAbsent(s.blockBytes(), k -> new ArrayDeque<>()).addLast(s.pointer());
        bytesCached += s.blockBytes();
    }

    /**
     * Frees every cached (unused) block back to the driver, after the stream has drained: a block
     * released to the cache may still be read by a kernel in flight.
     */
    synchronized void emptyCache() {
        if (free.isEmpty()) {
            return;
        }
        CudaDevice.check("emptyCache", "cuStreamSynchronize", cuStreamSynchronize(stream));
        for (ArrayDeque<DevicePointer> bin : free.values()) {
            for (DevicePointer p : bin) {
                CudaDevice.check("emptyCache", "cuMemFree", cuMemFree(p));
            }
        }
        free.clear();
        bytesCached = 0;
    }

    synchronized long bytesInUse() {
        return bytesInUse;
    }

    synchronized long bytesCached() {
        return bytesCached;
    }

    /** Frees the cache; blocks still in use are freed when their storage closes. */
    synchronized void close() {
        if (!closed) {
            emptyCache();
            closed = true;
        }
    }
}
