package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.Tensor;

/** tp = 1: reductions are the identity, gathers and scatters copy. */
final class SingleTensorParallelGroup implements TensorParallelGroup {
    static final SingleTensorParallelGroup INSTANCE = new SingleTensorParallelGroup();

    private SingleTensorParallelGroup() {
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public int index() {
        return 0;
    }

    @Override
    public void allReduceSum(Tensor t) {
    }

    @Override
    public void allReduceMax(Tensor t) {
    }

    @Override
    public void allGather(Tensor shard, Tensor full) {
        TensorParallelChecks.segments("allGather", full, shard, 1);
        if (shard.storage() != full.storage() || shard.offsetElements() != full.offsetElements()) {
            shard.device().copy(shard, full.view(0, shard.shape()));
        }
    }

    @Override
    public void reduceScatter(Tensor full, Tensor shard) {
        allGather(full, shard);
    }

    @Override
    public PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
        return DonePendingCollective.INSTANCE;
    }

    @Override
    public PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
        allGather(shard, full);
        return DonePendingCollective.INSTANCE;
    }

    @Override
    public PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
        reduceScatter(full, shard);
        return DonePendingCollective.INSTANCE;
    }

    @Override
    public String toString() {
        return "TensorParallelGroup{size=1}";
    }
}
