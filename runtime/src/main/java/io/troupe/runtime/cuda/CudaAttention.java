package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.f32;
import static io.troupe.runtime.cuda.CudaLaunch.launch;

import io.troupe.runtime.tensor.Tensor;

/**
 * Causal attention for {@link CudaDevice} (kernels in attention.cu). The forward is either the
 * simple kernel (softmax probabilities into {@code saved}) or the fused flash kernel (log-sum-exp
 * rows into {@code saved}); see {@link AttentionKernel}. The backward builds the probabilities (from
 * {@code saved} directly, or rebuilt from the log-sum-exp into scratch), then computes dq per query
 * row and dk, dv per key row in a fixed order, so it is deterministic.
 */
final class CudaAttention {
    /** Largest head size the flash kernel supports (each lane owns 4 output dimensions). */
    static final int FLASH_MAX_HEAD_DIM = 128;

    private CudaAttention() {
    }

    static boolean usesFlash(CudaDevice dev, int headDim) {
        return dev.attentionKernel() == AttentionKernel.FLASH && headDim <= FLASH_MAX_HEAD_DIM;
    }

    static void forward(CudaDevice dev, Tensor qkv, Tensor out, Tensor saved, int batch, int seq, int heads,
                        int headDim) {
        String op = "attention";
        checkSizes(op, batch, seq, heads, headDim);
        long c = (long) heads * headDim;
        long tokens = (long) batch * seq;
        long rows = tokens * heads;
        long pQkv = f32(dev, qkv, tokens * 3 * c, op, "qkv");
        long pOut = f32(dev, out, tokens * c, op, "out");
        float scale = (float) (1.0 / Math.sqrt(headDim));
        if (usesFlash(dev, headDim)) {
            long pLse = f32(dev, saved, rows, op, "saved");
            launch(dev, op, "attn_fwd_flash", CudaLaunch.ceilDiv(seq, 32), (int) ((long) batch * heads), 1, 128, 1, 1,
                CudaLaunch.flashSharedBytes(headDim), dev.args().reset().ptr(pQkv).ptr(pOut).ptr(pLse)
                    .i32(batch).i32(seq).i32(heads).i32(headDim).f32(scale));
        } else {
            long pProbs = f32(dev, saved, rows * seq, op, "saved");
            launch(dev, op, "attn_fwd_simple", CudaLaunch.ceilDiv(rows, 8), 1, 1, CudaLaunch.BLOCK, 1, 1, 0,
                dev.args().reset().ptr(pQkv).ptr(pOut).ptr(pProbs).i32(batch).i32(seq).i32(heads).i32(headDim)
                    .f32(scale));
        }
    }

    static void backward(CudaDevice dev, Tensor dqkv, Tensor dout, Tensor qkv, Tensor saved, int batch, int seq,
                         int heads, int headDim) {
        String op = "attentionBackward";
        checkSizes(op, batch, seq, heads, headDim);
        long c = (long) heads * headDim;
        long tokens = (long) batch * seq;
        long rows = tokens * heads;
        long pDqkv = f32(dev, dqkv, tokens * 3 * c, op, "dqkv");
        long pDout = f32(dev, dout, tokens * c, op, "dout");
        long pQkv = f32(dev, qkv, tokens * 3 * c, op, "qkv");
        float scale = (float) (1.0 / Math.sqrt(headDim));
        int grid = CudaLaunch.ceilDiv(rows, 8);
        CudaStorage probsScratch = null;
        CudaStorage dS = dev.scratch(4 * rows * seq);
        try {
            long pProbs;
            if (usesFlash(dev, headDim)) {
                long pLse = f32(dev, saved, rows, op, "saved");
                probsScratch = dev.scratch(4 * rows * seq);
                pProbs = probsScratch.address();
                launch(dev, op, "attn_probs_from_lse", grid, 1, 1, CudaLaunch.BLOCK, 1, 1, 0, dev.args().reset()
                    .ptr(pQkv).ptr(pLse).ptr(pProbs).i32(batch).i32(seq).i32(heads).i32(headDim).f32(scale));
            } else {
                pProbs = f32(dev, saved, rows * seq, op, "saved");
            }
            launch(dev, op, "attn_bwd_dq", grid, 1, 1, CudaLaunch.BLOCK, 1, 1, 0, dev.args().reset()
                .ptr(pDqkv).ptr(pDout).ptr(pQkv).ptr(pProbs).ptr(dS.address())
                .i32(batch).i32(seq).i32(heads).i32(headDim).f32(scale));
            launch(dev, op, "attn_bwd_dkv", grid, 1, 1, CudaLaunch.BLOCK, 1, 1, 0, dev.args().reset()
                .ptr(pDqkv).ptr(pDout).ptr(pQkv).ptr(pProbs).ptr(dS.address())
                .i32(batch).i32(seq).i32(heads).i32(headDim).f32(scale));
        } finally {
            dS.close();
            if (probsScratch != null) {
                probsScratch.close();
            }
        }
    }

    private static void checkSizes(String op, int batch, int seq, int heads, int headDim) {
        if (batch <= 0 || seq <= 0 || heads <= 0 || headDim <= 0) {
            throw new IllegalArgumentException(op + " sizes must be positive: batch=" + batch + ", seq=" + seq
                + ", heads=" + heads + ", headDim=" + headDim);
        }
    }
}
