package io.troupe.runtime.cuda;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.device.Device;

/**
 * Runs the conformance suite with a second CPU device as the device under test. It proves the
 * harness (twins, poisoning, tolerances) on every machine, so that the CUDA run on a GPU machine
 * tests the kernels and not the test code.
 */
class CpuHarnessConformanceTest extends DeviceConformanceTest {
    @Override
    Device openDeviceUnderTest() {
        return new CpuDevice(1);
    }
}
