package io.troupe.runtime.device;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.HostStorage;
import io.troupe.runtime.tensor.Tensor;
import java.nio.FloatBuffer;

/**
 * The kernel set a transformer needs, forward and backward, on one device.
 *
 * <p>Conventions, shared by every backend:
 * <ul>
 *   <li>Tensors are contiguous and row-major; sizes are passed explicitly (llm.c style), the
 *       tensors' own shapes are only checked for capacity.</li>
 *   <li>Gradients of <b>parameters</b> always accumulate ({@code +=}), so micro-batches sum into
 *       the same buffer. Gradients of <b>activations</b> overwrite unless the method says
 *       otherwise ({@link #layerNormBackward} accumulates into {@code dinp}: it feeds a residual).</li>
 *   <li>Calls are asynchronous on devices that have streams: they are ordered on the device, and
 *       {@link #synchronize()} waits for all of them. The CPU backend completes each call before
 *       returning.</li>
 *   <li>Threading: one thread (the worker's device executor) issues the calls of one device.</li>
 * </ul>
 */
public interface Device extends AutoCloseable {

    /** A human-readable name, e.g. {@code cpu(2 threads)} or {@code cuda:0 (NVIDIA H200)}. */
    String name();

    DeviceKind kind();

    /** Allocates a zero-filled, 64-byte aligned tensor. */
    Tensor allocate(DType dtype, int... shape);

    default Tensor allocate(int... shape) {
        return allocate(DType.F32, shape);
    }

    /** Copies {@code src.numel()} floats... from host array {@code src} into {@code dst}. */
    void copyFromHost(float[] src, Tensor dst);

    /** Copies ints (token ids, targets) into an {@link DType#I32} tensor. */
    void copyFromHost(int[] src, Tensor dst);

    /** Copies {@code src}'s elements (float32) into {@code dst}, which must be at least as long. */
    void copyToHost(Tensor src, float[] dst);

    /**
     * Copies {@code src}, a tensor of this device, into host tensor {@code hostDst} in one copy, with no
     * Java array between: {@code hostDst}'s storage is a {@link HostStorage} (a CPU tensor, or the pinned
     * host half of a staged buffer). The two windows (views included) hold the same number of elements
     * of the same dtype; the bytes are copied as they are. The copy is ordered after every call issued
     * before it (the kernels that write {@code src} included) and is complete when it returns, as the
     * array copies are; kernel errors found meanwhile are thrown as by {@link #synchronize()}.
     *
     * @throws IllegalArgumentException naming both element counts when they differ, both dtypes when they
     *                                  differ, or the tensor when {@code hostDst} is not in host memory or
     *                                  {@code src} is not on this device
     */
    void copyToHost(Tensor src, Tensor hostDst);

    /**
     * Copies host tensor {@code hostSrc} (storage a {@link HostStorage}) into {@code dst}, a tensor of
     * this device, in one copy, with no Java array between; the same element count and dtype, views
     * honoured, bytes as they are. The copy is ordered after every call issued before it (which may
     * still read or write {@code dst}) and is complete when it returns: {@code hostSrc} may change at
     * once, and every call issued after it reads the new values of {@code dst}.
     *
     * @throws IllegalArgumentException as {@link #copyToHost(Tensor, Tensor)}, for {@code hostSrc} and
     *                                  {@code dst}
     */
    void copyFromHost(Tensor hostSrc, Tensor dst);

    /** Waits until every call issued so far has completed. */
    void synchronize();

    // ---------------------------------------------------------------- BLAS-like

