package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static io.troupe.runtime.cpu.CpuMemory.getInt;
import static io.troupe.runtime.cpu.CpuMemory.putFloat;

import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.device.DecodeReference;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.device.HostTensorCopies;
import io.troupe.runtime.device.PagedRows;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.HostStorage;
import io.troupe.runtime.tensor.Tensor;
import java.nio.FloatBuffer;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * The CPU backend. Tensors live in off-heap, 64-byte aligned {@link CpuStorage}; gemm goes to
 * OpenBLAS on raw addresses; every other kernel is a Java loop split over this device's thread
 * budget. Every call completes before it returns.
 *
 * <p>Determinism: reductions across rows (bias, LayerNorm and embedding gradients, sums of squares)
 * are split by columns or by fixed-size blocks, so results do not depend on the thread count.
 */
public final class CpuDevice implements Device {
    private static final int ELEMENTWISE_GRAIN = 1 << 14;
    private static final int SUM_BLOCK = 1 << 13;

    private final CpuParallel parallel;
    private final String name;
    private final CpuAttention attention;
    private final AtomicLong bytesInUse = new AtomicLong();

    /** A CPU device with a budget of {@code threads} threads (the caller counts as one). */
    public CpuDevice(int threads) {
        this(threads, CpuBlas::describe);
    }

    /**
     * A CPU device whose BLAS library is loaded, and named, by {@code loadBlas}. Construction is all or
     * nothing: when a part fails after the compute threads have started (the library cannot load), the
     * threads are stopped and the failure is rethrown, a failure of that cleanup added to it as suppressed.
     */
    CpuDevice(int threads, Supplier<String> loadBlas) {
        CpuParallel started = new CpuParallel(threads);
        try {
            this.name = "cpu(" + threads + (threads == 1 ? " thread, " : " threads, ") + loadBlas.get() + ")";
            this.attention = new CpuAttention(started);
        } catch (Throwable failure) {
            try {
                started.close();
            } catch (Throwable cleanup) {
                failure.addSuppressed(cleanup);
            }
            throw failure;
        }
        this.parallel = started;
    }

    public int threads() {
        return parallel.threads();
    }

    /**
     * Bytes held by the live tensors this device {@linkplain #allocate allocated}: each counts from its
     * allocation until its storage is freed (closed, or collected unreachable). Internal scratch memory is not
     * counted. Still readable after {@link #close()}, where it shows what was never freed. Any thread may call it.
     */
    public long bytesInUse() {
        return bytesInUse.get();
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public DeviceKind kind() {
        return DeviceKind.CPU;
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        long n = Tensor.numelOf(shape);
        return new Tensor(this, new CpuStorage(n * dtype.sizeBytes(), bytesInUse), dtype, 0, shape, true);
    }

    @Override
    public void copyFromHost(float[] src, Tensor dst) {
        if (dst.dtype() != DType.F32) {
            throw new IllegalArgumentException("float data needs an F32 tensor, got " + dst.dtype());
        }
        requireCapacity(dst, src.length, "copyFromHost dst");
        UNSAFE.copyMemory(src, ARRAY_FLOAT_BASE, null, dst.address(), (long) src.length * 4);
    }

    @Override
    public void copyFromHost(int[] src, Tensor dst) {
        if (dst.dtype() != DType.I32) {
            throw new IllegalArgumentException("int data needs an I32 tensor, got " + dst.dtype());
        }
        requireCapacity(dst, src.length, "copyFromHost dst");
        UNSAFE.copyMemory(src, ARRAY_INT_BASE, null, dst.address(), (long) src.length * 4);
    }

    @Override
    public void copyToHost(Tensor src, float[] dst) {
        if (src.dtype() != DType.F32) {
            throw new IllegalArgumentException("float copy needs an F32 tensor, got " + src.dtype());
        }
        if (dst.length < src.numel()) {
            throw new IllegalArgumentException("host array too small: length=" + dst.length + ", need=" + src.numel());
        }
        UNSAFE.copyMemory(null, src.address(), dst, ARRAY_FLOAT_BASE, src.numel() * 4);
    }

    /** A plain copy: both tensors are host memory (this device's, or another CPU device's such as pinned memory). */
    @Override
    public void copyToHost(Tensor src, Tensor hostDst) {
        long bytes = HostTensorCopies.checkDownload(src, hostDst);
        HostTensorCopies.requireHostMemory("copyToHost", "src", src);
        UNSAFE.copyMemory(src.address(), hostDst.address(), bytes);
    }

    /** A plain copy, as {@link #copyToHost(Tensor, Tensor)}. */
    @Override
    public void copyFromHost(Tensor hostSrc, Tensor dst) {
        long bytes = HostTensorCopies.checkUpload(hostSrc, dst);
        HostTensorCopies.requireHostMemory("copyFromHost", "dst", dst);
        UNSAFE.copyMemory(hostSrc.address(), dst.address(), bytes);
    }

    @Override
    public void synchronize() {
        // Every CPU call completes before returning.
    }

    // ---------------------------------------------------------------- BLAS-like

    @Override
    public void gemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
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

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        long n = x.numel();
        requireCapacity(y, n, "axpy y");
        long xa = x.address();
        long ya = y.address();
        elementwise(n, (s, e) -> CpuRows.axpy(alpha, xa, ya, s, e));
    }

