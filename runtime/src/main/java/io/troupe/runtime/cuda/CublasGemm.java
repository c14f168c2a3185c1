package io.troupe.runtime.cuda;

import jcuda.Pointer;
import jcuda.cudaDataType;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasComputeType;
import jcuda.jcublas.cublasGemmAlgo;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasOperation;
import jcuda.jcublas.cublasStatus;
import jcuda.runtime.cudaStream_t;

/**
 * cuBLAS GEMM through JCublas, for devices where its native library loads. Row-major
 * {@code C = op(A) op(B)} is computed as the column-major {@code C^T = op(B)^T op(A)^T}, so A and B
 * swap places and keep their transpose flags. One handle per device, bound to the device's stream.
 *
 * <p>{@link #open} never throws for a missing library: JCublas's classes are unusable after their
 * first load failed, so the first failure is cached and reported by {@link #unavailableReason()}.
 */
final class CublasGemm implements AutoCloseable {
    private static volatile String unavailableReason;

    private final cublasHandle handle = new cublasHandle();

    private CublasGemm() {
    }

    /** Why cuBLAS is not in use, or null when it is (or was never tried). */
    static String unavailableReason() {
        return unavailableReason;
    }

    /**
     * A cuBLAS handle on the current context and {@code stream}, or null (with
     * {@link #unavailableReason()} set) when JCublas or libcublas cannot be loaded.
     */
    static CublasGemm open(CUstream stream) {
        if (unavailableReason != null) {
            return null;
        }
        try {
            JCublas2.setExceptionsEnabled(false);
            CublasGemm g = new CublasGemm();
            int rc = JCublas2.cublasCreate(g.handle);
            if (rc != cublasStatus.CUBLAS_STATUS_SUCCESS) {
                unavailableReason = "cublasCreate failed: " + cublasStatus.stringFor(rc);
                return null;
            }
            check("cublasSetStream", JCublas2.cublasSetStream(g.handle, new cudaStream_t(stream)));
            return g;
        } catch (Throwable t) {
            unavailableReason = "JCublas did not load (it needs libcublas.so.12 from CUDA 12): " + t;
            return null;
        }
    }

    private static void check(String call, int rc) {
        if (rc != cublasStatus.CUBLAS_STATUS_SUCCESS) {
            throw new CudaException("CUDA gemm failed: " + call + " returned " + cublasStatus.stringFor(rc), rc);
        }
    }

    /**
     * Row-major batched gemm. {@code a}, {@code b}: float32, or bfloat16 when {@code bf16}; c float32.
     * Strides and leading dimensions in elements, as in {@link io.troupe.runtime.device.Device#gemmBatched}.
     */
    void gemm(GemmPrecision precision, boolean bf16, boolean transA, boolean transB, int m, int n, int k, float alpha,
              CUdeviceptr a, int lda, long strideA, CUdeviceptr b, int ldb, long strideB, float beta, CUdeviceptr c,
              int ldc, long strideC, int batch) {
        int abType = bf16 ? cudaDataType.CUDA_R_16BF : cudaDataType.CUDA_R_32F;
        int compute = !bf16 && precision == GemmPrecision.TF32 ? cublasComputeType.CUBLAS_COMPUTE_32F_FAST_TF32
            : cublasComputeType.CUBLAS_COMPUTE_32F;
        int opA = transA ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N;
        int opB = transB ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N;
        check("cublasGemmStridedBatchedEx", JCublas2.cublasGemmStridedBatchedEx(handle, opB, opA, n, m, k,
            Pointer.to(new float[] {alpha}), b, abType, ldb, strideB, a, abType, lda, strideA,
            Pointer.to(new float[] {beta}), c, cudaDataType.CUDA_R_32F, ldc, strideC, batch, compute,
            cublasGemmAlgo.CUBLAS_GEMM_DEFAULT));
    }

    @Override
    public void close() {
        JCublas2.cublasDestroy(handle);
    }
}
