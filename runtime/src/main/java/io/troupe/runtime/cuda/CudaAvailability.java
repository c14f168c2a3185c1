package io.troupe.runtime.cuda;

/**
 * Whether CUDA can be used in this process, and why not when it cannot.
 *
 * @param available   true when the driver initialised and at least one device is present
 * @param deviceCount devices the driver reports (0 when unavailable)
 * @param reason      a sentence for people: the devices found, or what is missing
 */
public record CudaAvailability(boolean available, int deviceCount, String reason) {

    /** Same as {@link #available()}; reads well in {@code assumeTrue(a.isAvailable(), a.reason())}. */
    public boolean isAvailable() {
        return available;
    }

    static CudaAvailability absent(String reason) {
        return new CudaAvailability(false, 0, reason);
    }
}
