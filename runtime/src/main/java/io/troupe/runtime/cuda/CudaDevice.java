package io.troupe.runtime.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;

import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.device.DeviceKind;
import io.troupe.runtime.device.PagedRows;
import io.troupe.runtime.device.StagedInput;
import io.troupe.runtime.device.StagedOutput;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;

/**
 * {@link Device} on one NVIDIA GPU, through the JCuda driver API, running Troupe's own kernels.
 *
 * <p>Memory comes from a caching allocator over {@code cuMemAlloc}; every call is issued on one
 * stream of the device's primary context, so calls are ordered and asynchronous: {@link #synchronize()}
 * waits for them, and copies to and from Java arrays (through a pinned buffer) and host tensors (straight
 * to and from their memory) return complete. Every
 * driver result code is checked; a failure throws {@link CudaException} naming the operation.
 *
 * <p>Errors a kernel finds in its inputs (a cross-entropy target or an embedding id out of range) are
 * recorded on the device and thrown, naming the bad value, by the next {@link #synchronize()} or copy
 * to the host.
 *
 * <p>Settings: {@link #setGemmPrecision} (default {@link GemmPrecision#FP32}), {@link #setGemmBackend}
 * (default cuBLAS where JCublas loads, Troupe's kernels otherwise) and {@link #setAttentionKernel}
 * (default {@link AttentionKernel#FLASH}).
 *
 * <p>Threading: one thread issues the calls (the worker's device executor); the context is made
 * current on the calling thread at every call, so that thread may change between calls. The
 * exceptions are {@link #allocate} and {@link #openStagedInput}, which any thread may call at any time
 * (the network allocates a stage's receive buffer on first use, from its own thread).
 */
public final class CudaDevice implements Device {
    private final int ordinal;
    private final String name;
    private final CudaResources res;          // context, stream, memory, modules, copy stream, cuBLAS
    private final KernelArgs args = new KernelArgs();
    private final EmbeddingGrouping embeddingGrouping = new EmbeddingGrouping();
    private final CudaGemm gemm;
    private volatile GemmPrecision gemmPrecision = GemmPrecision.FP32;
    private volatile GemmBackend gemmBackend;
    private volatile AttentionKernel attentionKernel = AttentionKernel.FLASH;
    private boolean closed;

    /**
     * Opens GPU {@code ordinal}.
     *
     * @throws IllegalStateException naming the reason when CUDA is unavailable, the ordinal does not
     *                               exist, or the PTX resources were not built
     */
    public CudaDevice(int ordinal) {
        CudaAvailability a = CudaSupport.availability();
        if (!a.isAvailable()) {
            throw new IllegalStateException("CUDA device requested but unavailable: " + a.reason());
        }
        if (ordinal < 0 || ordinal >= a.deviceCount()) {
            throw new IllegalArgumentException("no CUDA device " + ordinal + ": " + a.deviceCount() + " present");
        }
        this.ordinal = ordinal;
        this.res = new CudaResources(this, ordinal);
        this.name = res.name();
        this.gemm = new CudaGemm(this);
        this.gemmBackend = res.cublas() != null ? GemmBackend.CUBLAS : GemmBackend.TROUPE;
    }