    @Override
    public void scale(Tensor x, float alpha) {
        long xa = x.address();
        elementwise(x.numel(), (s, e) -> CpuRows.scale(xa, s, e, alpha));
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        requireCapacity(dst, src.numel(), "copy dst");
        UNSAFE.copyMemory(src.address(), dst.address(), src.lengthBytes());
    }

    @Override
    public void fill(Tensor x, float value) {
        if (value == 0f) {
            UNSAFE.setMemory(x.address(), x.lengthBytes(), (byte) 0);
            return;
        }
        if (x.dtype() != DType.F32) {
            throw new IllegalArgumentException("fill with a non-zero value needs F32, got " + x.dtype());
        }
        long xa = x.address();
        elementwise(x.numel(), (s, e) -> {
            for (long i = s; i < e; i++) {
                putFloat(xa, i, value);
            }
        });
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        long n = a.numel();
        requireCapacity(b, n, "add b");
        requireCapacity(out, n, "add out");
        long aa = a.address();
        long ba = b.address();
        long oa = out.address();
        elementwise(n, (s, e) -> CpuRows.add(aa, ba, oa, s, e));
    }

    @Override
    public double sumOfSquares(Tensor x) {
        long n = x.numel();
        int blocks = (int) ((n + SUM_BLOCK - 1) / SUM_BLOCK);
        double[] partial = new double[blocks];
        long xa = x.address();
        parallel.forRange(blocks, 4, (s, e) -> {
            for (int blk = s; blk < e; blk++) {
                long from = (long) blk * SUM_BLOCK;
                partial[blk] = CpuRows.sumOfSquares(xa, from, Math.min(n, from + SUM_BLOCK));
            }
        });
        double total = 0;
        for (double p : partial) {
            total += p;
        }
        return total;
    }

    // ---------------------------------------------------------------- transformer kernels

    /**
     * Largest inner dimension for which {@link #matmulBias} starts C at the bias and runs the gemm with
     * beta = 1: up to it OpenBLAS accumulates the whole k in one block and adds it to C once, so
     * {@code bias + x w^T} rounds exactly as gemm-then-add ({@code CpuDeviceOpsTest} checks it bitwise);
     * past it, k is split into blocks and the bias would join the first block's partial sum.
     */
    static final int FOLD_BIAS_MAX_K = 256;

    private static volatile boolean foldBias = !Boolean.getBoolean("troupe.cpu.unfoldedBias");

    /**
     * Switches {@link #matmulBias}'s folded form on or off (default on; system property
     * {@code troupe.cpu.unfoldedBias=true} starts it off), for same-run comparisons; both give the same floats.
     */
    public static void foldBiasIntoGemm(boolean on) {
        foldBias = on;
    }

    /** Whether {@link #matmulBias} folds the bias into the gemm (for k up to {@link #FOLD_BIAS_MAX_K}). */
    public static boolean foldsBiasIntoGemm() {
        return foldBias;
    }

    /**
     * {@code out = x w^T + bias}: for k up to {@link #FOLD_BIAS_MAX_K}, each row of {@code out} starts as
     * a copy of the bias and the gemm accumulates onto it (beta = 1), which also spares OpenBLAS its
     * zeroing pass; otherwise, and as the reference, gemm then {@link #biasAdd}. Bitwise the same.
     */
    @Override
    public void matmulBias(int rows, int n, int k, Tensor x, Tensor w, Tensor bias, Tensor out) {
        if (!foldBias || k > FOLD_BIAS_MAX_K) {
            matmul(false, true, rows, n, k, 1f, x, w, 0f, out);
            biasAdd(out, bias, rows, n);
            return;
        }
        requireCapacity(out, (long) rows * n, "matmulBias out");
        requireCapacity(bias, n, "matmulBias bias");
        long oa = out.address();
        long ba = bias.address();
        parallel.forRange(rows, rowGrain(n), (s, e) -> CpuRows.broadcastRows(oa, ba, s, e, n));
        matmul(false, true, rows, n, k, 1f, x, w, 1f, out);
    }

