package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.f32;
import static io.troupe.runtime.cuda.CudaLaunch.launch;
import static io.troupe.runtime.cuda.CudaLaunch.launch1d;
import static io.troupe.runtime.cuda.CudaLaunch.storage;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import jcuda.driver.CUdeviceptr;

/**
 * GEMM dispatch for {@link CudaDevice}: checks the operands' extents, picks cuBLAS (when given one) or
 * Troupe's SGEMM, TF32 or BF16 kernel, converts float32 operands to bfloat16 scratch when the BF16
 * path needs it, and splits batches larger than the grid's z limit.
 *
 * <p>Kernel parameters (gemm.cu): {@code m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C,
 * ldc, strideC}; grid (ceil(n/128), ceil(m/128), batch), 256 threads.
 */
final class CudaGemm {
    private static final int TILE = 128;
    private static final int MAX_GRID_Z = 65535;

    private final CudaDevice dev;

    CudaGemm(CudaDevice dev) {
        this.dev = dev;
    }

    void gemmBatched(GemmPrecision precision, CublasGemm cublas, boolean transA, boolean transB, int m, int n, int k,
                     float alpha, Tensor a, int lda, long strideA, Tensor b, int ldb, long strideB, float beta,
                     Tensor c, int ldc, long strideC, int batch) {
        String op = "gemm";
        if (m <= 0 || n <= 0 || k <= 0 || batch <= 0) {
            throw new IllegalArgumentException("gemm sizes must be positive: m=" + m + ", n=" + n + ", k=" + k
                + ", batch=" + batch);
        }
        int rowsA = transA ? k : m;
        int colsA = transA ? m : k;
        int rowsB = transB ? n : k;
        int colsB = transB ? k : n;
        long spanA = extent(op, "a", rowsA, colsA, lda, strideA, batch);
        long spanB = extent(op, "b", rowsB, colsB, ldb, strideB, batch);
        long spanC = extent(op, "c", m, n, ldc, strideC, batch);
        storage(dev, a, op, "a");
        storage(dev, b, op, "b");
        CudaLaunch.requireCapacity(op, "a", a, spanA);
        CudaLaunch.requireCapacity(op, "b", b, spanB);
        long pc = f32(dev, c, spanC, op, "c");
        checkOperandType(op, "a", a);
        checkOperandType(op, "b", b);

        boolean bf16 = precision == GemmPrecision.BF16 || a.dtype() == DType.BF16 || b.dtype() == DType.BF16;
        CudaStorage scratchA = null;
        CudaStorage scratchB = null;
        try {
            long pa = a.address();
            long pb = b.address();
            if (bf16 && a.dtype() == DType.F32) {
                scratchA = toBf16(a, spanA);
                pa = scratchA.address();
            }
            if (bf16 && b.dtype() == DType.F32) {
                scratchB = toBf16(b, spanB);
                pb = scratchB.address();
            }
            if (cublas != null) {
                cublas.gemm(precision, bf16, transA, transB, m, n, k, alpha,
                    scratchA != null ? scratchA.pointerAt(0) : devicePointer(a),
                    lda, strideA, scratchB != null ? scratchB.pointerAt(0) : devicePointer(b), ldb, strideB, beta,
                    devicePointer(c), ldc, strideC, batch);
                return;
            }
            boolean tensorCores = bf16 || precision == GemmPrecision.TF32;
            int elemA = bf16 ? 2 : 4;
            int vec = 16 / elemA;
            // 16-byte loads when every vector lies wholly inside or outside its matrix and is aligned.
            boolean vectorLoads = tensorCores
                && vectorizable(pa, lda, strideA, vec, elemA, transA ? m : k)
                && vectorizable(pb, ldb, strideB, vec, elemA, transB ? k : n);
            String prefix = bf16 ? "bf16" : precision == GemmPrecision.TF32 ? "tf32" : "sgemm";
            String kernel = prefix + (vectorLoads ? "v_" : "_") + (transA ? 't' : 'n') + (transB ? 't' : 'n');
            for (int b0 = 0; b0 < batch; b0 += MAX_GRID_Z) {
                int nb = Math.min(MAX_GRID_Z, batch - b0);
                launch(dev, op, kernel, CudaLaunch.ceilDiv(n, TILE), CudaLaunch.ceilDiv(m, TILE), nb, 256, 1, 1, 0,
                    dev.args().reset().i32(m).i32(n).i32(k).f32(alpha)
                        .ptr(pa + b0 * strideA * elemA).i32(lda).i64(strideA)
                        .ptr(pb + b0 * strideB * elemA).i32(ldb).i64(strideB)
                        .f32(beta).ptr(pc + b0 * strideC * 4).i32(ldc).i64(strideC));
            }
        } finally {
            // Ordered on the stream: the gemm reads the scratch before anyone can reuse the block.
            if (scratchA != null) {
                scratchA.close();
            }
            if (scratchB != null) {
                scratchB.close();
            }
        }
    }

    private static CUdeviceptr devicePointer(Tensor t) {
        return ((CudaStorage) t.storage()).pointerAt(t.offsetElements() * t.dtype().sizeBytes());
    }

    /**
     * True when an operand can be read in 16-byte vectors: base address 16-byte aligned, leading
     * dimension and batch stride multiples of the vector width, and the contiguous extent (k for a
     * k-contiguous operand, the row count otherwise) a multiple of it too.
     */
    static boolean vectorizable(long address, int ld, long stride, int vec, int elemBytes, int contiguousExtent) {
        return address % 16 == 0 && ld % vec == 0 && stride % vec == 0 && contiguousExtent % vec == 0
            && (long) vec * elemBytes == 16;
    }

    private static void checkOperandType(String op, String param, Tensor t) {
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) {
            throw new IllegalArgumentException(op + ": " + param + " must be F32 or BF16: dtype=" + t.dtype());
        }
    }

    /** Elements spanned by {@code batch} matrices of (rows, cols) with row stride ld and batch stride. */
    private static long extent(String op, String param, int rows, int cols, int ld, long stride, int batch) {
        if (ld < cols) {
            throw new IllegalArgumentException(op + ": leading dimension of " + param + " below its row length: ld"
                + param + "=" + ld + ", cols=" + cols);
        }
        if (stride < 0) {
            throw new IllegalArgumentException(op + ": stride of " + param + " must be >= 0: stride=" + stride);
        }
        return (long) (batch - 1) * stride + (long) (rows - 1) * ld + cols;
    }

    /** Converts the first {@code span} floats of {@code t} into a bfloat16 scratch block. */
    private CudaStorage toBf16(Tensor t, long span) {
        CudaStorage s = dev.scratch(2 * span);
        launch1d(dev, "gemm", "f32_to_bf16", span, dev.args().reset().i64(span).ptr(t.address()).ptr(s.address()));
        return s;
    }
}
