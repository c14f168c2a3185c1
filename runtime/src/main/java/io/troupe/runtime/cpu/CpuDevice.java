package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
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
    private final CpuGemm gemm;
    private final CpuBiasGelu biasGelu;
    private final CpuLayerNorms layerNorms;
    private final CpuTokenOps tokens;
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
        this.gemm = new CpuGemm(started);
        this.biasGelu = new CpuBiasGelu(started);
        this.layerNorms = new CpuLayerNorms(started);
        this.tokens = new CpuTokenOps(started);
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
        gemm.gemmBatched(transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC,
            batch);
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

    @Override
    public void biasAddResidual(Tensor out, Tensor bias, Tensor residual, int rows, int cols) {
        biasGelu.biasAddResidual(out, bias, residual, rows, cols);
    }

    @Override
    public void biasAdd(Tensor out, Tensor bias, int rows, int cols) {
        biasGelu.biasAdd(out, bias, rows, cols);
    }

    @Override
    public void biasBackward(Tensor dbias, Tensor dout, int rows, int cols) {
        biasGelu.biasBackward(dbias, dout, rows, cols);
    }

    @Override
    public void gelu(Tensor inp, Tensor out, long n) {
        biasGelu.gelu(inp, out, n);
    }

    @Override
    public void biasAddGelu(Tensor preact, Tensor bias, Tensor out, int rows, int cols) {
        biasGelu.biasAddGelu(preact, bias, out, rows, cols);
    }

    @Override
    public void geluBackward(Tensor inp, Tensor dout, Tensor dinp, long n) {
        biasGelu.geluBackward(inp, dout, dinp, n);
    }

    @Override
    public void geluBackwardBias(Tensor preact, Tensor dout, Tensor dpreact, Tensor dbias, int rows, int cols) {
        biasGelu.geluBackwardBias(preact, dout, dpreact, dbias, rows, cols);
    }

    @Override
    public void layerNorm(Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean, Tensor rstd,
                          int rows, int cols, float eps) {
        layerNorms.layerNorm(inp, weight, bias, out, mean, rstd, rows, cols, eps);
    }

    @Override
    public void residualLayerNorm(Tensor a, Tensor b, Tensor sum, Tensor weight, Tensor bias, Tensor out,
                                  Tensor mean, Tensor rstd, int rows, int cols, float eps) {
        layerNorms.residualLayerNorm(a, b, sum, weight, bias, out, mean, rstd, rows, cols, eps);
    }

    @Override
    public void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
                                  Tensor weight, Tensor mean, Tensor rstd, int rows, int cols) {
        layerNorms.layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, cols);
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
        tokens.crossEntropy(logits, targets, probs, losses, rows, vocab);
    }

    @Override
    public void crossEntropyBackward(Tensor dlogits, Tensor probs, Tensor targets, float dlossScale,
                                     int rows, int vocab) {
        tokens.crossEntropyBackward(dlogits, probs, targets, dlossScale, rows, vocab);
    }

    @Override
    public void embedding(Tensor out, Tensor ids, Tensor table, int rows, int dim, boolean accumulate) {
        tokens.embedding(out, ids, table, rows, dim, accumulate);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids, int rows, int dim) {
        tokens.embeddingBackward(dtable, dout, ids, rows, dim);
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

    /**
     * Stops the compute threads and waits until they have ended (at most 5 s in all),
     * then frees the attention scratch. Idempotent. Called once no op runs.
     *
     * @throws IllegalStateException naming the compute threads still alive when that wait ran out; the scratch
     *                               is freed all the same
     */
    @Override
    public void close() {
        try {
            parallel.close();
        } finally {
            attention.close();
        }
    }

    // ---------------------------------------------------------------- helpers

    /** A loop body over elements [start, end). */
    @FunctionalInterface
    interface LongRangeBody {
        void run(long start, long end);
    }

    private void elementwise(long n, LongRangeBody body) {
        elementwise(parallel, n, body);
    }

    /** Runs {@code body} over [0, n), split over {@code parallel}'s threads when n fits an int. */
    static void elementwise(CpuParallel parallel, long n, LongRangeBody body) {
        if (n <= Integer.MAX_VALUE) {
            parallel.forRange((int) n, ELEMENTWISE_GRAIN, (s, e) -> body.run(s, e));
        } else {
            body.run(0, n);
        }
    }

    /** Rows per task for rows of {@code cols} floats: about 8192 floats each. */
    static int rowGrain(int cols) {
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


    private static final long ARRAY_FLOAT_BASE = UNSAFE.arrayBaseOffset(float[].class);
    private static final long ARRAY_INT_BASE = UNSAFE.arrayBaseOffset(int[].class);
}