    /** Bias add and residual add in one pass over staged rows; bitwise {@link #biasAdd} then {@link #add}. */
    @Override
    public void biasAddResidual(Tensor out, Tensor bias, Tensor residual, int rows, int cols) {
        requireCapacity(out, (long) rows * cols, "biasAddResidual out");
        requireCapacity(residual, (long) rows * cols, "biasAddResidual residual");
        requireCapacity(bias, cols, "biasAddResidual bias");
        long oa = out.address();
        long ba = bias.address();
        long ra = residual.address();
        parallel.forRange(rows, rowGrain(cols), (s, e) -> CpuRows.biasAddResidual(oa, ba, ra, s, e, cols));
    }

    @Override
    public void biasAdd(Tensor out, Tensor bias, int rows, int cols) {
        requireCapacity(out, (long) rows * cols, "biasAdd out");
        requireCapacity(bias, cols, "biasAdd bias");
        long oa = out.address();
        long ba = bias.address();
        parallel.forRange(rows, rowGrain(cols), (s, e) -> CpuRows.biasAdd(oa, ba, s, e, cols));
    }

    @Override
    public void biasBackward(Tensor dbias, Tensor dout, int rows, int cols) {
        requireCapacity(dout, (long) rows * cols, "biasBackward dout");
        requireCapacity(dbias, cols, "biasBackward dbias");
        long da = dout.address();
        long ga = dbias.address();
        parallel.forRange(cols, 16, (s, e) -> CpuRows.columnSums(da, ga, rows, cols, s, e));
    }

    @Override
    public void gelu(Tensor inp, Tensor out, long n) {
        requireCapacity(inp, n, "gelu inp");
        requireCapacity(out, n, "gelu out");
        long ia = inp.address();
        long oa = out.address();
        elementwise(n, (s, e) -> CpuGelu.forward(ia, oa, s, e));
    }

