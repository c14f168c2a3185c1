package io.troupe.runtime.cuda;

import io.troupe.runtime.device.Device;

/**
 * The host-copy contract on {@code cuda:0}: one driver copy between the device pointer and the host
 * address, ordered on the device's stream. On the emulator, where kernels run only when something waits
 * for them and copies at once, a copy that is not ordered after the kernels queued before it reads or
 * overwrites the wrong values.
 */
class CudaHostCopyContractTest extends HostCopyContractTest {
    @Override
    Device openDevice() {
        return CudaSupport.isAvailable() ? new CudaDevice(0) : null;
    }

    @Override
    String skipReason() {
        return CudaTesting.SKIP_PREFIX + CudaSupport.availability().reason();
    }

    @Override
    int orderingElements() {
        // 64 MiB on a GPU, so that the copy would overtake kernels still running if it were not ordered.
        return CudaSupport.isEmulated() ? 1 << 14 : 1 << 24;
    }
}
