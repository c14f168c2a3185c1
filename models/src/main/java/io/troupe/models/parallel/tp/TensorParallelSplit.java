package io.troupe.models.parallel.tp;

import java.util.Arrays;

/**
 * How one parameter tensor is split over the tp members: along dimension {@code dim}, which holds
 * {@code parts} fused blocks of equal size (q, k, v: 3; otherwise 1), each block cut into tp equal
 * pieces; member i holds piece i of every block, in block order. So a fused QKV weight
 * {@code (3C, C)} split {@code (dim 0, parts 3)} gives member i the rows of its heads:
 * {@code [q_i; k_i; v_i]}, of shape {@code (3C/tp, C)}, which is exactly what a column-parallel
 * layer over those heads needs (Megatron's per-part sharding of fused weights).
 *
 * <pre>
 *   global (dim 0, parts 3, tp 2):   q0 q1 | k0 k1 | v0 v1      member 0: q0 k0 v0
 *                                                               member 1: q1 k1 v1
 *   global (dim 1, parts 1, tp 2):   [ A0 | A1 ] per row        member i: column block Ai
 * </pre>
 * A member's shard is a sequence of equal runs of the global row-major buffer
 * ({@link #runStarts}, {@link #runLength}); slicing, reassembly and the checkpoint's partial reads
 * all walk the same runs.
 *
 * @param dim   the split dimension
 * @param parts fused blocks along {@code dim}, each split on its own
 */
public record TensorParallelSplit(int dim, int parts) {

    public TensorParallelSplit {
        if (dim < 0 || parts < 1) {
            throw new IllegalArgumentException("split needs dim >= 0 and parts >= 1: dim=" + dim + ", parts=" + parts);
        }
    }

    /** Split along {@code dim}, one block. */
    public static TensorParallelSplit along(int dim) {
        return new TensorParallelSplit(dim, 1);
    }

    /** The shape of one member's shard; refuses a dimension that does not divide, naming the numbers. */
    public int[] localShape(String name, int[] global, int tp) {
        if (dim >= global.length) {
            throw new IllegalArgumentException(name + ": split dimension " + dim + " outside shape "
                + Arrays.toString(global));
        }
        if (global[dim] % (parts * tp) != 0) {
            throw new IllegalArgumentException(name + ": dimension " + dim + " of " + Arrays.toString(global)
                + " must be divisible by parts*tp: size=" + global[dim] + ", parts=" + parts + ", tp=" + tp);
        }
        int[] local = global.clone();
        local[dim] = global[dim] / tp;
        return local;
    }

    /** Elements in every run of a shard: (piece along dim) × (the dimensions after dim). */
    public long runLength(int[] global, int tp) {
        return (long) global[dim] / (parts * tp) * inner(global);
    }

    /** Global element offset of each run of member {@code index}'s shard, in the shard's order. */
    public long[] runStarts(int[] global, int tp, int index) {
        localShape("tensor", global, tp);
        if (index < 0 || index >= tp) {
            throw new IllegalArgumentException("member index must be in [0, " + tp + "): index=" + index);
        }
        long outer = 1;
        for (int d = 0; d < dim; d++) {
            outer *= global[d];
        }
        long inner = inner(global);
        long block = (long) global[dim] / parts;
        long piece = block / tp;
        long[] starts = new long[(int) (outer * parts)];
        int k = 0;
        for (long o = 0; o < outer; o++) {
            for (int p = 0; p < parts; p++) {
                starts[k++] = (o * global[dim] + p * block + index * piece) * inner;
            }
        }
        return starts;
    }

    /** Member {@code index}'s shard of the row-major {@code full} tensor of shape {@code global}. */
    public float[] shard(float[] full, int[] global, int tp, int index) {
        long len = runLength(global, tp);
        long[] starts = runStarts(global, tp, index);
        float[] out = new float[(int) (len * starts.length)];
        for (int k = 0; k < starts.length; k++) {
            System.arraycopy(full, (int) starts[k], out, (int) (k * len), (int) len);
        }
        return out;
    }

    /** The full tensor from every member's shard, in member order; the inverse of {@link #shard}. */
    public float[] unshard(float[][] shards, int[] global) {
        int tp = shards.length;
        long len = runLength(global, tp);
        float[] full = new float[(int) (len * tp * runStarts(global, tp, 0).length)];
        for (int i = 0; i < tp; i++) {
            long[] starts = runStarts(global, tp, i);
            for (int k = 0; k < starts.length; k++) {
                System.arraycopy(shards[i], (int) (k * len), full, (int) starts[k], (int) len);
            }
        }
        return full;
    }

    private long inner(int[] global) {
        long inner = 1;
        for (int d = dim + 1; d < global.length; d++) {
            inner *= global[d];
        }
        return inner;
    }
}
