package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;
import io.troupe.runtime.device.Device;

/**
 * The snapshot contract on {@code cuda:0}: each device tensor goes straight into its place in the slot with one
 * device copy, and back. Skipped, with the reason, where no CUDA device is usable (run by the build on the CUDA
 * emulator).
 */
class CudaShardSnapshotsTest extends ShardSnapshotsContractTest {
    @Override
    Device openDevice() {
        return CudaSupport.isAvailable() ? new CudaDevice(0) : null;
    }

    @Override
    String skipReason() {
        return "no usable GPU, CUDA test skipped: " + CudaSupport.availability().reason();
    }
}
