package io.troupe.runtime.cuda;

import jcuda.driver.CUdeviceptr;

/** A {@link CUdeviceptr} that tells its raw address (for kernel arguments and {@link CudaStorage#address()}). */
final class DevicePointer extends CUdeviceptr {

    long address() {
        return getNativePointer();
    }
}
