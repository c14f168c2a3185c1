package io.troupe.runtime.cuda;

import io.troupe.runtime.device.Device;

/**
 * The conformance suite on {@code cuda:0} with the fused (flash) attention, whose {@code saved}
 * holds log-sum-exp rows rather than probabilities: out and dqkv are compared, saved is not.
 */
class CudaFlashConformanceTest extends DeviceConformanceTest {
    @Override
    Device openDeviceUnderTest() {
        if (!CudaSupport.isAvailable()) {
            return null;
        }
        CudaDevice dev = new CudaDevice(0);
        dev.setGemmBackend(GemmBackend.TROUPE);
        dev.setAttentionKernel(AttentionKernel.FLASH);
        return dev;
    }

    @Override
    String skipReason() {
        return CudaTesting.SKIP_PREFIX + CudaSupport.availability().reason();
    }

    @Override
    boolean savesProbabilities() {
        return false;
    }
}
