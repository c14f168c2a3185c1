package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.storage;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import io.troupe.runtime.device.AbstractStagedInput;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;

/**
 * A {@link io.troupe.runtime.device.StagedInput} of a {@link CudaDevice}: a pinned host tensor the
 * network writes, and a device tensor. The upload runs on the device's copy stream after the event
 * {@code released} (the readers of the previous contents), and records {@code uploaded}; acquiring makes
 * the compute stream wait for {@code uploaded}. So the copy for one micro-batch overlaps the kernels of
 * another, and neither stream ever waits for more than it needs. The two events are made once and
 * re-recorded every use (a wait captures the event's state when it is issued).
 *
 * <p>Threading: the device's issuing thread, except {@link #host()}.
 */
final class CudaStagedInput extends AbstractStagedInput {
    private final CudaDevice dev;
    private final CUstream compute;
    private final CUstream copy;
    private final Tensor device;
    private final Tensor host;
    private final long bytes;
    private final CUevent uploaded = new CUevent();
    private final CUevent released = new CUevent();
    private boolean open;

    CudaStagedInput(CudaDevice dev, CUstream compute, CUstream copy, Device hostDevice, DType dtype, int[] shape) {
        super("staged input " + Arrays.toString(shape) + " on " + dev.name());
        this.dev = dev;
        this.compute = compute;
        this.copy = copy;
        this.device = dev.allocate(dtype, shape);   // zero-filled on the compute stream
        this.bytes = device.lengthBytes();
        PinnedHostBuffer pinned = null;
        try {
            pinned = new PinnedHostBuffer(bytes);
            this.host = new Tensor(hostDevice, pinned, dtype, 0, shape, true);
            CudaDevice.check("openStagedInput", "cuEventCreate", cuEventCreate(uploaded,
                CUevent_flags.CU_EVENT_DISABLE_TIMING));
            CudaDevice.check("openStagedInput", "cuEventCreate", cuEventCreate(released,
                CUevent_flags.CU_EVENT_DISABLE_TIMING));
            // The first upload must not race the zero fill.
            CudaDevice.check("openStagedInput", "cuEventRecord", cuEventRecord(released, compute));
        } catch (RuntimeException e) {
            device.close();
            if (pinned != null) {
                pinned.close();
            }
            throw e;
        }
        this.open = true;
    }

    @Override
    public Tensor host() {
        return host;
    }

    @Override
    protected void onUpload() {
        dev.bind();
        String op = "StagedInput.upload";
        CudaDevice.check(op, "cuStreamWaitEvent(copy, released)", cuStreamWaitEvent(copy, released, 0));
        CudaDevice.check(op, "cuMemcpyHtoDAsync(" + bytes + " bytes)", cuMemcpyHtoDAsync(
            storage(dev, device, op, "device").pointerAt(device.offsetElements() * device.dtype().sizeBytes()),
            ((PinnedHostBuffer) host.storage()).pointerAt(0), bytes, copy));
        CudaDevice.check(op, "cuEventRecord(uploaded)", cuEventRecord(uploaded, copy));
    }

    @Override
    protected Tensor onAcquire() {
        dev.bind();
        CudaDevice.check("StagedInput.acquire", "cuStreamWaitEvent(compute, uploaded)",
            cuStreamWaitEvent(compute, uploaded, 0));
        return device;
    }

    @Override
    protected void onRelease() {
        dev.bind();
        CudaDevice.check("StagedInput.release", "cuEventRecord(released)", cuEventRecord(released, compute));
    }

    @Override
    public void awaitUpload() {
        dev.bind();
        CudaDevice.check("StagedInput.awaitUpload", "cuEventSynchronize(uploaded)", cuEventSynchronize(uploaded));
    }

    @Override
    public void close() {
        if (!open) {
            return;
        }
        open = false;
        dev.bind();
        // The device block returns to a cache whose reuse is ordered on the compute stream only: the
        // copy stream must be done with it first (and with the pinned bytes before they are freed).
        CudaDevice.check("StagedInput.close", "cuEventSynchronize(uploaded)", cuEventSynchronize(uploaded));
        cuEventDestroy(uploaded);
        cuEventDestroy(released);
        host.close();
        device.close();
    }
}
