package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.BLOCK;
import static io.troupe.runtime.cuda.CudaLaunch.ceilDiv;
import static io.troupe.runtime.cuda.CudaLaunch.f32;
import static io.troupe.runtime.cuda.CudaLaunch.launch;

import io.troupe.runtime.tensor.Tensor;

/**
 * The fused ops of {@link CudaDevice} (kernels in fused.cu): bias + GELU after the MLP's first GEMM and
 * its backward with the bias gradient, and the residual add fused with the following LayerNorm, forward
 * and backward. Column sums go through per-part partials in scratch memory, reduced in a fixed order.
 */
final class CudaFusedOps {
    /** Rows per partial of the bias gradient in {@code gelu_bwd_bias_partial}. */
    static final int GELU_BWD_ROWS_PER_PART = 256;
    /** Rows per block of {@code residual_layernorm_bwd} (LN_BWD_ROWS in fused.cu). */
    static final int LN_BWD_ROWS = 32;
    private static final int MAX_GRID_Y = 65535;

    private CudaFusedOps() {
    }

    static void biasAddGelu(CudaDevice dev, Tensor preact, Tensor bias, Tensor out, int rows, int cols) {
        String op = "biasAddGelu";
        long n = (long) rows * cols;
        requireDistinct(op, "preact", preact, "out", out);
        launch(dev, op, "bias_gelu_fwd", ceilDiv(cols, BLOCK), Math.min(rows, MAX_GRID_Y), 1, BLOCK, 1, 1, 0,
            dev.args().reset().ptr(f32(dev, preact, n, op, "preact")).ptr(f32(dev, bias, cols, op, "bias"))
                .ptr(f32(dev, out, n, op, "out")).i32(rows).i32(cols));
    }

    static void geluBackwardBias(CudaDevice dev, Tensor preact, Tensor dout, Tensor dpreact, Tensor dbias, int rows,
                                 int cols) {
        String op = "geluBackwardBias";
        long n = (long) rows * cols;
        long pPre = f32(dev, preact, n, op, "preact");
        long pDout = f32(dev, dout, n, op, "dout");
        long pDpre = f32(dev, dpreact, n, op, "dpreact");
        long pDbias = f32(dev, dbias, cols, op, "dbias");
        if (rows <= 0 || cols <= 0) {
            return;
        }
        int parts = ceilDiv(rows, GELU_BWD_ROWS_PER_PART);
        try (CudaStorage partial = dev.scratch(4L * parts * cols)) {
            launch(dev, op, "gelu_bwd_bias_partial", ceilDiv(cols, 32), parts, 1, 32, 8, 1, 0, dev.args().reset()
                .ptr(pPre).ptr(pDout).ptr(pDpre).ptr(partial.address()).i32(rows).i32(cols)
                .i32(GELU_BWD_ROWS_PER_PART));
            reduceColumns(dev, op, partial.address(), parts, cols, pDbias);
        }
    }

    static void residualLayerNorm(CudaDevice dev, Tensor a, Tensor b, Tensor sum, Tensor weight, Tensor bias,
                                  Tensor out, Tensor mean, Tensor rstd, int rows, int cols, float eps) {
        String op = "residualLayerNorm";
        long n = (long) rows * cols;
        requireDistinct(op, "b", b, "sum", sum);
        launch(dev, op, "residual_layernorm_fwd", ceilDiv(rows, 8), 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(f32(dev, a, n, op, "a")).ptr(f32(dev, b, n, op, "b")).ptr(f32(dev, sum, n, op, "sum"))
            .ptr(f32(dev, weight, cols, op, "weight")).ptr(f32(dev, bias, cols, op, "bias"))
            .ptr(f32(dev, out, n, op, "out")).ptr(f32(dev, mean, rows, op, "mean"))
            .ptr(f32(dev, rstd, rows, op, "rstd")).i32(rows).i32(cols).f32(eps));
    }

    static void residualLayerNormBackward(CudaDevice dev, Tensor dsum, Tensor dweight, Tensor dbias, Tensor dresidual,
                                          Tensor dout, Tensor sum, Tensor weight, Tensor mean, Tensor rstd, int rows,
                                          int cols) {
        String op = "residualLayerNormBackward";
        long n = (long) rows * cols;
        long pDsum = f32(dev, dsum, n, op, "dsum");
        long pDres = f32(dev, dresidual, n, op, "dresidual");
        if (pDsum != pDres && pDsum < pDres + 4 * n && pDres < pDsum + 4 * n) {
            throw new IllegalArgumentException(op + ": dsum must be dresidual itself or not overlap it");
        }
        long pDout = f32(dev, dout, n, op, "dout");
        long pSum = f32(dev, sum, n, op, "sum");
        if (pDout < pDsum + 4 * n && pDsum < pDout + 4 * n || pSum < pDsum + 4 * n && pDsum < pSum + 4 * n) {
            throw new IllegalArgumentException(op + ": dout and sum must not overlap dsum");
        }
        long pW = f32(dev, weight, cols, op, "weight");
        long pMean = f32(dev, mean, rows, op, "mean");
        long pRstd = f32(dev, rstd, rows, op, "rstd");
        long pDw = f32(dev, dweight, cols, op, "dweight");
        long pDb = f32(dev, dbias, cols, op, "dbias");
        if (rows <= 0 || cols <= 0) {
            return;
        }
        int blocks = ceilDiv(rows, LN_BWD_ROWS);
        long partBytes = 4L * blocks * cols;
        try (CudaStorage partials = dev.scratch(2 * partBytes)) {
            long pPartW = partials.address();
            long pPartB = pPartW + partBytes;
            launch(dev, op, "residual_layernorm_bwd", blocks, 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
                .ptr(pDsum).ptr(pDres).ptr(pDout).ptr(pSum).ptr(pW).ptr(pMean).ptr(pRstd).ptr(pPartW).ptr(pPartB)
                .i32(rows).i32(cols));
            reduceColumns(dev, op, pPartW, blocks, cols, pDw);
            reduceColumns(dev, op, pPartB, blocks, cols, pDb);
        }
    }

    /** {@code dst[c] += sum_p partial[p, c]} in part order. */
    private static void reduceColumns(CudaDevice dev, String op, long partial, int parts, int cols, long dst) {
        launch(dev, op, "col_partials_reduce", ceilDiv(cols, BLOCK), 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(partial).i32(parts).i32(cols).ptr(dst));
    }

    private static void requireDistinct(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (a.storage() == b.storage() && a.offsetElements() == b.offsetElements()) {
            throw new IllegalArgumentException(op + ": " + nameB + " must not alias " + nameA);
        }
    }
}
