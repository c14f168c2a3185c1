package io.troupe.runtime.device;

import io.troupe.runtime.cpu.CpuDevice;

/** Opens the device a user asked for: {@code cpu}, {@code cuda}, or {@code auto} (CUDA when present, else CPU). */
public final class Devices {
    private Devices() {
    }

    /**
     * @param threads CPU thread budget (also used for host-side work of GPU devices)
     * @throws DeviceUnavailableException when {@code cuda} is asked for and cannot be used
     */
    public static Device open(DeviceKind kind, int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1: threads=" + threads);
        }
        return switch (kind) {
            case CPU -> new CpuDevice(threads);
            case CUDA -> throw new DeviceUnavailableException(cudaUnavailableReason());
            case AUTO -> new CpuDevice(threads);
        };
    }

    /** Why CUDA cannot be used in this build or on this machine. */
    public static String cudaUnavailableReason() {
        return "--device cuda: the CUDA backend is not part of this build yet; use --device cpu or auto";
    }
}
