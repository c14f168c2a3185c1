package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuDevice.requireCapacity;
import static io.troupe.runtime.cpu.CpuDevice.rowGrain;

import io.troupe.runtime.tensor.Tensor;

/**
 * The LayerNorm family of {@link CpuDevice}: the forward, the forward fused with the residual add
 * before it, and the backward (input gradient by rows; weight and bias gradients by columns, each
 * thread walking every row in order, so the sums do not depend on the thread count; one pass over
 * the rows on a single thread, bitwise the same). Rows are split over the device's threads.
 */
final class CpuLayerNorms {
    private final CpuParallel parallel;

    CpuLayerNorms(CpuParallel parallel) {
        this.parallel = parallel;
    }

    void layerNorm(Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean, Tensor rstd,
                          int rows, int cols, float eps) {
        long n = (long) rows * cols;
        requireCapacity(inp, n, "layerNorm inp");
        requireCapacity(out, n, "layerNorm out");
        requireCapacity(weight, cols, "layerNorm weight");
        requireCapacity(bias, cols, "layerNorm bias");
        requireCapacity(mean, rows, "layerNorm mean");
        requireCapacity(rstd, rows, "layerNorm rstd");
        long ia = inp.address();
        long oa = out.address();
        long wa = weight.address();
        long ba = bias.address();
        long ma = mean.address();
        long ra = rstd.address();
        parallel.forRange(rows, rowGrain(cols), (s, e) -> CpuRows.layerNorm(ia, wa, ba, oa, ma, ra, s, e, cols, eps));
    }

    void residualLayerNorm(Tensor a, Tensor b, Tensor sum, Tensor weight, Tensor bias, Tensor out,
                                  Tensor mean, Tensor rstd, int rows, int cols, float eps) {
        long n = (long) rows * cols;
        requireCapacity(a, n, "residualLayerNorm a");
        requireCapacity(b, n, "residualLayerNorm b");
        requireCapacity(sum, n, "residualLayerNorm sum");
        requireCapacity(out, n, "residualLayerNorm out");
        requireCapacity(weight, cols, "residualLayerNorm weight");
        requireCapacity(bias, cols, "residualLayerNorm bias");
        requireCapacity(mean, rows, "residualLayerNorm mean");
        requireCapacity(rstd, rows, "residualLayerNorm rstd");
        long aa = a.address();
        long ba = b.address();
        long sa = sum.address();
        long oa = out.address();
        long wa = weight.address();
        long bias0 = bias.address();
        long ma = mean.address();
        long ra = rstd.address();
        parallel.forRange(rows, rowGrain(cols),
            (s, e) -> CpuRows.residualLayerNorm(aa, ba, sa, wa, bias0, oa, ma, ra, s, e, cols, eps));
    }

    void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
                                  Tensor weight, Tensor mean, Tensor rstd, int rows, int cols) {
        long n = (long) rows * cols;
        requireCapacity(dinp, n, "layerNormBackward dinp");
        requireCapacity(dout, n, "layerNormBackward dout");
        requireCapacity(inp, n, "layerNormBackward inp");
        requireCapacity(dweight, cols, "layerNormBackward dweight");
        requireCapacity(dbias, cols, "layerNormBackward dbias");
        requireCapacity(weight, cols, "layerNormBackward weight");
        requireCapacity(mean, rows, "layerNormBackward mean");
        requireCapacity(rstd, rows, "layerNormBackward rstd");
        long dia = dinp.address();
        long dwa = dweight.address();
        long dba = dbias.address();
        long ga = dout.address();
        long ia = inp.address();
        long wa = weight.address();
        long ma = mean.address();
        long ra = rstd.address();
        if (parallel.threads() == 1) {
            // One pass over the rows; bitwise the same as the two passes below.
            CpuRows.layerNormBackward(dia, dwa, dba, ga, ia, wa, ma, ra, rows, cols);
            return;
        }
        parallel.forRange(rows, rowGrain(cols),
            (s, e) -> CpuRows.layerNormBackwardInput(dia, ga, ia, wa, ma, ra, s, e, cols));
        parallel.forRange(cols, 16, (s, e) -> CpuRows.layerNormParamGrads(dwa, dba, ga, ia, ma, ra, rows, cols, s, e));
    }
}
