package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuDevice.requireCapacity;

import io.troupe.runtime.tensor.Tensor;

/**
 * The batched gemm of {@link CpuDevice} on OpenBLAS over raw addresses, with its checks of sizes,
 * leading dimensions and capacities: batches run concurrently when there are enough of them and
 * their C matrices are disjoint; otherwise each large product is split by rows (or columns) of C
 * over the device's threads, each block one OpenBLAS call.
 */
final class CpuGemm {
    private final CpuParallel parallel;

    CpuGemm(CpuParallel parallel) {
        this.parallel = parallel;
    }

    void gemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Tensor a, int lda, long strideA, Tensor b, int ldb, long strideB,
                     float beta, Tensor c, int ldc, long strideC, int batch) {
        checkGemm(transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch);
        final long aBase = a.address();
        final long bBase = b.address();
        final long cBase = c.address();
        // Batches run concurrently only when their C matrices are disjoint: with strideC = 0 (or any
        // overlap) batch i must see what batch i-1 left in C, e.g. summing products with beta = 1.
        boolean disjointC = strideC >= (long) (m - 1) * ldc + n;
        if (batch >= parallel.threads() && batch > 1 && disjointC) {
            parallel.forRange(batch, 1, (s, e) -> {
                for (int i = s; i < e; i++) {
                    CpuBlas.sgemm(transA, transB, m, n, k, alpha, aBase + 4 * i * strideA, lda,
                        bBase + 4 * i * strideB, ldb, beta, cBase + 4 * i * strideC, ldc);
                }
            });
            return;
        }
        for (int i = 0; i < batch; i++) {
            long ai = aBase + 4 * i * strideA;
            long bi = bBase + 4 * i * strideB;
            long ci = cBase + 4 * i * strideC;
            long work = (long) m * n * k;
            if (work < (1L << 18) || parallel.threads() == 1) {
                CpuBlas.sgemm(transA, transB, m, n, k, alpha, ai, lda, bi, ldb, beta, ci, ldc);
            } else if (m >= n) {
                // Split rows of C: row block [s, e) reads rows (or columns, when transposed) s..e of A.
                parallel.forRange(m, 16, (s, e) -> CpuBlas.sgemm(transA, transB, e - s, n, k, alpha,
                    ai + 4L * (transA ? s : (long) s * lda), lda, bi, ldb, beta, ci + 4L * s * ldc, ldc));
            } else {
                parallel.forRange(n, 16, (s, e) -> CpuBlas.sgemm(transA, transB, m, e - s, k, alpha,
                    ai, lda, bi + 4L * (transB ? (long) s * ldb : s), ldb, beta, ci + 4L * s, ldc));
            }
        }
    }

    private static void checkGemm(boolean transA, boolean transB, int m, int n, int k, Tensor a, int lda, long strideA,
                                  Tensor b, int ldb, long strideB, Tensor c, int ldc, long strideC, int batch) {
        if (m < 0 || n < 0 || k < 0 || batch < 1) {
            throw new IllegalArgumentException("bad gemm sizes: m=" + m + ", n=" + n + ", k=" + k + ", batch=" + batch);
        }
        int aRows = transA ? k : m;
        int aCols = transA ? m : k;
        int bRows = transB ? n : k;
        int bCols = transB ? k : n;
        if (lda < Math.max(1, aCols) || ldb < Math.max(1, bCols) || ldc < Math.max(1, n)) {
            throw new IllegalArgumentException("bad gemm leading dimensions: lda=" + lda + ", ldb=" + ldb
                + ", ldc=" + ldc
                + " for m=" + m + ", n=" + n + ", k=" + k + ", transA=" + transA + ", transB=" + transB);
        }
        requireCapacity(a, strideA * (batch - 1) + (long) (aRows - 1) * lda + aCols, "gemm A");
        requireCapacity(b, strideB * (batch - 1) + (long) (bRows - 1) * ldb + bCols, "gemm B");
        requireCapacity(c, strideC * (batch - 1) + (long) (m - 1) * ldc + n, "gemm C");
    }
}
