package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuDevice.elementwise;
import static io.troupe.runtime.cpu.CpuDevice.requireCapacity;
import static io.troupe.runtime.cpu.CpuDevice.rowGrain;

import io.troupe.runtime.tensor.Tensor;

/**
 * The bias and GELU kernels of {@link CpuDevice}: bias add (alone, or fused with the residual add
 * or with the GELU), the bias gradient as column sums, and the GELU forward and backward (alone, or
 * fused with the bias gradient); each fused kernel is bitwise its unfused sequence, for any thread
 * count. Rows or elements are split over the device's threads.
 */
final class CpuBiasGelu {
    private final CpuParallel parallel;

    CpuBiasGelu(CpuParallel parallel) {
        this.parallel = parallel;
    }

    /** Bias add and residual add in one pass over staged rows; bitwise {@link #biasAdd} then {@link CpuDevice#add}. */
    void biasAddResidual(Tensor out, Tensor bias, Tensor residual, int rows, int cols) {
        requireCapacity(out, (long) rows * cols, "biasAddResidual out");
        requireCapacity(residual, (long) rows * cols, "biasAddResidual residual");
        requireCapacity(bias, cols, "biasAddResidual bias");
        long oa = out.address();
        long ba = bias.address();
        long ra = residual.address();
        parallel.forRange(rows, rowGrain(cols), (s, e) -> CpuRows.biasAddResidual(oa, ba, ra, s, e, cols));
    }

    void biasAdd(Tensor out, Tensor bias, int rows, int cols) {
        requireCapacity(out, (long) rows * cols, "biasAdd out");
        requireCapacity(bias, cols, "biasAdd bias");
        long oa = out.address();
        long ba = bias.address();
        parallel.forRange(rows, rowGrain(cols), (s, e) -> CpuRows.biasAdd(oa, ba, s, e, cols));
    }

    void biasBackward(Tensor dbias, Tensor dout, int rows, int cols) {
        requireCapacity(dout, (long) rows * cols, "biasBackward dout");
        requireCapacity(dbias, cols, "biasBackward dbias");
        long da = dout.address();
        long ga = dbias.address();
        parallel.forRange(cols, 16, (s, e) -> CpuRows.columnSums(da, ga, rows, cols, s, e));
    }

    void gelu(Tensor inp, Tensor out, long n) {
        requireCapacity(inp, n, "gelu inp");
        requireCapacity(out, n, "gelu out");
        long ia = inp.address();
        long oa = out.address();
        elementwise(parallel, n, (s, e) -> CpuGelu.forward(ia, oa, s, e));
    }

    void biasAddGelu(Tensor preact, Tensor bias, Tensor out, int rows, int cols) {
        requireCapacity(preact, (long) rows * cols, "biasAddGelu preact");
        requireCapacity(out, (long) rows * cols, "biasAddGelu out");
        requireCapacity(bias, cols, "biasAddGelu bias");
        if (preact.address() == out.address()) {
            throw new IllegalArgumentException("biasAddGelu out must not alias preact: both at " + preact.address());
        }
        long pa = preact.address();
        long ba = bias.address();
        long oa = out.address();
        parallel.forRange(rows, rowGrain(cols), (s, e) -> CpuGelu.biasForward(pa, ba, oa, s, e, cols));
    }

    void geluBackward(Tensor inp, Tensor dout, Tensor dinp, long n) {
        requireCapacity(inp, n, "geluBackward inp");
        requireCapacity(dout, n, "geluBackward dout");
        requireCapacity(dinp, n, "geluBackward dinp");
        long ia = inp.address();
        long ga = dout.address();
        long da = dinp.address();
        elementwise(parallel, n, (s, e) -> CpuGelu.backward(ia, ga, da, s, e));
    }

    /**
     * One pass: each row's GELU gradient is summed into per-block column sums while it is staged
     * ({@link CpuGelu#backwardBias}), so {@code dout} and {@code dpreact} are not read again for the
     * bias gradient. Bitwise {@link #geluBackward} then {@link #biasBackward}, for any thread count.
     */
    void geluBackwardBias(Tensor preact, Tensor dout, Tensor dpreact, Tensor dbias, int rows, int cols) {
        long n = (long) rows * cols;
        requireCapacity(preact, n, "geluBackwardBias preact");
        requireCapacity(dout, n, "geluBackwardBias dout");
        requireCapacity(dpreact, n, "geluBackwardBias dpreact");
        requireCapacity(dbias, cols, "geluBackwardBias dbias");
        int blocks = (rows + CpuRows.ROW_BLOCK - 1) / CpuRows.ROW_BLOCK;
        if ((long) blocks * cols > Integer.MAX_VALUE) {
            geluBackward(preact, dout, dpreact, n);
            biasBackward(dbias, dpreact, rows, cols);
            return;
        }
        float[] partial = CpuGelu.partialSums(blocks * cols);
        long ia = preact.address();
        long ga = dout.address();
        long da = dpreact.address();
        parallel.forRange(blocks, 1,
            (s, e) -> CpuGelu.backwardBias(ia, ga, da, partial, s, e, rows, cols, CpuRows.ROW_BLOCK));
        CpuRows.addBlockSums(partial, blocks, cols, dbias.address());
    }
}
