package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.cuda.TwinTensors.Twin;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * GPU-only checks beyond the float32 conformance suite: the tensor-core GEMMs (TF32, BF16) against
 * the CPU on operands rounded the same way (tight) and on the original operands (the precision's own
 * error), the flash attention at larger sizes, bfloat16 copies, determinism, kernel-side input
 * errors, and the caching allocator's zero fill.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
class CudaPrecisionTest {
    private CpuDevice cpu;
    private CudaDevice gpu;
    private TwinTensors tw;

    @BeforeAll
    void open() {
        if (CudaSupport.isAvailable()) {
            gpu = new CudaDevice(0);
            cpu = new CpuDevice(4);
        }
    }

    @AfterAll
    void close() {
        if (gpu != null) {
            gpu.close();
            cpu.close();
        }
    }

    @BeforeEach
    void twins(TestInfo info) {
        CudaTesting.assumeGpu();
        tw = new TwinTensors(cpu, gpu, info.getDisplayName().hashCode() * 7L + 3);
        gpu.setGemmPrecision(GemmPrecision.FP32);
        gpu.setGemmBackend(GemmBackend.TROUPE);
        gpu.setAttentionKernel(AttentionKernel.FLASH);
    }

    @AfterEach
    void closeTwins() {
        if (tw != null) {
            gpu.synchronize();
            tw.closeTensors();
            tw = null;
        }
    }

