package io.troupe.runtime.cuda;

import java.nio.file.Files;
import java.nio.file.Path;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Detects CUDA once per process and caches the answer; never throws.
 *
 * <p>Order: first the NVIDIA driver's files ({@code /dev/nvidiactl}, {@code /proc/driver/nvidia}),
 * so a machine without a driver never loads JCuda's native library; then {@code cuInit} and
 * {@code cuDeviceGetCount} through JCuda, inside a catch of every {@link Throwable} (a missing
 * {@code libcuda.so.1} surfaces as {@link UnsatisfiedLinkError}). JCuda's driver class cannot be
 * used again after its first load failed, hence the cache.
 *
 * <p>With the system property {@value #EMULATOR_PROPERTY} naming a library file, that library is loaded
 * first as the process's {@code libcuda.so.1} and the driver-file check is skipped: the tests' CUDA
 * emulator (built by {@code runtime/src/test/cuda-emu/build-emu.sh}) runs the kernels on the CPU through
 * the same JCuda calls, so the GPU code paths run on a machine without a GPU.
 *
 * <p>Threading: safe from any thread (the holder idiom runs the probe once).
 */
public final class CudaSupport {

    /** System property: the path of a CUDA driver library to load instead of the NVIDIA driver's. */
    public static final String EMULATOR_PROPERTY = "troupe.cuda.emulator";

    private CudaSupport() {
    }

    /** The cached result of the probe. */
    public static CudaAvailability availability() {
        return Holder.AVAILABILITY;
    }

    /** Shorthand for {@code availability().isAvailable()}. */
    public static boolean isAvailable() {
        return availability().isAvailable();
    }

    /** True when CUDA is available through the emulator library ({@value #EMULATOR_PROPERTY}), not a GPU. */
    public static boolean isEmulated() {
        return isAvailable() && !System.getProperty(EMULATOR_PROPERTY, "").isEmpty();
    }

    private static final class Holder {
        static final CudaAvailability AVAILABILITY = probe();
    }

    static CudaAvailability probe() {
        try {
            String emulator = System.getProperty(EMULATOR_PROPERTY, "");
            if (!emulator.isEmpty()) {
                return probeEmulator(Path.of(emulator));
            }
            if (!Files.exists(Path.of("/dev/nvidiactl")) && !Files.exists(Path.of("/proc/driver/nvidia"))) {
                return CudaAvailability.absent("no NVIDIA driver on this machine: neither /dev/nvidiactl nor "
                    + "/proc/driver/nvidia exists");
            }
            return probeDriver();
        } catch (Throwable t) {
            return CudaAvailability.absent("CUDA driver unusable: " + t);
        }
    }

    private static CudaAvailability probeEmulator(Path library) {
        if (!Files.isRegularFile(library)) {
            return CudaAvailability.absent("the CUDA emulator library " + library + " (-D" + EMULATOR_PROPERTY
                + ") does not exist: build it with runtime/src/test/cuda-emu/build-emu.sh");
        }
        // Loaded before JCuda's own library, whose dependency on libcuda.so.1 it then satisfies.
        System.load(library.toAbsolutePath().toString());
        CudaAvailability a = probeDriver();
        return a.isAvailable()
            ? new CudaAvailability(true, a.deviceCount(), "CUDA emulator " + library + ": kernels run on the CPU")
            : a;
    }

    private static CudaAvailability probeDriver() {
        try {
            JCudaDriver.setExceptionsEnabled(false);
            int rc = JCudaDriver.cuInit(0);
            if (rc != CUresult.CUDA_SUCCESS) {
                return CudaAvailability.absent("cuInit failed: " + CUresult.stringFor(rc) + " (" + rc + ")");
            }
            int[] count = new int[1];
            rc = JCudaDriver.cuDeviceGetCount(count);
            if (rc != CUresult.CUDA_SUCCESS) {
                return CudaAvailability.absent("cuDeviceGetCount failed: " + CUresult.stringFor(rc) + " (" + rc + ")");
            }
            if (count[0] == 0) {
                return CudaAvailability.absent("the NVIDIA driver loaded but reports no CUDA device");
            }
            return new CudaAvailability(true, count[0], count[0] + " CUDA device(s) found");
        } catch (UnsatisfiedLinkError e) {
            return CudaAvailability.absent("JCuda's native driver library did not load (is libcuda.so.1 installed?): "
                + e.getMessage());
        }
    }
}
