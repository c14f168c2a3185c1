package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventQuery;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;

import jcuda.driver.CUevent;
import jcuda.driver.CUresult;

/**
 * Completion of one asynchronous copy between device memory and a {@link PinnedHostBuffer}. Until it
 * is done, the host must not touch the pinned range (nor free the tensor) that the copy uses.
 *
 * <p>Threading: {@link #isDone()} and {@link #await()} may be called from any thread; close once.
 */
public final class CopyTicket implements AutoCloseable {
    private final CUevent done;
    private boolean closed;

    CopyTicket(CUevent done) {
        this.done = done;
    }

    /** True once the copy has completed; never blocks (a duty-cycle agent may poll it). */
    public boolean isDone() {
        int rc = cuEventQuery(done);
        if (rc == CUresult.CUDA_ERROR_NOT_READY) {
            return false;
        }
        CudaDevice.check("copy", "cuEventQuery", rc);
        return true;
    }

    /** Blocks until the copy has completed. */
    public void await() {
        CudaDevice.check("copy", "cuEventSynchronize", cuEventSynchronize(done));
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            cuEventDestroy(done);
        }
    }
}
