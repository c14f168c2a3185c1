package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;

/**
 * Loads Troupe's PTX ({@code io/troupe/runtime/cuda/NAME_smXY.ptx}, built by
 * {@code runtime/src/main/cuda/build-ptx.sh}) into the current context and finds kernels by name.
 * The PTX for compute 9.0 is used on cards of capability 9.0 and up, the 8.0 one on 8.x; the driver
 * compiles it for the actual card (and caches the result). Loading is all or nothing: when a module
 * fails to load (or its PTX is missing), those loaded before it are unloaded and the failure rethrown.
 */
final class CudaModules implements AutoCloseable {
    /** The .cu files under runtime/src/main/cuda, one PTX module each. */
    static final String[] MODULE_NAMES = {"kernels", "gemm", "attention", "fused", "decode"};

    private final List<CUmodule> modules = new ArrayList<>();
    private final Map<String, CUfunction> functions = new HashMap<>();

    CudaModules(int ccMajor, int ccMinor) {
        this(ccMajor, ccMinor, MODULE_NAMES);
    }

    /** Loads the modules {@code names} (PTX resources {@code NAME_smXY.ptx}), in order, all or nothing. */
    CudaModules(int ccMajor, int ccMinor, String... names) {
        if (ccMajor < 8) {
            throw new IllegalStateException("Troupe's CUDA kernels need compute capability 8.0 or newer (mma.sync "
                + "for TF32/BF16); this card has " + ccMajor + "." + ccMinor);
        }
        String suffix = ccMajor >= 9 ? "sm90" : "sm80";
        try {
            for (String name : names) {
                String ptx = readPtx(name + "_" + suffix + ".ptx");
                CUmodule m = new CUmodule();
                // cuModuleLoadData wants a NUL-terminated image.
                byte[] image = (ptx + '\0').getBytes(StandardCharsets.US_ASCII);
                CudaDevice.check("load kernels", "cuModuleLoadData(" + name + "_" + suffix + ".ptx)",
                    cuModuleLoadData(m, image));
                modules.add(m);
            }
        } catch (Throwable failure) {
            // All or nothing: the modules loaded before the failing one are unloaded.
            for (CUmodule m : modules) {
                try {
                    CudaDevice.check("unload kernels", "cuModuleUnload", cuModuleUnload(m));
                } catch (Throwable cleanup) {
                    failure.addSuppressed(cleanup);
                }
            }
            modules.clear();
            throw failure;
        }
    }

    /** The PTX text of a resource, or an exception that says how to get it built. */
    static String readPtx(String resource) {
        try (InputStream in = CudaModules.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("PTX resource io/troupe/runtime/cuda/" + resource + " is missing: "
                    + "this build ran without nvcc. Rebuild runtime on a machine with nvcc (CUDA 12 or 13) at "
                    + "/usr/local/bin/nvcc or pass -Dtroupe.nvcc=PATH");
            }
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read PTX resource " + resource, e);
        }
    }

    /** The kernel named {@code name} (an {@code extern "C"} symbol), looked up once. */
    CUfunction function(String name) {
        CUfunction f = functions.get(name);
        if (f != null) {
            return f;
        }
        for (CUmodule m : modules) {
            CUfunction candidate = new CUfunction();
            if (cuModuleGetFunction(candidate, m, name) == 0) {
                functions.put(name, candidate);
                return candidate;
            }
        }
        throw new IllegalStateException("no CUDA kernel named '" + name + "' in Troupe's PTX modules");
    }

    /** Lets {@code name} use up to {@code bytes} of dynamic shared memory (above the default 48 KiB). */
    void allowDynamicSharedMemory(String name, int bytes) {
        CudaDevice.check("load kernels",
            "cuFuncSetAttribute(" + name + ", MAX_DYNAMIC_SHARED_SIZE_BYTES=" + bytes + ")",
            cuFuncSetAttribute(function(name), CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes));
    }

    @Override
    public void close() {
        for (CUmodule m : modules) {
            cuModuleUnload(m);
        }
        modules.clear();
        functions.clear();
    }
}
