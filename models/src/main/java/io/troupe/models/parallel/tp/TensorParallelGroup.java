package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.Tensor;

/**
 * The ranks of one tensor-parallel group, as the parallel layers see them: the collectives they
 * need, on contiguous float32 tensors, in place or into a caller's buffer.
 *
 * <p>Contract for every implementation:
 * <ul>
 *   <li>Every member calls the same collectives in the same order with the same element counts;
 *       a call returns when this member's result is complete.</li>
 *   <li>Shards are equal and in member order: for {@link #allGather} and {@link #reduceScatter},
 *       {@code full.numel() == size() * shard.numel()} and member {@code k} owns elements
 *       {@code [k * shard.numel(), (k + 1) * shard.numel())} of the flat buffer.</li>
 *   <li>Reductions are deterministic: every member receives bitwise the same result, and the same
 *       inputs give the same result on every run.</li>
 *   <li>A group of size 1 does no communication: reductions leave the tensor as it is, gathers and
 *       scatters copy.</li>
 * </ul>
 * Threading: one thread per member (the member's device executor) calls it.
 *
 * <p>The {@code xxxAsync} forms start the same collective and return a handle at once, so that the
 * member computes what does not depend on the result (a layer's weight gradient) while it is in
 * flight. They follow the same contract, counted in the same sequence as the blocking forms, with
 * these additions: at most one collective per member is in flight (the member awaits it before it
 * issues any other collective); the tensors belong to the collective until the handle's
 * {@link PendingTensorParallelCollective#await} returns; the result is bitwise the one of the
 * blocking form (same reduction order).
 */
public interface TensorParallelGroup {

    /** Members in the group: tp. */
    int size();

    /** This member's index in the group: tp_i. */
    int index();

    /** {@code t[i] = sum over members of t[i]}, in place. */
    void allReduceSum(Tensor t);

    /** {@code t[i] = max over members of t[i]}, in place. */
    void allReduceMax(Tensor t);

    /** Concatenates every member's {@code shard} into {@code full}, in member order. */
    void allGather(Tensor shard, Tensor full);

    /** Sums {@code full} over the members and writes this member's segment of the sum into {@code shard}. */
    void reduceScatter(Tensor full, Tensor shard);

    /** {@link #allReduceSum}, started; the sum is in {@code t} when the handle's await returns. */
    PendingTensorParallelCollective allReduceSumAsync(Tensor t);

    /** {@link #allGather}, started; {@code full} is complete when the handle's await returns. */
    PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full);

    /** {@link #reduceScatter}, started; {@code shard} is complete when the handle's await returns. */
    PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard);

    /** The group of one: no peers, no communication. */
    static TensorParallelGroup single() {
        return SingleTensorParallelGroup.INSTANCE;
    }
}
