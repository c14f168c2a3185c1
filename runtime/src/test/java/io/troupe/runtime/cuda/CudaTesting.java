package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Shared assumption for the tests that need a GPU. */
final class CudaTesting {
    static final String SKIP_PREFIX = "no usable GPU, CUDA test skipped: ";

    private CudaTesting() {
    }

    /** Skips the calling test, with the reason CUDA is unavailable, on a machine without a GPU. */
    static void assumeGpu() {
        CudaAvailability a = CudaSupport.availability();
        assumeTrue(a.isAvailable(), SKIP_PREFIX + a.reason());
    }
}