    @Override
    public void biasAddGelu(Tensor preact, Tensor bias, Tensor out, int rows, int cols) {
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

    @Override
    public void geluBackward(Tensor inp, Tensor dout, Tensor dinp, long n) {
        requireCapacity(inp, n, "geluBackward inp");
        requireCapacity(dout, n, "geluBackward dout");
        requireCapacity(dinp, n, "geluBackward dinp");
        long ia = inp.address();
        long ga = dout.address();
        long da = dinp.address();
        elementwise(n, (s, e) -> CpuGelu.backward(ia, ga, da, s, e));
    }

    /**
     * One pass: each row's GELU gradient is summed into per-block column sums while it is staged
     * ({@link CpuGelu#backwardBias}), so {@code dout} and {@code dpreact} are not read again for the
     * bias gradient. Bitwise {@link #geluBackward} then {@link #biasBackward}, for any thread count.
     */
    @Override
    public void geluBackwardBias(Tensor preact, Tensor dout, Tensor dpreact, Tensor dbias, int rows, int cols) {
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

    @Override
    public void layerNorm(Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean, Tensor rstd,
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

    @Override
    public void residualLayerNorm(Tensor a, Tensor b, Tensor sum, Tensor weight, Tensor bias, Tensor out,
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

    @Override
    public void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
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

    /**
     * Switches the Vector API kernels (default on where the JVM has the module {@code jdk.incubator.vector}) on or
     * off, for same-run comparisons: the attention (off: OpenBLAS gemms of the whole (seq, seq) matrices; the two
     * differ in the last bits), the cross-entropy forward (off: the scalar rows; bitwise the same) and AdamW on the
     * tensors in place (off: staged through heap blocks; bitwise the same). System
     * property {@code troupe.cpu.vectorKernels=false} starts them off.
     */
    public static void useVectorKernels(boolean on) {
        CpuAttention.useVectorKernel(on);
    }

    /** Whether the Vector API kernels run: the JVM has the module and they are switched on. */
    public static boolean usesVectorKernels() {
        return CpuAttention.usesVectorKernel();
    }

    @Override
    public void attention(Tensor qkv, Tensor out, Tensor saved, int batch, int seq, int heads, int headDim) {
        attention.forward(qkv, out, saved, batch, seq, heads, headDim);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor saved,
                                  int batch, int seq, int heads, int headDim) {
        attention.backward(dqkv, dout, qkv, saved, batch, seq, heads, headDim);
    }

    @Override
    public void crossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows, int vocab) {
        long n = (long) rows * vocab;
        requireCapacity(logits, n, "crossEntropy logits");
        requireCapacity(probs, n, "crossEntropy probs");
        requireCapacity(losses, rows, "crossEntropy losses");
        requireIds(targets, rows, vocab, "crossEntropy target");
        long la = logits.address();
        long pa = probs.address();
        long lossA = losses.address();
        long ta = targets.address();
        if (CpuAttention.usesVectorKernel()) {
            // bitwise the scalar rows, with the row max, shift and scaling as vectors
            parallel.forRange(rows, rowGrain(vocab),
                (s, e) -> CpuCrossEntropyVector.rows(la, ta, pa, lossA, s, e, vocab));
            return;
        }
        parallel.forRange(rows, rowGrain(vocab), (s, e) -> CpuRows.crossEntropy(la, ta, pa, lossA, s, e, vocab));
    }

    @Override
    public void crossEntropyBackward(Tensor dlogits, Tensor probs, Tensor targets, float dlossScale,
                                     int rows, int vocab) {
        long n = (long) rows * vocab;
        requireCapacity(dlogits, n, "crossEntropyBackward dlogits");
        requireCapacity(probs, n, "crossEntropyBackward probs");
        requireIds(targets, rows, vocab, "crossEntropyBackward target");
        long da = dlogits.address();
        long pa = probs.address();
        long ta = targets.address();
        parallel.forRange(rows, rowGrain(vocab),
            (s, e) -> CpuRows.crossEntropyBackward(da, pa, ta, s, e, vocab, dlossScale));
    }

    @Override
    public void embedding(Tensor out, Tensor ids, Tensor table, int rows, int dim, boolean accumulate) {
        requireCapacity(out, (long) rows * dim, "embedding out");
        int tableRows = (int) (table.numel() / dim);
        requireIds(ids, rows, tableRows, "embedding id");
        long oa = out.address();
        long ia = ids.address();
        long ta = table.address();
        if (accumulate) {
            parallel.forRange(rows, rowGrain(dim), (s, e) -> CpuRows.addTableRows(oa, ia, ta, s, e, dim));
            return;
        }
        parallel.forRange(rows, rowGrain(dim), (s, e) -> {
            for (int r = s; r < e; r++) {
                long src = (long) getInt(ia, r) * dim;
                UNSAFE.copyMemory(ta + 4 * src, oa + 4L * r * dim, 4L * dim);
            }
        });
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids, int rows, int dim) {
        requireCapacity(dout, (long) rows * dim, "embeddingBackward dout");
        int tableRows = (int) (dtable.numel() / dim);
        requireIds(ids, rows, tableRows, "embeddingBackward id");
        long ga = dout.address();
        long ia = ids.address();
        long ta = dtable.address();
        // Split by columns: every thread walks all rows in order, so the sum order is fixed.
        parallel.forRange(dim, 16, (s, e) -> CpuRows.scatterAddRows(ta, ga, ia, rows, dim, s, e));
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step) {
        long n = param.numel();
        requireCapacity(grad, n, "adamw grad");
        requireCapacity(m, n, "adamw m");
        requireCapacity(v, n, "adamw v");
        float beta1 = step.beta1();
        float beta2 = step.beta2();
        float eps = step.eps();
        float decay = 1f - step.lr() * step.weightDecay();
        float stepSize = (float) (step.lr() / (1 - Math.pow(beta1, step.step())));
        float bc2Sqrt = (float) Math.sqrt(1 - Math.pow(beta2, step.step()));
        long pa = param.address();
        long ga = grad.address();
        long ma = m.address();
        long va = v.address();
        if (CpuAttention.usesVectorKernel() && CpuDirectViews.AVAILABLE) {
            elementwise(n, (s, e) -> CpuAdamWVector.adamw(pa, ga, ma, va, s, e, beta1, beta2, eps, decay, stepSize,
                bc2Sqrt));
            return;
        }
        elementwise(n, (s, e) -> CpuRows.adamw(pa, ga, ma, va, s, e, beta1, beta2, eps, decay, stepSize, bc2Sqrt));
    }

    // ---------------------------------------------------------------- decoding: the reference loops in place

    @Override
    public void linearRowInvariant(int rows, int n, int k, Tensor x, Tensor w, Tensor bias, Tensor out) {
        if (!CpuDirectViews.AVAILABLE) {
            Device.super.linearRowInvariant(rows, n, k, x, w, bias, out);
            return;
        }
        DecodeReference.linear(rows, n, k, floats(x, (long) rows * k, "linearRowInvariant x"),
            floats(w, (long) n * k, "linearRowInvariant w"),
            bias == null ? null : floats(bias, n, "linearRowInvariant bias"),
            floats(out, (long) rows * n, "linearRowInvariant out"));
    }

    @Override
    public void pagedKvWrite(Tensor qkv, Tensor keys, Tensor values, PagedRows rows, int width, int blockSize) {
        if (!CpuDirectViews.AVAILABLE) {
            Device.super.pagedKvWrite(qkv, keys, values, rows, width, blockSize);
            return;
        }
        DecodeReference.checkRows("pagedKvWrite", rows, blockSize, keys.numel() / ((long) blockSize * width));
        DecodeReference.kvWrite(floats(qkv, (long) rows.rows() * 3 * width, "pagedKvWrite qkv"),
            floats(keys, keys.numel(), "pagedKvWrite keys"), floats(values, keys.numel(), "pagedKvWrite values"),
            rows, width, blockSize);
    }

    @Override
    public void pagedAttention(Tensor qkv, Tensor keys, Tensor values, Tensor out, PagedRows rows, int heads,
                               int headDim, int blockSize, float scale) {
        if (!CpuDirectViews.AVAILABLE) {
            Device.super.pagedAttention(qkv, keys, values, out, rows, heads, headDim, blockSize, scale);
            return;
        }
        int width = heads * headDim;
        DecodeReference.checkRows("pagedAttention", rows, blockSize, keys.numel() / ((long) blockSize * width));
        DecodeReference.attention(floats(qkv, (long) rows.rows() * 3 * width, "pagedAttention qkv"),
            floats(keys, keys.numel(), "pagedAttention keys"), floats(values, keys.numel(), "pagedAttention values"),
            floats(out, (long) rows.rows() * width, "pagedAttention out"), rows, heads, headDim, blockSize, scale);
    }

    /** The first {@code elements} floats of {@code t}, in place. */
    private static FloatBuffer floats(Tensor t, long elements, String what) {
        requireCapacity(t, elements, what);
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(what + " must be F32: dtype=" + t.dtype());
        }
        return CpuDirectViews.view(t.address(), 4 * elements).asFloatBuffer();
    }

    @Override
    public void close() {
        parallel.close();
        attention.close();
    }

    // ---------------------------------------------------------------- helpers

    @FunctionalInterface
    private interface LongRangeBody {
        void run(long start, long end);
    }

    private void elementwise(long n, LongRangeBody body) {
        if (n <= Integer.MAX_VALUE) {
            parallel.forRange((int) n, ELEMENTWISE_GRAIN, (s, e) -> body.run(s, e));
        } else {
            body.run(0, n);
        }
    }

    private static int rowGrain(int cols) {
        return Math.max(1, 8192 / Math.max(1, cols));
    }

    static void requireCapacity(Tensor t, long n, String what) {
        if (t.numel() < n) {
            throw new IllegalArgumentException(what + " too small: has " + t.numel() + " elements, needs " + n);
        }
        if (!(t.storage() instanceof HostStorage)) {
            throw new IllegalArgumentException(what + " is not a CPU tensor: " + t);
        }
    }

    private static void requireIds(Tensor ids, int rows, int limit, String what) {
        if (ids.dtype() != DType.I32) {
            throw new IllegalArgumentException(what + "s must be an I32 tensor, got " + ids.dtype());
        }
        requireCapacity(ids, rows, what + "s");
        long ia = ids.address();
        for (int r = 0; r < rows; r++) {
            int id = getInt(ia, r);
            if (id < 0 || id >= limit) {
                throw new IllegalArgumentException(what + " out of range at row " + r + ": " + id
                    + " (valid 0.." + (limit - 1) + ")");
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

    private static final long ARRAY_FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final long ARRAY_INT_BASE = UNSAFE.arrayBaseOffset(int[].class);
}
