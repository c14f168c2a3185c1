package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.Tensor;

/**
 * The conjugate operators at the borders of tensor-parallel regions, each a forward and its
 * backward, named by direction (Megatron-LM's mappings). Activations are {@code (N, C)} row-major
 * with N = B·T tokens, so the sequence-parallel split is a split of the flat buffer into tp equal
 * runs of rows: member {@code k} owns tokens {@code [k·N/tp, (k+1)·N/tp)}.
 *
 * <pre>
 *   operator                                  forward              backward
 *   copyToTensorParallelRegion         (f)    identity             all-reduce
 *   reduceFromTensorParallelRegion     (g)    all-reduce           identity
 *   scatterToSequenceParallelRegion           keep own rows        all-gather rows
 *   gatherFromSequenceParallelRegion          all-gather rows      reduce-scatter rows
 *   reduceScatterToSequenceParallelRegion     reduce-scatter rows  all-gather rows
 * </pre>
 * f enters a column-parallel layer (its input is replicated, so the input gradient is the sum of
 * every member's partial); g leaves a row-parallel layer (the members hold partial sums). Under
 * sequence parallelism the all-reduce of g becomes a reduce-scatter and f's identity an all-gather.
 * Every operator is collective: all members of the group call it in the same order.
 */
public final class TensorParallelRegions {
    private TensorParallelRegions() {
    }

    /** f forward: the identity; returns {@code x}. */
    public static Tensor copyToTensorParallelRegion(TensorParallelGroup group, Tensor x) {
        return x;
    }

    /** f backward: sums the members' partial input gradients, in place. */
    public static void copyToTensorParallelRegionBackward(TensorParallelGroup group, Tensor dx) {
        group.allReduceSum(dx);
    }

    /**
     * f backward, started: the sum is in {@code dx} once the returned handle is awaited; meanwhile the
     * caller computes what does not read {@code dx} (the layer's weight gradient).
     */
    public static PendingTensorParallelCollective copyToTensorParallelRegionBackwardAsync(TensorParallelGroup group,
                                                                                        Tensor dx) {
        return group.allReduceSumAsync(dx);
    }

    /** g forward: sums the members' partial outputs, in place. */
    public static void reduceFromTensorParallelRegion(TensorParallelGroup group, Tensor partial) {
        group.allReduceSum(partial);
    }

    /** g backward: the identity; returns {@code dy}. */
    public static Tensor reduceFromTensorParallelRegionBackward(TensorParallelGroup group, Tensor dy) {
        return dy;
    }

    /** Forward: copies this member's rows of {@code full} into {@code shard}. No communication. */
    public static void scatterToSequenceParallelRegion(TensorParallelGroup group, Tensor full, Tensor shard) {
        TensorParallelChecks.segments("scatterToSequenceParallelRegion", full, shard, group.size());
        full.device().copy(full.view(group.index() * shard.numel(), shard.shape()), shard);
    }

    /** Backward of the scatter: all-gathers the rows' gradients. */
    public static void scatterToSequenceParallelRegionBackward(TensorParallelGroup group, Tensor dShard, Tensor dFull) {
        group.allGather(dShard, dFull);
    }

    /** Forward: all-gathers every member's rows into {@code full}. */
    public static void gatherFromSequenceParallelRegion(TensorParallelGroup group, Tensor shard, Tensor full) {
        group.allGather(shard, full);
    }

    /** Backward of the gather: each member's full gradient is partial, so sum and keep own rows. */
    public static void gatherFromSequenceParallelRegionBackward(TensorParallelGroup group, Tensor dFull,
                                                                Tensor dShard) {
        group.reduceScatter(dFull, dShard);
    }

    /** Backward of the gather, started: {@code dShard} is complete once the returned handle is awaited. */
    public static PendingTensorParallelCollective gatherFromSequenceParallelRegionBackwardAsync(
        TensorParallelGroup group, Tensor dFull, Tensor dShard) {
        return group.reduceScatterAsync(dFull, dShard);
    }

    /** Forward: sums the members' partial outputs and keeps this member's rows. */
    public static void reduceScatterToSequenceParallelRegion(TensorParallelGroup group, Tensor partial, Tensor shard) {
        group.reduceScatter(partial, shard);
    }

    /** Backward of the reduce-scatter: all-gathers the rows' gradients. */
    public static void reduceScatterToSequenceParallelRegionBackward(TensorParallelGroup group, Tensor dShard,
                                                                     Tensor dFull) {
        group.allGather(dShard, dFull);
    }
}
