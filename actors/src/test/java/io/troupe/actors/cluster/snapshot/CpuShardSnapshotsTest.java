package io.troupe.actors.cluster.snapshot;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;

/** The snapshot contract on host tensors: a memcpy each way, the host device asked nothing. */
class CpuShardSnapshotsTest extends ShardSnapshotsContractTest {
    @Override
    Device openDevice() {
        return new CpuDevice(1);
    }

    @Override
    String skipReason() {
        return "never skipped";
    }
}
