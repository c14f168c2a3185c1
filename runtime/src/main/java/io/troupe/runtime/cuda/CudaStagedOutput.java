package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.storage;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventQuery;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;

/**
 * A {@link StagedOutput} of a {@link CudaDevice}. A download copies {@code src} into a device snapshot
 * on the compute stream (so later kernels may overwrite {@code src} at once), records {@code produced},
 * and queues the snapshot's copy into pinned host memory on the copy stream after {@code produced},
 * recording {@code downloaded}. The next download's snapshot copy waits (on the GPU) for
 * {@code downloaded}, so the snapshot is never overwritten while the copy engine reads it.
 *
 * <p>Threading: the device's issuing thread, except {@link #isDone()}.
 */
final class CudaStagedOutput implements StagedOutput {
    private final CudaDevice dev;
    private final CUstream compute;
    private final CUstream copy;
    private final DType dtype;
    private final int[] shape;
    private final Tensor snapshot;
    private final Tensor host;
    private final long bytes;
    private final CUevent produced = new CUevent();
    private final CUevent downloaded = new CUevent();
    private volatile boolean any;
    private boolean open;

    CudaStagedOutput(CudaDevice dev, CUstream compute, CUstream copy, Device hostDevice, DType dtype, int[] shape) {
        this.dev = dev;
        this.compute = compute;
        this.copy = copy;
        this.dtype = dtype;
        this.shape = shape.clone();
        this.snapshot = dev.allocate(dtype, shape);
        this.bytes = snapshot.lengthBytes();
        PinnedHostBuffer pinned = null;
        try {
            pinned = new PinnedHostBuffer(bytes);
            this.host = new Tensor(hostDevice, pinned, dtype, 0, shape, true);
            CudaDevice.check("openStagedOutput", "cuEventCreate", cuEventCreate(produced,
                CUevent_flags.CU_EVENT_DISABLE_TIMING));
            CudaDevice.check("openStagedOutput", "cuEventCreate", cuEventCreate(downloaded,
                CUevent_flags.CU_EVENT_DISABLE_TIMING));
        } catch (RuntimeException e) {
            snapshot.close();
            if (pinned != null) {
                pinned.close();
            }
            throw e;
        }
        this.open = true;
    }

    @Override
    public void download(Tensor src) {
        if (src.dtype() != dtype || src.numel() != snapshot.numel()) {
            throw new IllegalArgumentException("staged output of " + dtype + " " + Arrays.toString(shape)
                + " cannot take " + src.dtype() + " " + Arrays.toString(src.shape()));
        }
        if (!open) {
            throw new IllegalStateException("staged output " + Arrays.toString(shape) + " is closed");
        }
        dev.bind();
        String op = "StagedOutput.download";
        if (any) {
            CudaDevice.check(op, "cuStreamWaitEvent(compute, downloaded)", cuStreamWaitEvent(compute, downloaded, 0));
        }
        dev.copy(src, snapshot);
        CudaDevice.check(op, "cuEventRecord(produced)", cuEventRecord(produced, compute));
        CudaDevice.check(op, "cuStreamWaitEvent(copy, produced)", cuStreamWaitEvent(copy, produced, 0));
        CudaDevice.check(op, "cuMemcpyDtoHAsync(" + bytes + " bytes)", cuMemcpyDtoHAsync(
            ((PinnedHostBuffer) host.storage()).pointerAt(0),
            storage(dev, snapshot, op, "snapshot").pointerAt(snapshot.offsetElements() * dtype.sizeBytes()), bytes,
                copy));
        CudaDevice.check(op, "cuEventRecord(downloaded)", cuEventRecord(downloaded, copy));
        any = true;
    }

    @Override
    public boolean isDone() {
        if (!any) {
            return false;
        }
        int rc = cuEventQuery(downloaded);
        if (rc == CUresult.CUDA_ERROR_NOT_READY) {
            return false;
        }
        CudaDevice.check("StagedOutput.isDone", "cuEventQuery(downloaded)", rc);
        return true;
    }

    @Override
    public void await() {
        if (any) {
            CudaDevice.check("StagedOutput.await", "cuEventSynchronize(downloaded)", cuEventSynchronize(downloaded));
        }
    }

    @Override
    public Tensor host() {
        if (!any) {
            throw new IllegalStateException("staged output " + Arrays.toString(shape) + ": host() before any download");
        }
        if (!isDone()) {
            throw new IllegalStateException("staged output " + Arrays.toString(shape)
                + ": host() while the download is in flight (await() or poll isDone() first)");
        }
        return host;
    }

    @Override
    public void close() {
        if (!open) {
            return;
        }
        open = false;
        dev.bind();
        await();
        cuEventDestroy(produced);
        cuEventDestroy(downloaded);
        host.close();
        snapshot.close();
    }
}
