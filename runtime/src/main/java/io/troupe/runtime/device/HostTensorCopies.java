package io.troupe.runtime.device;

import io.troupe.runtime.tensor.HostStorage;
import io.troupe.runtime.tensor.Tensor;

/**
 * The checks every backend makes on a copy between one of its tensors and a host tensor
 * ({@link Device#copyToHost(Tensor, Tensor)}, {@link Device#copyFromHost(Tensor, Tensor)}), so that a
 * misfit is refused with the same message on every device.
 */
public final class HostTensorCopies {
    private HostTensorCopies() {
    }

    /**
     * Checks a download ({@code src} on the device, {@code hostDst} in host memory) and returns its length
     * in bytes.
     *
     * @throws IllegalArgumentException naming the element counts, the dtypes or the tensor not in host memory
     */
    public static long checkDownload(Tensor src, Tensor hostDst) {
        requireHostMemory("copyToHost", "hostDst", hostDst);
        return requireSameWindow("copyToHost", "src", src, "hostDst", hostDst);
    }

    /**
     * Checks an upload ({@code hostSrc} in host memory, {@code dst} on the device) and returns its length in
     * bytes.
     *
     * @throws IllegalArgumentException naming the element counts, the dtypes or the tensor not in host memory
     */
    public static long checkUpload(Tensor hostSrc, Tensor dst) {
        requireHostMemory("copyFromHost", "hostSrc", hostSrc);
        return requireSameWindow("copyFromHost", "hostSrc", hostSrc, "dst", dst);
    }

    /** Refuses {@code t} unless its storage is open host memory. */
    public static void requireHostMemory(String op, String param, Tensor t) {
        if (!(t.storage() instanceof HostStorage)) {
            throw new IllegalArgumentException(op + ": " + param
                + " must be in host memory (a CPU tensor or a pinned buffer): it is " + t);
        }
        if (!t.storage().isOpen()) {
            throw new IllegalArgumentException(op + ": " + param + " is closed: " + t);
        }
    }

    private static long requireSameWindow(String op, String srcName, Tensor src, String dstName, Tensor dst) {
        if (src.numel() != dst.numel()) {
            throw new IllegalArgumentException(op + ": element counts differ: " + srcName + " has " + src.numel()
                + ", " + dstName + " has " + dst.numel());
        }
        if (src.dtype() != dst.dtype()) {
            throw new IllegalArgumentException(op + ": dtypes differ: " + srcName + " is " + src.dtype() + ", "
                + dstName + " is " + dst.dtype());
        }
        return src.lengthBytes();
    }
}
