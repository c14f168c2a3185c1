package io.troupe.runtime.cuda;

import static io.troupe.runtime.cuda.CudaLaunch.BLOCK;
import static io.troupe.runtime.cuda.CudaLaunch.ceilDiv;
import static io.troupe.runtime.cuda.CudaLaunch.f32;
import static io.troupe.runtime.cuda.CudaLaunch.i32;
import static io.troupe.runtime.cuda.CudaLaunch.launch;

import io.troupe.runtime.device.DecodeReference;
import io.troupe.runtime.device.PagedRows;
import io.troupe.runtime.tensor.Tensor;

/**
 * The decoding ops of {@link CudaDevice} (kernels in decode.cu): the keys and values of a step's rows
 * into a paged cache, attention over it, and the batch-invariant linear. The linear always runs
 * Troupe's FP32 {@code sgemm_nt}, whatever the device's GEMM settings: each output element is one
 * fma chain over k ascending in one thread, whatever the row count, while cuBLAS may choose another
 * algorithm (split-k, another tile) for 1 row than for 16, and TF32/BF16 round the operands.
 */
final class CudaDecodeOps {
    /** Threads of {@code paged_attention} (DECODE_BLOCK in decode.cu). */
    static final int ATTENTION_THREADS = 128;
    private static final int MAX_GRID_Y = 65535;
    private static final int DEFAULT_SHARED_BYTES = 48 * 1024;

    private CudaDecodeOps() {
    }

    static void linearRowInvariant(CudaDevice dev, CudaGemm gemm, int rows, int n, int k, Tensor x, Tensor w,
                                   Tensor bias, Tensor out) {
        if (rows == 0) {
            return;
        }
        gemm.gemmBatched(GemmPrecision.FP32, null, false, true, rows, n, k, 1f, x, k, 0, w, k, 0, 0f, out, n, 0, 1);
        if (bias != null) {
            dev.biasAdd(out, bias, rows, n);
        }
    }

    static void pagedKvWrite(CudaDevice dev, Tensor qkv, Tensor keys, Tensor values, PagedRows rows, int width,
                             int blockSize) {
        String op = "pagedKvWrite";
        int n = rows.rows();
        checkRowCount(op, n);
        long layer = keys.numel();
        DecodeReference.checkRows(op, rows, blockSize, layer / ((long) blockSize * width));
        launch(dev, op, "paged_kv_write", ceilDiv(width, BLOCK), n, 1, BLOCK, 1, 1, 0, dev.args().reset()
            .ptr(f32(dev, qkv, (long) n * 3 * width, op, "qkv")).ptr(f32(dev, keys, layer, op, "keys"))
            .ptr(f32(dev, values, layer, op, "values")).ptr(i32(dev, rows.positionsOnDevice(), n, op, "positions"))
            .ptr(i32(dev, rows.rowTableOnDevice(), n, op, "rowTable"))
            .ptr(i32(dev, rows.blockTablesOnDevice(), (long) rows.tables() * rows.maxBlocks(), op, "blockTables"))
            .i32(rows.maxBlocks()).i32(n).i32(width).i32(blockSize));
    }

    static void pagedAttention(CudaDevice dev, Tensor qkv, Tensor keys, Tensor values, Tensor out, PagedRows rows,
                               int heads, int headDim, int blockSize, float scale) {
        String op = "pagedAttention";
        int n = rows.rows();
        checkRowCount(op, n);
        int width = heads * headDim;
        long layer = keys.numel();
        DecodeReference.checkRows(op, rows, blockSize, layer / ((long) blockSize * width));
        long shared = 4L * (headDim + (long) rows.maxBlocks() * blockSize + 1);
        if (shared > DEFAULT_SHARED_BYTES) {
            throw new IllegalArgumentException(op + ": headDim " + headDim + " plus " + rows.maxBlocks() + " blocks of "
                + blockSize + " positions need " + shared + " bytes of shared memory, over " + DEFAULT_SHARED_BYTES);
        }
        launch(dev, op, "paged_attention", heads, n, 1, ATTENTION_THREADS, 1, 1, (int) shared, dev.args().reset()
            .ptr(f32(dev, qkv, (long) n * 3 * width, op, "qkv")).ptr(f32(dev, keys, layer, op, "keys"))
            .ptr(f32(dev, values, layer, op, "values")).ptr(f32(dev, out, (long) n * width, op, "out"))
            .ptr(i32(dev, rows.positionsOnDevice(), n, op, "positions"))
            .ptr(i32(dev, rows.rowTableOnDevice(), n, op, "rowTable"))
            .ptr(i32(dev, rows.blockTablesOnDevice(), (long) rows.tables() * rows.maxBlocks(), op, "blockTables"))
            .i32(rows.maxBlocks()).i32(n).i32(heads).i32(headDim).i32(blockSize).f32(scale));
    }

    private static void checkRowCount(String op, int rows) {
        if (rows > MAX_GRID_Y) {
            throw new IllegalArgumentException(op + ": " + rows + " rows, over the grid's " + MAX_GRID_Y);
        }
    }
}
