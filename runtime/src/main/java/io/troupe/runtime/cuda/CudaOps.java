package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaDevice.BLOCK;
import static io.troupe.runtime.cuda.CudaDevice.ceilDiv;

import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.tensor.Tensor;

/**
 * The transformer kernels of {@link CudaDevice} other than attention: bias, GELU, LayerNorm,
 * softmax cross-entropy, embedding and AdamW (kernels in kernels.cu). Each method checks its
 * tensors (device, dtype, capacity) and launches on the device's stream; inputs a kernel finds out
 * of range are reported through the device's error word at the next synchronisation.
 */
final class CudaOps {
    private CudaOps() {
    }

    static void biasAdd(CudaDevice dev, Tensor out, Tensor bias, int rows, int cols) {
        long n = (long) rows * cols;
        String op = "biasAdd";
        dev.launch1d(op, "bias_add", n, dev.args().reset().ptr(dev.f32(out, n, op, "out"))
            .ptr(dev.f32(bias, cols, op, "bias")).i32(rows).i32(cols));
    }

    /** Column sums in a fixed order: block (32, 8) per 32 columns. */
    static void biasBackward(CudaDevice dev, Tensor dbias, Tensor dout, int rows, int cols) {
        long n = (long) rows * cols;
        String op = "biasBackward";
        dev.launch(op, "bias_backward", ceilDiv(cols, 32), 1, 1, 32, 8, 1, 0, dev.args().reset()
            .ptr(dev.f32(dbias, cols, op, "dbias")).ptr(dev.f32(dout, n, op, "dout")).i32(rows).i32(cols));
    }

    static void gelu(CudaDevice dev, Tensor inp, Tensor out, long n) {
        String op = "gelu";
        dev.launch1d(op, "gelu_fwd", n, dev.args().reset().i64(n).ptr(dev.f32(inp, n, op, "inp"))
            .ptr(dev.f32(out, n, op, "out")));
    }

    static void geluBackward(CudaDevice dev, Tensor inp, Tensor dout, Tensor dinp, long n) {
        String op = "geluBackward";
        dev.launch1d(op, "gelu_bwd", n, dev.args().reset().i64(n).ptr(dev.f32(inp, n, op, "inp"))
            .ptr(dev.f32(dout, n, op, "dout")).ptr(dev.f32(dinp, n, op, "dinp")));
    }

    /** One warp per row: 8 rows per 256-thread block. */
    static void layerNorm(CudaDevice dev, Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean,
                          Tensor rstd, int rows, int cols, float eps) {
        long n = (long) rows * cols;
        String op = "layerNorm";
        dev.launch(op, "layernorm_fwd", ceilDiv(rows, 8), 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(dev.f32(inp, n, op, "inp")).ptr(dev.f32(weight, cols, op, "weight"))
            .ptr(dev.f32(bias, cols, op, "bias")).ptr(dev.f32(out, n, op, "out"))
            .ptr(dev.f32(mean, rows, op, "mean")).ptr(dev.f32(rstd, rows, op, "rstd"))
            .i32(rows).i32(cols).f32(eps));
    }

    /** dinp per row (one warp each), then dweight and dbias as fixed-order column sums. */
    static void layerNormBackward(CudaDevice dev, Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
                                  Tensor weight, Tensor mean, Tensor rstd, int rows, int cols) {
        long n = (long) rows * cols;
        String op = "layerNormBackward";
        long pDout = dev.f32(dout, n, op, "dout");
        long pInp = dev.f32(inp, n, op, "inp");
        long pMean = dev.f32(mean, rows, op, "mean");
        long pRstd = dev.f32(rstd, rows, op, "rstd");
        dev.launch(op, "layernorm_bwd_dinp", ceilDiv(rows, 8), 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(dev.f32(dinp, n, op, "dinp")).ptr(pDout).ptr(pInp).ptr(dev.f32(weight, cols, op, "weight"))
            .ptr(pMean).ptr(pRstd).i32(rows).i32(cols));
        dev.launch(op, "layernorm_bwd_params", ceilDiv(cols, 32), 1, 1, 32, 8, 1, 0, dev.args().reset()
            .ptr(dev.f32(dweight, cols, op, "dweight")).ptr(dev.f32(dbias, cols, op, "dbias")).ptr(pDout).ptr(pInp)
            .ptr(pMean).ptr(pRstd).i32(rows).i32(cols));
    }

