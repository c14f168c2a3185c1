package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import jcuda.driver.CUdevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Loading Troupe's PTX modules is all or nothing: when a module's PTX is missing or the driver refuses
 * it, the modules loaded before it are unloaded. Counted on the CUDA emulator, whose driver answers a
 * device attribute of its own with the number of modules loaded; skipped elsewhere, with the reason.
 */
@Timeout(60)
class CudaModulesTest {
    /** The emulator's device attribute: the modules loaded now (no real driver has it). */
    private static final int EMULATOR_LOADED_MODULES = 0x7e000001;

    private CudaDevice gpu;

    @BeforeEach
    void open() {
        CudaTesting.assumeGpu();
        assumeTrue(CudaSupport.isEmulated(), "counting loaded modules needs the CUDA emulator's driver");
        gpu = new CudaDevice(0);
        gpu.bind();
    }

    @AfterEach
    void close() {
        if (gpu != null) {
            gpu.close();
        }
    }

    private static int loadedModules() {
        CUdevice device = new CUdevice();
        CudaDevice.check("count modules", "cuDeviceGet(0)", cuDeviceGet(device, 0));
        int[] count = new int[1];
        CudaDevice.check("count modules", "cuDeviceGetAttribute(loaded modules)",
            cuDeviceGetAttribute(count, EMULATOR_LOADED_MODULES, device));
        return count[0];
    }

    @Test
    void shouldLoadEveryModuleAndUnloadThemOnClose() {
        int before = loadedModules();
        try (CudaModules modules = new CudaModules(9, 0)) {
            assertEquals(before + CudaModules.MODULE_NAMES.length, loadedModules());
            modules.function("axpy_f32");
        }
        assertEquals(before, loadedModules());
    }

    @Test
    void shouldUnloadTheModulesBeforeOneWhosePtxIsMissing() {
        int before = loadedModules();
        IllegalStateException e = assertThrows(IllegalStateException.class,
            () -> new CudaModules(9, 0, "kernels", "gemm", "absent"));
        assertTrue(e.getMessage().contains("io/troupe/runtime/cuda/absent_sm90.ptx is missing"), e.getMessage());
        assertEquals(before, loadedModules(), "modules left loaded after a failed load");
    }

    @Test
    void shouldUnloadTheModulesBeforeOneTheDriverRefuses() {
        int before = loadedModules();
        CudaException e = assertThrows(CudaException.class,
            () -> new CudaModules(9, 0, "kernels", "gemm", "unloadable", "fused"));
        assertTrue(e.getMessage().contains("cuModuleLoadData(unloadable_sm90.ptx)"), e.getMessage());
        assertEquals(218, e.resultCode(), "CUDA_ERROR_INVALID_PTX: " + e.getMessage());
        assertEquals(before, loadedModules(), "modules left loaded after a failed load");
    }
}
