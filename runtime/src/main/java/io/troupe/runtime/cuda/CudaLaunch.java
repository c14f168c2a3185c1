package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuLaunchKernel;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * Kernel launches on a {@link CudaDevice} and the checks on their tensor arguments: the launch
 * geometry ({@link #BLOCK}, grid sizes, the flash attention kernel's shared memory), the launch itself
 * on the device's stream with its result checked, and the checks that a tensor lies open on the
 * device, has the expected type and holds enough elements, which give its device address.
 */
final class CudaLaunch {
    static final int BLOCK = 256;

    private CudaLaunch() {
    }

    /** Grid-stride 1-D launch: 256 threads a block, enough blocks to cover n (capped). */
    static void launch1d(CudaDevice dev, String op, String kernel, long n, KernelArgs a) {
        if (n <= 0) {
            return;
        }
        int grid = (int) Math.min((n + BLOCK - 1) / BLOCK, 1L << 20);
        launch(dev, op, kernel, grid, 1, 1, BLOCK, 1, 1, 0, a);
    }

    static void launch(CudaDevice dev, String op, String kernel, int gx, int gy, int gz, int bx, int by, int bz,
                       int sharedBytes, KernelArgs a) {
        dev.bind();
        if (gx <= 0 || gy <= 0 || gz <= 0) {
            a.reset();
            return;   // empty problem
        }
        int rc = cuLaunchKernel(dev.modules().function(kernel), gx, gy, gz, bx, by, bz, sharedBytes, dev.stream(),
            a.toParams(), null);
        a.reset();
        CudaDevice.check(op, "cuLaunchKernel(" + kernel + ", grid " + gx + "x" + gy + "x" + gz + ")", rc);
    }

    static int flashSharedBytes(int headDim) {
        return 4 * (32 * headDim + 32 * (headDim + 1) + 32 * headDim);
    }

    static int ceilDiv(long a, int b) {
        long r = (a + b - 1) / b;
        if (r > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("grid too large: " + a + " / " + b);
        }
        return (int) r;
    }

    static CudaStorage storage(CudaDevice dev, Tensor t, String op, String param) {
        if (t.device() != dev || !(t.storage() instanceof CudaStorage s)) {
            String where = t.device().name();
            if (t.device() != dev && where.equals(dev.name())) {
                where = "another device object of the same name, " + where + " (each owns its own memory)";
            }
            throw new IllegalArgumentException(op + ": " + param + " is on " + where + ", not on " + dev.name());
        }
        if (!s.isOpen()) {
            throw new IllegalArgumentException(op + ": " + param + " is closed");
        }
        return s;
    }

    static void requireType(String op, String param, Tensor t, DType expected) {
        if (t.dtype() != expected) {
            throw new IllegalArgumentException(op + ": " + param + " must be " + expected + ": dtype=" + t.dtype());
        }
    }

    static void requireCapacity(String op, String param, Tensor t, long elements) {
        if (t.numel() < elements) {
            throw new IllegalArgumentException(op + ": " + param + " too small: needs " + elements + " elements, has "
                + t.numel());
        }
    }

    /** The device address of an F32 tensor holding at least {@code elements}, after checks. */
    static long f32(CudaDevice dev, Tensor t, long elements, String op, String param) {
        storage(dev, t, op, param);
        requireType(op, param, t, DType.F32);
        requireCapacity(op, param, t, elements);
        return t.address();
    }

    static long i32(CudaDevice dev, Tensor t, long elements, String op, String param) {
        storage(dev, t, op, param);
        requireType(op, param, t, DType.I32);
        requireCapacity(op, param, t, elements);
        return t.address();
    }

}
