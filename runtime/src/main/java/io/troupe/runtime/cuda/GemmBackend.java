package io.troupe.runtime.cuda;

/** Whose GEMM {@link CudaDevice} runs. */
public enum GemmBackend {
    /** Troupe's own kernels (gemm.cu): always there. */
    TROUPE,
    /**
     * NVIDIA cuBLAS through JCublas, when its native library loads (JCuda 12.6 needs libcublas.so.12,
     * so CUDA 12 machines only); otherwise the device falls back to {@link #TROUPE}.
     */
    CUBLAS
}