    /** TF32 as cvt.rna does it: keep 10 mantissa bits, round to nearest, ties away from zero. */
    static float tf32(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7f800000) == 0x7f800000) {
            return f;
        }
        return Float.intBitsToFloat((u + 0x1000) & 0xffffe000);
    }

    static float[] rounded(float[] a, boolean bf16) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = bf16 ? Bf16.round(a[i]) : tf32(a[i]);
        }
        return r;
    }

    /**
     * C = op(A) op(B) under a precision: against the CPU on identically rounded operands (only the
     * summation order differs) and on the original ones (the precision's own error, relative to max |C|).
     */
    private void checkGemm(GemmPrecision precision, boolean transA, boolean transB, int m, int n, int k,
                           boolean bf16Tensors, double ownError) {
        boolean bf16 = precision == GemmPrecision.BF16 || bf16Tensors;
        float[] a = tw.uniform(m * k, -1f, 1f);
        float[] b = tw.uniform(k * n, -1f, 1f);
        int[] aShape = transA ? new int[] {k, m} : new int[] {m, k};
        int[] bShape = transB ? new int[] {n, k} : new int[] {k, n};
        Tensor ga = tw.track(gpu.allocate(bf16Tensors ? DType.BF16 : DType.F32, aShape));
        Tensor gb = tw.track(gpu.allocate(bf16Tensors ? DType.BF16 : DType.F32, bShape));
        gpu.copyFromHost(a, ga);
        gpu.copyFromHost(b, gb);
        Twin c = tw.poisoned(m, n);
        gpu.setGemmPrecision(precision);
        gpu.matmul(transA, transB, m, n, k, 1f, ga, gb, 0f, c.dut());
        float[] got = c.dut().toFloatArray();
        String what = precision + (bf16Tensors ? " (BF16 tensors)" : "") + " gemm " + m + "x" + n + "x" + k
            + " trans=" + transA + "," + transB;

        boolean noRounding = !bf16 && precision == GemmPrecision.FP32;   // FP32 rounds nothing
        Twin ar = tw.of(noRounding ? a : rounded(a, bf16), aShape);
        Twin br = tw.of(noRounding ? b : rounded(b, bf16), bShape);
        cpu.matmul(transA, transB, m, n, k, 1f, ar.ref(), br.ref(), 0f, c.ref());
        // Same products; only the summation order and the tensor cores' accumulator rounding differ.
        TwinTensors.assertClose(what + " vs CPU on rounded operands", c.ref().toFloatArray(), got, 1e-3, 1e-4);

        Twin ao = tw.of(a, aShape);
        Twin bo = tw.of(b, bShape);
        cpu.matmul(transA, transB, m, n, k, 1f, ao.ref(), bo.ref(), 0f, c.ref());
        float[] exact = c.ref().toFloatArray();
        double maxRef = 0;
        for (float v : exact) {
            maxRef = Math.max(maxRef, Math.abs(v));
        }
        TwinTensors.assertClose(what + " vs CPU float32", exact, got, ownError * maxRef, 0);
    }

    /** Aligned shapes take the 16-byte-load kernels (tf32v_*, bf16v_*), the others the scalar ones. */
    @Test
    void shouldMatchTf32GemmForEveryTranspose() {
        for (int t = 0; t < 4; t++) {
            checkGemm(GemmPrecision.TF32, (t & 1) != 0, (t & 2) != 0, 200, 300, 100, false, 3e-3);
        }
        checkGemm(GemmPrecision.TF32, false, false, big(), big(), big(), false, 3e-3);
        // Shapes that rule out 16-byte loads (k, m, n not multiples of 4): the scalar-load kernels.
        checkGemm(GemmPrecision.TF32, false, false, 67, 45, 33, false, 3e-3);
        checkGemm(GemmPrecision.TF32, true, true, 67, 45, 33, false, 3e-3);
    }

    @Test
    void shouldMatchBf16GemmForEveryTranspose() {
        for (int t = 0; t < 4; t++) {
            checkGemm(GemmPrecision.BF16, (t & 1) != 0, (t & 2) != 0, 130, 257, 72, false, 1e-2);
        }
        checkGemm(GemmPrecision.BF16, false, true, big(), big(), big(), false, 1e-2);
        // Operands of fewer elements than one block of the float32 to bfloat16 conversion.
        checkGemm(GemmPrecision.BF16, false, false, 5, 7, 3, false, 1e-2);
    }

    /** The large square product's size: 1024 on a GPU; 384 (still 3 x 3 tiles of 128) on the CPU emulator. */
    private static int big() {
        return CudaSupport.isEmulated() ? 384 : 1024;
    }

    @Test
    void shouldMultiplyBf16TensorsDirectly() {
        checkGemm(GemmPrecision.FP32, false, false, 96, 160, 64, true, 1e-2);
        checkGemm(GemmPrecision.FP32, true, true, 33, 47, 50, true, 1e-2);
    }

    @Test
    void shouldMatchCublasInEveryPrecisionWhereItLoads() {
        assumeTrue(gpu.hasCublas(), "cuBLAS not loaded here: " + gpu.cublasUnavailableReason());
        gpu.setGemmBackend(GemmBackend.CUBLAS);
        checkGemm(GemmPrecision.FP32, true, false, 200, 300, 100, false, 1e-5);
        checkGemm(GemmPrecision.TF32, false, true, 200, 300, 100, false, 3e-3);
        checkGemm(GemmPrecision.BF16, true, true, 130, 257, 72, false, 1e-2);
        checkGemm(GemmPrecision.FP32, false, false, 96, 160, 64, true, 1e-2);
    }

    @Test
    void shouldMatchBatchedTf32GemmWithBeta() {
        int m = 64;
        int n = 96;
        int k = 80;
        int batch = 5;
        gpu.setGemmPrecision(GemmPrecision.TF32);
        float[] a = rounded(tw.uniform(batch * m * k, -1f, 1f), false);
        float[] b = rounded(tw.uniform(batch * k * n, -1f, 1f), false);
        Twin ta = tw.of(a, batch, m, k);
        Twin tb = tw.of(b, batch, k, n);
        Twin c = tw.random(batch, m, n);
        tw.ref.gemmBatched(false, false, m, n, k, 0.5f, ta.ref(), k, (long) m * k, tb.ref(), n, (long) k * n, -1f,
            c.ref(), n, (long) m * n, batch);
        tw.dut.gemmBatched(false, false, m, n, k, 0.5f, ta.dut(), k, (long) m * k, tb.dut(), n, (long) k * n, -1f,
            c.dut(), n, (long) m * n, batch);
        tw.assertClose("batched TF32 gemm, alpha 0.5, beta -1", c, 1e-3, 1e-4);
    }

    @Test
    void shouldMatchFlashAttentionAtLargerSizesAndOddHeads() {
        for (int[] s : new int[][] {{2, 256, 4, 64}, {1, 100, 2, 128}, {2, 45, 3, 100}, {1, 33, 1, 8}}) {
            int batch = s[0];
            int seq = s[1];
            int heads = s[2];
            int hd = s[3];
            int c = heads * hd;
            String tag = " B" + batch + " T" + seq + " H" + heads + " hd" + hd;
            Twin qkv = tw.random(batch, seq, 3 * c);
            Twin out = tw.poisoned(batch, seq, c);
            Twin saved = tw.poisoned(batch, heads, seq, seq);
            tw.ref.attention(qkv.ref(), out.ref(), saved.ref(), batch, seq, heads, hd);
            tw.dut.attention(qkv.dut(), out.dut(), saved.dut(), batch, seq, heads, hd);
            tw.assertClose("flash attention out" + tag, out, 1e-4, 1e-4);
            Twin dout = tw.random(batch, seq, c);
            Twin dqkv = tw.poisoned(batch, seq, 3 * c);
            tw.ref.attentionBackward(dqkv.ref(), dout.ref(), qkv.ref(), saved.ref(), batch, seq, heads, hd);
            tw.dut.attentionBackward(dqkv.dut(), dout.dut(), qkv.dut(), saved.dut(), batch, seq, heads, hd);
            tw.assertClose("flash attention dqkv" + tag, dqkv, 1e-4, 1e-4);
            float[] first = dqkv.dut().toFloatArray();
            tw.dut.attentionBackward(dqkv.dut(), dout.dut(), qkv.dut(), saved.dut(), batch, seq, heads, hd);
            assertArrayEquals(first, dqkv.dut().toFloatArray(), 0f, "attention backward must be deterministic");
        }
    }

    @Test
    void shouldRoundTripBf16TensorsWithNearestEvenRounding() {
        float[] host = tw.uniform(1000, -100f, 100f);
        host[0] = 1.00390625f;   // exactly halfway between two bfloat16 values: rounds to even (1.0)
        try (Tensor t = gpu.allocate(DType.BF16, 1000)) {
            gpu.copyFromHost(host, t);
            float[] back = new float[1000];
            gpu.copyToHost(t, back);
            for (int i = 0; i < host.length; i++) {
                assertEquals(Bf16.round(host[i]), back[i], 0f, "element " + i);
            }
            assertEquals(1.0f, back[0], 0f);
        }
    }

    @Test
    void shouldReportOutOfRangeTargetAtSynchronizeAndRecover() {
        Twin logits = tw.random(2, 10);
        Twin probs = tw.poisoned(2, 10);
        Twin losses = tw.poisoned(2);
        Tensor targets = tw.track(gpu.allocate(DType.I32, 2));
        gpu.copyFromHost(new int[] {3, 5000}, targets);
        gpu.crossEntropy(logits.dut(), targets, probs.dut(), losses.dut(), 2, 10);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, gpu::synchronize);
        assertTrue(e.getMessage().contains("5000"), e.getMessage());
        gpu.synchronize();   // the error was reported once and cleared
        Tensor ids = tw.track(gpu.allocate(DType.I32, 2));
        gpu.copyFromHost(new int[] {-7, 1}, ids);
        Twin table = tw.random(4, 10);
        Twin out = tw.poisoned(2, 10);
        gpu.embedding(out.dut(), ids, table.dut(), 2, 10, false);
        e = assertThrows(IllegalArgumentException.class, gpu::synchronize);
        assertTrue(e.getMessage().contains("-7"), e.getMessage());
        Twin dout = tw.random(2, 10);
        e = assertThrows(IllegalArgumentException.class, () -> gpu.embeddingBackward(table.dut(), dout.dut(), ids, 2,
            10));
        assertTrue(e.getMessage().contains("-7"), e.getMessage());
    }

    @Test
    void shouldScatterAddEmbeddingGradientsInAFixedOrder() {
        int rows = 4096;
        int dim = 300;
        int vocab = 50;
        Twin dout = tw.random(rows, dim);
        Twin ids = tw.ids(tw.ints(rows, vocab));
        Twin dtable = tw.poisoned(vocab, dim);
        float[] first = null;
        for (int run = 0; run < 2; run++) {
            tw.ref.fill(dtable.ref(), 0f);
            tw.dut.fill(dtable.dut(), 0f);
            tw.ref.embeddingBackward(dtable.ref(), dout.ref(), ids.ref(), rows, dim);
            tw.dut.embeddingBackward(dtable.dut(), dout.dut(), ids.dut(), rows, dim);
            tw.assertClose("embeddingBackward 4096 rows over 50 ids", dtable, 1e-4, 1e-4);
            float[] got = dtable.dut().toFloatArray();
            if (first != null) {
                assertArrayEquals(first, got, 0f, "embeddingBackward must be bitwise repeatable");
            }
            first = got;
        }
    }

    @Test
    void shouldCopyThroughPinnedBuffersOnTheCopyStreamInOrderWithCompute() {
        int n = 1 << 20;
        float[] host = tw.uniform(n, -1f, 1f);
        try (PinnedHostBuffer in = gpu.allocatePinned(4L * n); PinnedHostBuffer out = gpu.allocatePinned(8L * n);
             Tensor t = gpu.allocate(n)) {
            in.byteBuffer().asFloatBuffer().put(host);
            try (CopyTicket up = gpu.copyFromPinnedAsync(in, 0, t)) {
                gpu.scale(t, 2f);   // issued after the copy in: must see its data
                try (CopyTicket down = gpu.copyToPinnedAsync(t, out, 4L * n)) {
                    down.await();
                    assertTrue(down.isDone() && up.isDone());
                }
            }
            java.nio.FloatBuffer back = out.byteBuffer().position(4 * n).slice()
                .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
            for (int i = 0; i < n; i++) {
                assertEquals(2f * host[i], back.get(i), 0f, "element " + i);
            }
            assertThrows(IllegalArgumentException.class, () -> gpu.copyToPinnedAsync(t, in, 4));
        }
    }

    @Test
    void shouldZeroFillReusedBlocks() {
        Tensor t = gpu.allocate(1000, 1000);
        gpu.fill(t, 7f);
        t.close();
        try (Tensor again = gpu.allocate(1000, 1000)) {
            assertEquals(0.0, gpu.sumOfSquares(again), 0.0, "a reused block must come back zero-filled");
        }
    }
}
