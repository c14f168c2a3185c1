package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.BLOCK;
import static io.troupe.runtime.cuda.CudaLaunch.ceilDiv;
import static io.troupe.runtime.cuda.CudaLaunch.f32;
import static io.troupe.runtime.cuda.CudaLaunch.i32;
import static io.troupe.runtime.cuda.CudaLaunch.launch;
import static io.troupe.runtime.cuda.CudaLaunch.launch1d;

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
        launch1d(dev, op, "bias_add", n, dev.args().reset().ptr(f32(dev, out, n, op, "out"))
            .ptr(f32(dev, bias, cols, op, "bias")).i32(rows).i32(cols));
    }

    /** Column sums in a fixed order: block (32, 8) per 32 columns. */
    static void biasBackward(CudaDevice dev, Tensor dbias, Tensor dout, int rows, int cols) {
        long n = (long) rows * cols;
        String op = "biasBackward";
        launch(dev, op, "bias_backward", ceilDiv(cols, 32), 1, 1, 32, 8, 1, 0, dev.args().reset()
            .ptr(f32(dev, dbias, cols, op, "dbias")).ptr(f32(dev, dout, n, op, "dout")).i32(rows).i32(cols));
    }

    static void gelu(CudaDevice dev, Tensor inp, Tensor out, long n) {
        String op = "gelu";
        launch1d(dev, op, "gelu_fwd", n, dev.args().reset().i64(n).ptr(f32(dev, inp, n, op, "inp"))
            .ptr(f32(dev, out, n, op, "out")));
    }

    static void geluBackward(CudaDevice dev, Tensor inp, Tensor dout, Tensor dinp, long n) {
        String op = "geluBackward";
        launch1d(dev, op, "gelu_bwd", n, dev.args().reset().i64(n).ptr(f32(dev, inp, n, op, "inp"))
            .ptr(f32(dev, dout, n, op, "dout")).ptr(f32(dev, dinp, n, op, "dinp")));
    }

    /** One warp per row: 8 rows per 256-thread block. */
    static void layerNorm(CudaDevice dev, Tensor inp, Tensor weight, Tensor bias, Tensor out, Tensor mean,
                          Tensor rstd, int rows, int cols, float eps) {
        long n = (long) rows * cols;
        String op = "layerNorm";
        launch(dev, op, "layernorm_fwd", ceilDiv(rows, 8), 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(f32(dev, inp, n, op, "inp")).ptr(f32(dev, weight, cols, op, "weight"))
            .ptr(f32(dev, bias, cols, op, "bias")).ptr(f32(dev, out, n, op, "out"))
            .ptr(f32(dev, mean, rows, op, "mean")).ptr(f32(dev, rstd, rows, op, "rstd"))
            .i32(rows).i32(cols).f32(eps));
    }

    /** dinp per row (one warp each), then dweight and dbias as fixed-order column sums. */
    static void layerNormBackward(CudaDevice dev, Tensor dinp, Tensor dweight, Tensor dbias, Tensor dout, Tensor inp,
                                  Tensor weight, Tensor mean, Tensor rstd, int rows, int cols) {
        long n = (long) rows * cols;
        String op = "layerNormBackward";
        long pDout = f32(dev, dout, n, op, "dout");
        long pInp = f32(dev, inp, n, op, "inp");
        long pMean = f32(dev, mean, rows, op, "mean");
        long pRstd = f32(dev, rstd, rows, op, "rstd");
        launch(dev, op, "layernorm_bwd_dinp", ceilDiv(rows, 8), 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(f32(dev, dinp, n, op, "dinp")).ptr(pDout).ptr(pInp).ptr(f32(dev, weight, cols, op, "weight"))
            .ptr(pMean).ptr(pRstd).i32(rows).i32(cols));
        launch(dev, op, "layernorm_bwd_params", ceilDiv(cols, 32), 1, 1, 32, 8, 1, 0, dev.args().reset()
            .ptr(f32(dev, dweight, cols, op, "dweight")).ptr(f32(dev, dbias, cols, op, "dbias")).ptr(pDout).ptr(pInp)
            .ptr(pMean).ptr(pRstd).i32(rows).i32(cols));
    }

    /** One 256-thread block per row. */
    static void crossEntropy(CudaDevice dev, Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows,
                             int vocab) {
        long n = (long) rows * vocab;
        String op = "crossEntropy";
        launch(dev, op, "cross_entropy_fwd", rows, 1, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(f32(dev, logits, n, op, "logits")).ptr(i32(dev, targets, rows, op, "targets"))
            .ptr(f32(dev, probs, n, op, "probs")).ptr(f32(dev, losses, rows, op, "losses"))
            .i32(rows).i32(vocab).ptr(dev.errorWordAddress()));
    }

    static void crossEntropyBackward(CudaDevice dev, Tensor dlogits, Tensor probs, Tensor targets, float dlossScale,
                                     int rows, int vocab) {
        long n = (long) rows * vocab;
        String op = "crossEntropyBackward";
        launch1d(dev, op, "cross_entropy_bwd", n, dev.args().reset()
            .ptr(f32(dev, dlogits, n, op, "dlogits")).ptr(f32(dev, probs, n, op, "probs"))
            .ptr(i32(dev, targets, rows, op, "targets")).f32(dlossScale).i32(rows).i32(vocab)
            .ptr(dev.errorWordAddress()));
    }

    static void embedding(CudaDevice dev, Tensor out, Tensor ids, Tensor table, int rows, int dim,
                          boolean accumulate) {
        long n = (long) rows * dim;
        String op = "embedding";
        int tableRows = tableRows(table, dim, op);
        launch1d(dev, op, "embedding_fwd", n, dev.args().reset().ptr(f32(dev, out, n, op, "out"))
            .ptr(i32(dev, ids, rows, op, "ids")).ptr(f32(dev, table, dim, op, "table")).i32(rows).i32(dim)
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
        long pTable = f32(dev, dtable, dim, op, "dtable");
        long pDout = f32(dev, dout, n, op, "dout");
        i32(dev, ids, rows, op, "ids");
        int[] unique = new int[1];
        try (CudaStorage g = dev.embeddingGrouping().group(dev, dev.staging(), ids, rows, tableRows, unique)) {
            long base = g.address();
            launch(dev, op, "embedding_bwd_sorted", unique[0], ceilDiv(dim, BLOCK), 1, BLOCK, 1, 1, 0,
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
        launch1d(dev, op, "adamw_f32", n, dev.args().reset().i64(n).ptr(f32(dev, param, n, op, "param"))
            .ptr(f32(dev, grad, n, op, "grad")).ptr(f32(dev, m, n, op, "m")).ptr(f32(dev, v, n, op, "v"))
            .f32(step.beta1()).f32(step.beta2()).f32(step.eps()).f32(decay).f32(stepSize).f32(bc2sqrt));
    }
}