    /** One 256-thread block per row. */
    static void crossEntropy(CudaDevice dev, Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows,
                             int vocab) {
        long n = (long) rows * vocab;
        String op = "crossEntropy";
        dev.launch(op, "cross_entropy_fwd", rows, 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(dev.f32(logits, n, op, "logits")).ptr(dev.i32(targets, rows, op, "targets"))
            .ptr(dev.f32(probs, n, op, "probs")).ptr(dev.f32(losses, rows, op, "losses"))
            .i32(rows).i32(vocab).ptr(dev.errorWordAddress()));
    }

    static void crossEntropyBackward(CudaDevice dev, Tensor dlogits, Tensor probs, Tensor targets, float dlossScale,
                                     int rows, int vocab) {
        long n = (long) rows * vocab;
        String op = "crossEntropyBackward";
        dev.launch1d(op, "cross_entropy_bwd", n, dev.args().reset()
            .ptr(dev.f32(dlogits, n, op, "dlogits")).ptr(dev.f32(probs, n, op, "probs"))
            .ptr(dev.i32(targets, rows, op, "targets")).f32(dlossScale).i32(rows).i32(vocab)
            .ptr(dev.errorWordAddress()));
    }

    static void embedding(CudaDevice dev, Tensor out, Tensor ids, Tensor table, int rows, int dim,
                          boolean accumulate) {
        long n = (long) rows * dim;
        String op = "embedding";
        int tableRows = tableRows(table, dim, op);
        dev.launch1d(op, "embedding_fwd", n, dev.args().reset().ptr(dev.f32(out, n, op, "out"))
            .ptr(dev.i32(ids, rows, op, "ids")).ptr(dev.f32(table, dim, op, "table")).i32(rows).i32(dim)
            .i32(tableRows).i32(accumulate ? 1 : 0).ptr(dev.errorWordAddress()));
    }

    /**
     * Scatter-add in a fixed order: the rows are grouped by id on the host ({@link EmbeddingGrouping}),
     * then one thread per (id, column) sums its rows in ascending order. Synchronises with the host
     * once (to read the ids); an id out of range throws here, naming it.
     */
    static void embeddingBackward(CudaDevice dev, Tensor dtable, Tensor dout, Tensor ids, int rows, int dim) {
        long n = (long) rows * dim;
        String op = "embeddingBackward";
        int tableRows = tableRows(dtable, dim, op);
        long pTable = dev.f32(dtable, dim, op, "dtable");
        long pDout = dev.f32(dout, n, op, "dout");
        dev.i32(ids, rows, op, "ids");
        int[] unique = new int[1];
        try (CudaStorage g = dev.embeddingGrouping().group(dev, dev.staging(), ids, rows, tableRows, unique)) {
            long base = g.address();
            dev.launch(op, "embedding_bwd_sorted", unique[0], ceilDiv(dim, BLOCK), 1, BLOCK, 1, 1, 0,
                dev.args().reset().ptr(pTable).ptr(pDout).ptr(base).ptr(base + 4L * rows)
                    .ptr(base + 4L * (rows + unique[0] + 1)).i32(dim));
        }
    }

    private static int tableRows(Tensor table, int dim, String op) {
        if (dim <= 0) {
            throw new IllegalArgumentException(op + ": dim must be positive: dim=" + dim);
        }
        return (int) Math.min(Integer.MAX_VALUE, table.numel() / dim);
    }

    /** Bias corrections computed on the host exactly as the CPU backend does. */
    static void adamw(CudaDevice dev, Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep step) {
        long n = param.numel();
        String op = "adamw";
        float decay = 1f - step.lr() * step.weightDecay();
        float stepSize = (float) (step.lr() / (1 - Math.pow(step.beta1(), step.step())));
        float bc2sqrt = (float) Math.sqrt(1 - Math.pow(step.beta2(), step.step()));
        dev.launch1d(op, "adamw_f32", n, dev.args().reset().i64(n).ptr(dev.f32(param, n, op, "param"))
            .ptr(dev.f32(grad, n, op, "grad")).ptr(dev.f32(m, n, op, "m")).ptr(dev.f32(v, n, op, "v"))
            .f32(step.beta1()).f32(step.beta2()).f32(step.eps()).f32(decay).f32(stepSize).f32(bc2sqrt));
    }
}
