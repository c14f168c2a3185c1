package io.troupe.actors.cluster;

import io.troupe.models.parallel.tp.PendingTensorParallelCollective;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * Member 0 of a pretend group of two whose peer contributes ones: {@link #allReduceSum} adds 1 to every
 * element in place, and every tensor it is handed is recorded. The other collectives are not used.
 */
final class RecordingTensorParallelGroup implements TensorParallelGroup {
    final List<Tensor> received = new ArrayList<>();

    @Override
    public int size() {
        return 2;
    }

    @Override
    public int index() {
        return 0;
    }

    @Override
    public void allReduceSum(Tensor t) {
        received.add(t);
        float[] v = t.toFloatArray();
        for (int i = 0; i < v.length; i++) {
            v[i] += 1;
        }
        t.device().copyFromHost(v, t);
    }

    @Override
    public PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
        allReduceSum(t);
        return new PendingTensorParallelCollective() {
            @Override
            public boolean isDone() {
                return true;
            }

            @Override
            public void await(long timeoutNs) {
            }

            @Override
            public void await() {
            }
        };
    }

    @Override
    public void allReduceMax(Tensor t) {
        throw new UnsupportedOperationException("allReduceMax");
    }

    @Override
    public void allGather(Tensor shard, Tensor full) {
        throw new UnsupportedOperationException("allGather");
    }

    @Override
    public void reduceScatter(Tensor full, Tensor shard) {
        throw new UnsupportedOperationException("reduceScatter");
    }

    @Override
    public PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
        throw new UnsupportedOperationException("allGatherAsync");
    }

    @Override
    public PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
        throw new UnsupportedOperationException("reduceScatterAsync");
    }
}