    /**
     * {@code C = alpha * op(A) @ op(B) + beta * C}, row-major, with {@code op(A)} of shape (m, k),
     * {@code op(B)} of shape (k, n), C of shape (m, n). {@code lda/ldb/ldc} are row strides in elements
     * of the matrices as stored (A is (k, m) when {@code transA}).
     */
    default void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a, int lda,
                      Tensor b, int ldb, float beta, Tensor c, int ldc) {
        gemmBatched(transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
    }

    /** Contiguous convenience form of {@link #gemm}: leading dimensions follow from the shapes. */
    default void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a, Tensor b,
                        float beta, Tensor c) {
        gemm(transA, transB, m, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, c, n);
    }

    /**
     * {@code batch} independent gemms; matrix {@code i} of A starts {@code i*strideA} elements after
     * the start of {@code a} (likewise B and C). A stride of 0 reuses the same matrix.
     */
    void gemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Tensor a, int lda, long strideA, Tensor b, int ldb, long strideB,
                     float beta, Tensor c, int ldc, long strideC, int batch);

    /** {@code y += alpha * x} over {@code x.numel()} elements. */
    void axpy(float alpha, Tensor x, Tensor y);

    /** {@code x *= alpha}. */
    void scale(Tensor x, float alpha);

    /** {@code dst = src} over {@code src.numel()} elements. */
    void copy(Tensor src, Tensor dst);

    /** Sets every element to {@code value} (float32) or to 0 for other types when value is 0. */
    void fill(Tensor x, float value);

    /** {@code out = a + b} elementwise (the residual connection); {@code out} may alias {@code a}. */
    void add(Tensor a, Tensor b, Tensor out);

    /** Sum of squares in double precision, for gradient norms. */
    double sumOfSquares(Tensor x);

    // ---------------------------------------------------------------- transformer kernels

    /** {@code out[r, c] += bias[c]} for an (rows, cols) matrix. */
    void biasAdd(Tensor out, Tensor bias, int rows, int cols);

    /**
     * A linear layer's forward, {@code out (rows, n) = x (rows, k) @ w^T + bias} with {@code w} (n, k):
     * the same floats as {@code matmul(false, true, rows, n, k, 1, x, w, 0, out)} then {@link #biasAdd}
     * (a device may start {@code out} at the bias and accumulate the product onto it where that is
     * bitwise the same).
     */
    default void matmulBias(int rows, int n, int k, Tensor x, Tensor w, Tensor bias, Tensor out) {
        matmul(false, true, rows, n, k, 1f, x, w, 0f, out);
        biasAdd(out, bias, rows, n);
    }

    /**
     * {@code out[r, c] = (out[r, c] + bias[c]) + residual[r, c]} for an (rows, cols) matrix: {@link #biasAdd} then
     * the residual connection's {@link #add}, the same floats (a device may do both in one pass).
     */
    default void biasAddResidual(Tensor out, Tensor bias, Tensor residual, int rows, int cols) {
        biasAdd(out, bias, rows, cols);
        Tensor o = out.view(0, rows, cols);
        add(o, residual.view(0, rows, cols), o);
    }

    /** {@code dbias[c] += sum_r dout[r, c]}. */
    void biasBackward(Tensor dbias, Tensor dout, int rows, int cols);

    /** GELU, tanh approximation: {@code 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))}; out may alias inp. */
    void gelu(Tensor inp, Tensor out, long n);

    /** {@code dinp = dout * gelu'(inp)} (overwrites). */
    void geluBackward(Tensor inp, Tensor dout, Tensor dinp, long n);

    /**
     * LayerNorm over the last dimension of (rows, cols): saves {@code mean} and {@code rstd} (rows)
     * for the backward.
     */
    void layerNorm(Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean, Tensor rstd,
                   int rows, int cols, float eps);

    /** Accumulates {@code dinp}, {@code dweight}, {@code dbias}. */
    void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight,
                           Tensor mean, Tensor rstd, int rows, int cols);

    /**
     * Causal multi-head self-attention on a fused projection.
     *
     * @param qkv   (batch, seq, 3*heads*headDim): q | k | v blocks, head h at columns h*headDim..
     * @param out   (batch, seq, heads*headDim)
     * @param saved (batch, heads, seq, seq) floats the backward needs (softmax probabilities on the
     *              CPU; a backend may store less there, e.g. log-sum-exp rows)
     */
    void attention(Tensor qkv, Tensor out, Tensor saved, int batch, int seq, int heads, int headDim);

    /** Writes (overwrites) {@code dqkv} from {@code dout}, the forward's inputs and saved state. */
    void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor saved,
                           int batch, int seq, int heads, int headDim);

    /**
     * Softmax cross-entropy per row: {@code probs = softmax(logits)}, {@code losses[r] = -log probs[r, targets[r]]}.
     * {@code targets} is {@link DType#I32}; a target outside [0, vocab) is an error.
     */
    void crossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows, int vocab);

    /** {@code dlogits = (probs - onehot(targets)) * dlossScale} (overwrites). */
    void crossEntropyBackward(Tensor dlogits, Tensor probs, Tensor targets, float dlossScale, int rows, int vocab);

    /** {@code out[r] (+)= table[ids[r]]} for (rows, dim); ids are {@link DType#I32}. */
    void embedding(Tensor out, Tensor ids, Tensor table, int rows, int dim, boolean accumulate);

    /** Scatter-add: {@code dtable[ids[r]] += dout[r]}. */
    void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids, int rows, int dim);

    /** One AdamW update of {@code param} in place, moments {@code m}, {@code v}; see {@link AdamWStep}. */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step);

    // ---------------------------------------------------------------- fused kernels (defaults: the unfused ops)

    /**
     * The epilogue of the MLP's first GEMM: {@code preact[r, c] += bias[c]} (kept for the backward), then
     * {@code out = gelu(preact)} over (rows, cols). {@code out} must not alias {@code preact}. The default
     * is {@link #biasAdd} then {@link #gelu}; a GPU does both in one pass over memory.
     */
    default void biasAddGelu(Tensor preact, Tensor bias, Tensor out, int rows, int cols) {
        biasAdd(preact, bias, rows, cols);
        gelu(preact, out, (long) rows * cols);
    }

    /**
     * Backward of {@link #biasAddGelu}: {@code dpreact = dout * gelu'(preact)} (overwrites; may alias
     * {@code dout}) and {@code dbias[c] += sum_r dpreact[r, c]}. The default is {@link #geluBackward}
     * then {@link #biasBackward}.
     */
    default void geluBackwardBias(Tensor preact, Tensor dout, Tensor dpreact, Tensor dbias, int rows, int cols) {
        geluBackward(preact, dout, dpreact, (long) rows * cols);
        biasBackward(dbias, dpreact, rows, cols);
    }

    /**
     * The pre-LN block's residual connection fused with the next LayerNorm: {@code sum = a + b}
     * ({@code sum} may alias {@code a}), then {@link #layerNorm} of {@code sum} into {@code out},
     * {@code mean}, {@code rstd}. The default is {@link #add} then {@link #layerNorm}.
     */
    default void residualLayerNorm(Tensor a, Tensor b, Tensor sum, Tensor weight, Tensor bias, Tensor out,
                                   Tensor mean, Tensor rstd, int rows, int cols, float eps) {
        add(a, b, sum);
        layerNorm(sum, weight, bias, out, mean, rstd, rows, cols, eps);
    }

    /**
     * Backward of {@link #residualLayerNorm}: the gradient of {@code sum} is the gradient that reached
     * it through the residual stream ({@code dresidual}) plus the LayerNorm's input gradient of
     * {@code dout}; it is written to {@code dsum} (overwrites; {@code dsum} is {@code dresidual} itself
     * or does not overlap it; {@code dout} and {@code sum} must not overlap it), and it is also the
     * gradient of both {@code a} and {@code b}.
     * {@code dweight} and {@code dbias} accumulate. The default is a copy then {@link #layerNormBackward}.
     */
    default void residualLayerNormBackward(Tensor dsum, Tensor dweight, Tensor dbias, Tensor dresidual, Tensor dout,
                                           Tensor sum, Tensor weight, Tensor mean, Tensor rstd, int rows, int cols) {
        if (dsum.storage() != dresidual.storage() || dsum.offsetElements() != dresidual.offsetElements()) {
            copy(dresidual.view(0, rows, cols), dsum);
        }
        layerNormBackward(dsum, dweight, dbias, dout, sum, weight, mean, rstd, rows, cols);
    }

    // ---------------------------------------------------------------- decoding (defaults: reference loops)

    /**
     * A linear layer whose every output element has one fixed reduction order, whatever {@code rows}
     * is (batch invariance, for decoding): {@code out (rows, n) = x (rows, k) @ w^T + bias} with w
     * (n, k) and {@code acc = fma(x[k], w[j, k], acc)} for k ascending, then {@code + bias[j]}
     * ({@code bias} null for none). Unlike {@link #matmulBias}, a device must not pick its algorithm
     * by shape here (a BLAS's or cuBLAS's kernel choice may change with the row count, and with it
     * the bits). The default runs {@link DecodeReference#linear} on host copies.
     */
    default void linearRowInvariant(int rows, int n, int k, Tensor x, Tensor w, Tensor bias, Tensor out) {
        float[] hx = DecodeHostCopies.read(this, x, (long) rows * k, "linearRowInvariant x");
        float[] hw = DecodeHostCopies.read(this, w, (long) n * k, "linearRowInvariant w");
        float[] hb = bias == null ? null : DecodeHostCopies.read(this, bias, n, "linearRowInvariant bias");
        float[] ho = new float[rows * n];
        DecodeReference.linear(rows, n, k, FloatBuffer.wrap(hx), FloatBuffer.wrap(hw),
            hb == null ? null : FloatBuffer.wrap(hb), FloatBuffer.wrap(ho));
        copyFromHost(ho, out.view(0, rows * n));
    }

    /**
     * Writes the keys and values of a step's rows into one layer's paged cache ({@link PagedKvLayout}):
     * row r's key is columns [width, 2 width) of {@code qkv} (rows, 3 width), its value columns
     * [2 width, 3 width); they go to position {@code rows.positions()[r]} through its block table.
     * {@code keys} and {@code values} hold {@code numBlocks * blockSize * width} floats each. The
     * default runs {@link DecodeReference#kvWrite} on host copies.
     */
    default void pagedKvWrite(Tensor qkv, Tensor keys, Tensor values, PagedRows rows, int width, int blockSize) {
        DecodeReference.checkRows("pagedKvWrite", rows, blockSize, keys.numel() / ((long) blockSize * width));
        float[] hq = DecodeHostCopies.read(this, qkv, (long) rows.rows() * 3 * width, "pagedKvWrite qkv");
        float[] hk = DecodeHostCopies.read(this, keys, keys.numel(), "pagedKvWrite keys");
        float[] hv = DecodeHostCopies.read(this, values, values.numel(), "pagedKvWrite values");
        DecodeReference.kvWrite(FloatBuffer.wrap(hq), FloatBuffer.wrap(hk),
            FloatBuffer.wrap(hv), rows, width, blockSize);
        copyFromHost(hk, keys);
        copyFromHost(hv, values);
    }

    /**
     * Decoding attention over a paged cache: row r's query (columns [0, heads * headDim) of
     * {@code qkv}) attends, head by head, causally over positions [0, p] of its own sequence in one
     * layer's {@code keys} and {@code values} (written by {@link #pagedKvWrite} before, this step's
     * rows included, so a prefill chunk's rows see each other causally), scores scaled by
     * {@code scale}; the result is row r of {@code out} (rows, heads * headDim). The reduction order
     * of every output element is fixed ({@link DecodeReference}) and reads nothing of other rows.
     * The default runs {@link DecodeReference#attention} on host copies.
     */
    default void pagedAttention(Tensor qkv, Tensor keys, Tensor values, Tensor out, PagedRows rows, int heads,
                                int headDim, int blockSize, float scale) {
        int width = heads * headDim;
        DecodeReference.checkRows("pagedAttention", rows, blockSize, keys.numel() / ((long) blockSize * width));
        float[] hq = DecodeHostCopies.read(this, qkv, (long) rows.rows() * 3 * width, "pagedAttention qkv");
        float[] hk = DecodeHostCopies.read(this, keys, keys.numel(), "pagedAttention keys");
        float[] hv = DecodeHostCopies.read(this, values, values.numel(), "pagedAttention values");
        float[] ho = new float[rows.rows() * width];
        DecodeReference.attention(FloatBuffer.wrap(hq), FloatBuffer.wrap(hk),
            FloatBuffer.wrap(hv), FloatBuffer.wrap(ho), rows, heads, headDim, blockSize, scale);
        copyFromHost(ho, out.view(0, rows.rows() * width));
    }

    // ---------------------------------------------------------------- data-plane staging

    /**
     * An inbound data-plane buffer of {@code shape}: host memory the network writes, moved to this
     * device before the stage reads it; see {@link StagedInput}. The default serves devices whose
     * tensors are host memory (one tensor plays both parts); a device with its own memory overrides it.
     */
    default StagedInput openStagedInput(DType dtype, int... shape) {
        requireHostMemory("openStagedInput");
        return new HostStagedInput(allocate(dtype, shape));
    }

    /**
     * An outbound data-plane buffer of {@code shape}: a tensor of this device brought to host memory
     * for the network; see {@link StagedOutput}. The default serves devices whose tensors are host
     * memory ({@code host()} is the tensor itself).
     */
    default StagedOutput openStagedOutput(DType dtype, int... shape) {
        requireHostMemory("openStagedOutput");
        Tensor.numelOf(shape);
        return new HostStagedOutput(dtype, shape);
    }

    private void requireHostMemory(String op) {
        if (kind() != DeviceKind.CPU) {
            throw new UnsupportedOperationException(name() + " keeps tensors in its own memory, so it must implement "
                + op);
        }
    }

    /** Frees device resources (threads, handles). Tensors must be closed before. */
    @Override
    void close();
}
