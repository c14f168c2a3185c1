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
 * <p>Threading: safe from any thread (the holder idiom runs the probe once).
 */
public final class CudaSupport {

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

    private static final class Holder {
        static final CudaAvailability AVAILABILITY = probe();
    }

    static CudaAvailability probe() {
        try {
            if (!Files.exists(Path.of("/dev/nvidiactl")) && !Files.exists(Path.of("/proc/driver/nvidia"))) {
                return CudaAvailability.absent("no NVIDIA driver on this machine: neither /dev/nvidiactl nor "
                    + "/proc/driver/nvidia exists");
            }
            return probeDriver();
        } catch (Throwable t) {
            return CudaAvailability.absent("CUDA driver unusable: " + t);
        }
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
