package io.troupe.runtime.cuda;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;

/** The host-copy contract on the CPU backend (a plain copy between host memories). */
class CpuHostCopyContractTest extends HostCopyContractTest {
    @Override
    Device openDevice() {
        return new CpuDevice(1);
    }

    @Override
    int orderingElements() {
        return 4096;
    }
}
