package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.storage;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import io.troupe.runtime.tensor.Tensor;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;

/**
 * Copies between device tensors and pinned host buffers on a second stream, so that they overlap
 * the compute stream's kernels. Ordering with compute is by events: a copy out waits for the compute
 * work issued before it; compute issued after a copy in waits for that copy.
 *
 * <p>Threading: the device's issuing thread.
 */
final class CudaTransfers implements AutoCloseable {
    private final CudaDevice dev;
    private final CUstream compute;
    private final CUstream copy = new CUstream();

    CudaTransfers(CudaDevice dev, CUstream compute) {
        this.dev = dev;
        this.compute = compute;
        CudaDevice.check("create device", "cuStreamCreate(copy)",
            cuStreamCreate(copy, CUstream_flags.CU_STREAM_NON_BLOCKING));
    }

    CopyTicket toPinned(Tensor src, PinnedHostBuffer dst, long dstOffsetBytes) {
        String op = "copyToPinnedAsync";
        CudaStorage s = storage(dev, src, op, "src");
        long bytes = src.lengthBytes();
        dst.checkRange(op, dstOffsetBytes, bytes);
        waitFor(op, compute, copy);
        CudaDevice.check(op, "cuMemcpyDtoHAsync(" + bytes + " bytes)", cuMemcpyDtoHAsync(dst.pointerAt(dstOffsetBytes),
            s.pointerAt(src.offsetElements() * src.dtype().sizeBytes()), bytes, copy));
        return new CopyTicket(record(op, copy));
    }

    CopyTicket fromPinned(PinnedHostBuffer src, long srcOffsetBytes, Tensor dst) {
        String op = "copyFromPinnedAsync";
        CudaStorage d = storage(dev, dst, op, "dst");
        long bytes = dst.lengthBytes();
        src.checkRange(op, srcOffsetBytes, bytes);
        // The destination may still be read or written by earlier compute work.
        waitFor(op, compute, copy);
        CudaDevice.check(op, "cuMemcpyHtoDAsync(" + bytes + " bytes)", cuMemcpyHtoDAsync(
            d.pointerAt(dst.offsetElements() * dst.dtype().sizeBytes()), src.pointerAt(srcOffsetBytes), bytes, copy));
        CUevent done = record(op, copy);
        CudaDevice.check(op, "cuStreamWaitEvent", cuStreamWaitEvent(compute, done, 0));
        return new CopyTicket(done);
    }

    /** The stream the copies run on (staged inputs and outputs use it too). */
    CUstream copyStream() {
        return copy;
    }

    /** Makes {@code waiter} wait for all work issued so far on {@code before}. */
    private static void waitFor(String op, CUstream before, CUstream waiter) {
        CUevent e = record(op, before);
        CudaDevice.check(op, "cuStreamWaitEvent", cuStreamWaitEvent(waiter, e, 0));
        cuEventDestroy(e);   // released once the wait is satisfied; destroying early is allowed
    }

    private static CUevent record(String op, CUstream stream) {
        CUevent e = new CUevent();
        CudaDevice.check(op, "cuEventCreate", cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING));
        CudaDevice.check(op, "cuEventRecord", cuEventRecord(e, stream));
        return e;
    }

    @Override
    public void close() {
        cuStreamDestroy(copy);
    }
}
