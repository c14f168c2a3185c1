package io.troupe.runtime.cuda;

import io.troupe.runtime.device.Device;

/** The conformance suite on {@code cuda:0} with float32 GEMM and the simple attention (probabilities saved). */
class CudaDeviceConformanceTest extends DeviceConformanceTest {
    @Override
    Device openDeviceUnderTest() {
        if (!CudaSupport.isAvailable()) {
            return null;
        }
        CudaDevice dev = new CudaDevice(0);
        dev.setGemmBackend(GemmBackend.TROUPE);   // Troupe's kernels are what this suite verifies
        dev.setGemmPrecision(GemmPrecision.FP32);
        dev.setAttentionKernel(AttentionKernel.SIMPLE);
        return dev;
    }

    @Override
    String skipReason() {
        return CudaTesting.SKIP_PREFIX + CudaSupport.availability().reason();
    }
}