    /** Throws {@link CudaException} unless {@code rc} is CUDA_SUCCESS. */
    static void check(String op, String call, int rc) {
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new CudaException("CUDA " + op + " failed: " + call + " returned " + CUresult.stringFor(rc)
                + " (" + rc + ")", rc);
        }
    }

    // ---------------------------------------------------------------- settings and facts

    public void setGemmPrecision(GemmPrecision p) {
        gemmPrecision = p;
    }

    public GemmPrecision gemmPrecision() {
        return gemmPrecision;
    }

    /**
     * Chooses whose GEMM runs. The default is {@link GemmBackend#CUBLAS} where cuBLAS loaded, else
     * {@link GemmBackend#TROUPE}.
     *
     * @throws IllegalStateException when CUBLAS is asked for but cuBLAS did not load (the reason is given)
     */
    public void setGemmBackend(GemmBackend b) {
        if (b == GemmBackend.CUBLAS && res.cublas() == null) {
            throw new IllegalStateException("cuBLAS unavailable: " + CublasGemm.unavailableReason());
        }
        gemmBackend = b;
    }

    public GemmBackend gemmBackend() {
        return gemmBackend;
    }

    /** True when cuBLAS loaded on this device; see {@link #cublasUnavailableReason()} otherwise. */
    public boolean hasCublas() {
        return res.cublas() != null;
    }

    /** Why cuBLAS is not available (null when it is). */
    public String cublasUnavailableReason() {
        return res.cublas() != null ? null : CublasGemm.unavailableReason();
    }

    public void setAttentionKernel(AttentionKernel k) {
        attentionKernel = k;
    }

    public AttentionKernel attentionKernel() {
        return attentionKernel;
    }

    /** Compute capability as {@code major * 10 + minor}, e.g. 90 for an H100/H200. */
    public int computeCapability() {
        return res.ccMajor() * 10 + res.ccMinor();
    }

    public int multiprocessorCount() {
        return res.multiprocessors();
    }

    public int ordinal() {
        return ordinal;
    }

    /** Bytes held by live tensors and by the allocator's cache. */
    public long bytesInUse() {
        return res.allocator().bytesInUse();
    }

    /**
     * Runs {@code work} (which issues calls on this device) between two events and returns the GPU
     * time between them in milliseconds; waits for the work to finish.
     */
    public float timeMs(Runnable work) {
        bind();
        CUevent start = new CUevent();
        CUevent stop = new CUevent();
        check("timeMs", "cuEventCreate", cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT));
        check("timeMs", "cuEventCreate", cuEventCreate(stop, CUevent_flags.CU_EVENT_DEFAULT));
        try {
            check("timeMs", "cuEventRecord", cuEventRecord(start, res.stream()));
            work.run();
            bind();
            check("timeMs", "cuEventRecord", cuEventRecord(stop, res.stream()));
            check("timeMs", "cuEventSynchronize", cuEventSynchronize(stop));
            float[] ms = new float[1];
            check("timeMs", "cuEventElapsedTime", cuEventElapsedTime(ms, start, stop));
            return ms[0];
        } finally {
            cuEventDestroy(start);
            cuEventDestroy(stop);
        }
    }

    // ---------------------------------------------------------------- pinned host buffers, copy stream

    /** Page-locked host memory for {@link #copyToPinnedAsync} and {@link #copyFromPinnedAsync}. */
    public PinnedHostBuffer allocatePinned(long lengthBytes) {
        bind();
        return new PinnedHostBuffer(lengthBytes);
    }

    /**
     * Starts copying {@code src}'s bytes into {@code dst} at {@code dstOffsetBytes} on the copy stream,
     * after every call issued so far; kernels issued later overlap it. Read {@code dst} (and free
     * {@code src}) only once the ticket is done.
     */
    public CopyTicket copyToPinnedAsync(Tensor src, PinnedHostBuffer dst, long dstOffsetBytes) {
        bind();
        return res.transfers().toPinned(src, dst, dstOffsetBytes);
    }

    /**
     * Starts copying {@code dst.lengthBytes()} bytes from {@code src} at {@code srcOffsetBytes} into
     * {@code dst} on the copy stream; calls issued after this one see the data. Do not change the
     * pinned range until the ticket is done.
     */
    public CopyTicket copyFromPinnedAsync(PinnedHostBuffer src, long srcOffsetBytes, Tensor dst) {
        bind();
        return res.transfers().fromPinned(src, srcOffsetBytes, dst);
    }

    /**
     * An inbound data-plane buffer: a pinned host tensor (a CPU tensor the network writes into) and a
     * device tensor, uploaded on the copy stream; see {@link StagedInput} and {@link CudaStagedInput}.
     */
    @Override
    public StagedInput openStagedInput(DType dtype, int... shape) {
        bind();
        return new CudaStagedInput(this, res.stream(), res.transfers().copyStream(), res.hostDevice(), dtype,
            shape);
    }

    /**
     * An outbound data-plane buffer: a device snapshot and a pinned host tensor, downloaded on the copy
     * stream; see {@link StagedOutput} and {@link CudaStagedOutput}.
     */
    @Override
    public StagedOutput openStagedOutput(DType dtype, int... shape) {
        bind();
        return new CudaStagedOutput(this, res.stream(), res.transfers().copyStream(), res.hostDevice(), dtype,
            shape);
    }

    // ---------------------------------------------------------------- Device: memory

    @Override
    public String name() {
        return name;
    }

    @Override
    public DeviceKind kind() {
        return DeviceKind.CUDA;
    }

    @Override
    public Tensor allocate(DType dtype, int... shape) {
        bind();
        long bytes = Tensor.numelOf(shape) * dtype.sizeBytes();
        CudaStorage s = res.allocator().allocate(bytes);
        check("allocate", "cuMemsetD8Async(" + bytes + " bytes)",
            cuMemsetD8Async(s.pointerAt(0), (byte) 0, bytes, res.stream()));
        return new Tensor(this, s, dtype, 0, shape, true);
    }

    /** Scratch memory for one call; close it right after issuing the kernels that use it. */
    CudaStorage scratch(long bytes) {
        return res.allocator().allocate(bytes);
    }

    @Override
    public void copyFromHost(float[] src, Tensor dst) {
        CudaHostCopies.fromHost(this, src, dst);
    }

    @Override
    public void copyFromHost(int[] src, Tensor dst) {
        CudaHostCopies.fromHost(this, src, dst);
    }

    @Override
    public void copyToHost(Tensor src, float[] dst) {
        CudaHostCopies.toHost(this, src, dst);
    }

    @Override
    public void copyToHost(Tensor src, Tensor hostDst) {
        CudaHostCopies.toHost(this, src, hostDst);
    }

    @Override
    public void copyFromHost(Tensor hostSrc, Tensor dst) {
        CudaHostCopies.fromHost(this, hostSrc, dst);
    }

    @Override
    public void synchronize() {
        bind();
        res.synchronize();
    }

    /** Throws, naming the bad value, what a kernel recorded in the error word (clearing it); nothing when clear. */
    void throwKernelErrors() {
        res.throwKernelErrors();
    }

    // ---------------------------------------------------------------- Device: BLAS-like

    @Override
    public void gemmBatched(boolean transA, boolean transB, int m, int n, int k, float alpha, Tensor a, int lda,
                            long strideA, Tensor b, int ldb, long strideB, float beta, Tensor c, int ldc, long strideC,
                            int batch) {
        bind();
        CublasGemm cublas = gemmBackend == GemmBackend.CUBLAS ? res.cublas() : null;
        gemm.gemmBatched(gemmPrecision, cublas, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta,
            c, ldc, strideC, batch);
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        CudaVectorOps.axpy(this, alpha, x, y);
    }

    @Override
    public void scale(Tensor x, float alpha) {
        CudaVectorOps.scale(this, x, alpha);
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        CudaVectorOps.copy(this, src, dst);
    }

    @Override
    public void fill(Tensor x, float value) {
        CudaVectorOps.fill(this, x, value);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        CudaVectorOps.add(this, a, b, out);
    }

    @Override
    public double sumOfSquares(Tensor x) {
        return CudaVectorOps.sumOfSquares(this, res.sumsqScratch(), x);
    }

    // ---------------------------------------------------------------- Device: transformer kernels

    @Override
    public void attention(Tensor qkv, Tensor out, Tensor saved, int batch, int seq, int heads, int headDim) {
        CudaAttention.forward(this, qkv, out, saved, batch, seq, heads, headDim);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor saved, int batch, int seq, int heads,
                                  int headDim) {
        CudaAttention.backward(this, dqkv, dout, qkv, saved, batch, seq, heads, headDim);
    }

    @Override
    public void biasAdd(Tensor out, Tensor bias, int rows, int cols) {
        CudaOps.biasAdd(this, out, bias, rows, cols);
    }

    @Override
    public void biasBackward(Tensor dbias, Tensor dout, int rows, int cols) {
        CudaOps.biasBackward(this, dbias, dout, rows, cols);
    }

    @Override
    public void gelu(Tensor inp, Tensor out, long n) {
        CudaOps.gelu(this, inp, out, n);
    }

    @Override
    public void geluBackward(Tensor inp, Tensor dout, Tensor dinp, long n) {
        CudaOps.geluBackward(this, inp, dout, dinp, n);
    }

    @Override
    public void layerNorm(Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean, Tensor rstd, int rows,
                          int cols, float eps) {
        CudaOps.layerNorm(this, inp, weight, bias, out, mean, rstd, rows, cols, eps);
    }

    @Override
    public void layerNormBackward(Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp, Tensor weight,
                                  Tensor mean, Tensor rstd, int rows, int cols) {
        CudaOps.layerNormBackward(this, dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, cols);
    }

    @Override
    public void biasAddGelu(Tensor preact, Tensor bias, Tensor out, int rows, int cols) {
        CudaFusedOps.biasAddGelu(this, preact, bias, out, rows, cols);
    }

    @Override
    public void geluBackwardBias(Tensor preact, Tensor dout, Tensor dpreact, Tensor dbias, int rows, int cols) {
        CudaFusedOps.geluBackwardBias(this, preact, dout, dpreact, dbias, rows, cols);
    }

    @Override
    public void residualLayerNorm(Tensor a, Tensor b, Tensor sum, Tensor weight, Tensor bias, Tensor out, Tensor mean,
                                  Tensor rstd, int rows, int cols, float eps) {
        CudaFusedOps.residualLayerNorm(this, a, b, sum, weight, bias, out, mean, rstd, rows, cols, eps);
    }

    @Override
    public void residualLayerNormBackward(Tensor dsum, Tensor dweight, Tensor dbias, Tensor dresidual, Tensor dout,
                                          Tensor sum, Tensor weight, Tensor mean, Tensor rstd, int rows, int cols) {
        CudaFusedOps.residualLayerNormBackward(this, dsum, dweight, dbias, dresidual, dout, sum, weight, mean, rstd,
            rows, cols);
    }

    @Override
    public void crossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows, int vocab) {
        CudaOps.crossEntropy(this, logits, targets, probs, losses, rows, vocab);
    }

    @Override
    public void crossEntropyBackward(Tensor dlogits, Tensor probs, Tensor targets, float dlossScale, int rows,
                                     int vocab) {
        CudaOps.crossEntropyBackward(this, dlogits, probs, targets, dlossScale, rows, vocab);
    }

    @Override
    public void embedding(Tensor out, Tensor ids, Tensor table, int rows, int dim, boolean accumulate) {
        CudaOps.embedding(this, out, ids, table, rows, dim, accumulate);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids, int rows, int dim) {
        CudaOps.embeddingBackward(this, dtable, dout, ids, rows, dim);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step) {
        CudaOps.adamw(this, param, grad, m, v, step);
    }

    @Override
    public void linearRowInvariant(int rows, int n, int k, Tensor x, Tensor w, Tensor bias, Tensor out) {
        bind();
        CudaDecodeOps.linearRowInvariant(this, gemm, rows, n, k, x, w, bias, out);
    }

    @Override
    public void pagedKvWrite(Tensor qkv, Tensor keys, Tensor values, PagedRows rows, int width, int blockSize) {
        CudaDecodeOps.pagedKvWrite(this, qkv, keys, values, rows, width, blockSize);
    }

    @Override
    public void pagedAttention(Tensor qkv, Tensor keys, Tensor values, Tensor out, PagedRows rows, int heads,
                               int headDim, int blockSize, float scale) {
        CudaDecodeOps.pagedAttention(this, qkv, keys, values, out, rows, heads, headDim, blockSize, scale);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        bind();
        closed = true;
        res.close();
    }

    // ---------------------------------------------------------------- package use

    /** Makes this device's context current on the calling thread. */
    void bind() {
        if (closed) {
            throw new IllegalStateException(name + " is closed");
        }
        res.bindContext();
    }

    long errorWordAddress() {
        return res.errorWord().address();
    }

    EmbeddingGrouping embeddingGrouping() {
        return embeddingGrouping;
    }

    PinnedStaging staging() {
        return res.staging();
    }

    KernelArgs args() {
        return args;
    }

    CudaModules modules() {
        return res.modules();
    }

    CUstream stream() {
        return res.stream();
    }

    @Override
    public String toString() {
        return name;
    }
}
