package io.troupe.runtime.cpu;

import static io.troupe.runtime.cpu.CpuDevice.requireCapacity;
import static io.troupe.runtime.cpu.CpuDevice.rowGrain;
import static io.troupe.runtime.cpu.CpuMemory.UNSAFE;
import static io.troupe.runtime.cpu.CpuMemory.getInt;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;

/**
 * The kernels of {@link CpuDevice} indexed by token ids: the embedding lookup (copy or accumulate)
 * and its gradient (split by columns, so the scatter-add order is fixed), the cross-entropy forward
 * (vector rows where the Vector API kernels run, bitwise the scalar ones) and backward, with the
 * check that every id is an I32 within its table or vocabulary.
 */
final class CpuTokenOps {
    private final CpuParallel parallel;

    CpuTokenOps(CpuParallel parallel) {
        this.parallel = parallel;
    }

    void crossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int rows, int vocab) {
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
        parallel.forRange(rows, rowGrain(vocab), (s, e) -> CpuTokenRows.crossEntropy(la, ta, pa, lossA, s, e, vocab));
    }

    void crossEntropyBackward(Tensor dlogits, Tensor probs, Tensor targets, float dlossScale,
                                     int rows, int vocab) {
        long n = (long) rows * vocab;
        requireCapacity(dlogits, n, "crossEntropyBackward dlogits");
        requireCapacity(probs, n, "crossEntropyBackward probs");
        requireIds(targets, rows, vocab, "crossEntropyBackward target");
        long da = dlogits.address();
        long pa = probs.address();
        long ta = targets.address();
        parallel.forRange(rows, rowGrain(vocab),
            (s, e) -> CpuTokenRows.crossEntropyBackward(da, pa, ta, s, e, vocab, dlossScale));
    }

    void embedding(Tensor out, Tensor ids, Tensor table, int rows, int dim, boolean accumulate) {
        requireCapacity(out, (long) rows * dim, "embedding out");
        int tableRows = (int) (table.numel() / dim);
        requireIds(ids, rows, tableRows, "embedding id");
        long oa = out.address();
        long ia = ids.address();
        long ta = table.address();
        if (accumulate) {
            parallel.forRange(rows, rowGrain(dim), (s, e) -> CpuTokenRows.addTableRows(oa, ia, ta, s, e, dim));
            return;
        }
        parallel.forRange(rows, rowGrain(dim), (s, e) -> {
            for (int r = s; r < e; r++) {
                long src = (long) getInt(ia, r) * dim;
                UNSAFE.copyMemory(ta + 4 * src, oa + 4L * r * dim, 4L * dim);
            }
        });
    }

    void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids, int rows, int dim) {
        requireCapacity(dout, (long) rows * dim, "embeddingBackward dout");
        int tableRows = (int) (dtable.numel() / dim);
        requireIds(ids, rows, tableRows, "embeddingBackward id");
        long ga = dout.address();
        long ia = ids.address();
        long ta = dtable.address();
        // Split by columns: every thread walks all rows in order, so the sum order is fixed.
        parallel.forRange(dim, 16, (s, e) -> CpuTokenRows.scatterAddRows(ta, ga, ia, rows, dim, s, e));
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
}
