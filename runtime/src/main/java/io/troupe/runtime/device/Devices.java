package io.troupe.runtime.device;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.CudaAvailability;
import io.troupe.runtime.cuda.CudaDevice;
import io.troupe.runtime.cuda.CudaSupport;

/** Opens the device a user asked for: {@code cpu}, {@code cuda}, or {@code auto} (CUDA when present, else CPU). */
public final class Devices {
    private Devices() {
    }

    /**
     * Opens {@code cpu}, {@code cuda:0}, or for {@code auto} the GPU when {@link CudaSupport} finds one
     * and the CPU otherwise. Detection never throws; it runs once per process.
     *
     * @param threads CPU thread budget (also used for host-side work of GPU devices)
     * @throws DeviceUnavailableException when {@code cuda} is asked for and cannot be used
     */
    public static Device open(DeviceKind kind, int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1: threads=" + threads);
        }
        return switch (kind) {
            case CPU -> new CpuDevice(threads);
            case CUDA -> openCuda();
            case AUTO -> CudaSupport.isAvailable() ? openCuda() : new CpuDevice(threads);
        };
    }

    private static Device openCuda() {
        CudaAvailability a = CudaSupport.availability();
        if (!a.isAvailable()) {
            throw new DeviceUnavailableException(cudaUnavailableReason());
        }
        try {
            return new CudaDevice(0);
        } catch (RuntimeException e) {
            throw new DeviceUnavailableException("--device cuda: the GPU could not be opened: " + e.getMessage());
        }
    }

    /** Why CUDA cannot be used on this machine (or that it can). */
    public static String cudaUnavailableReason() {
        CudaAvailability a = CudaSupport.availability();
        return a.isAvailable() ? "CUDA is available: " + a.reason()
            : "--device cuda: no usable GPU (" + a.reason() + "); use --device cpu or auto";
    }
}
