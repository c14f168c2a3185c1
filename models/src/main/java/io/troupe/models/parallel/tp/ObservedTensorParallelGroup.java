package io.troupe.models.parallel.tp;

import io.troupe.runtime.tensor.Tensor;

/**
 * A tensor-parallel group that passes every collective to the group it wraps and tells a subclass
 * about each one: {@link #completed} after a blocking collective returns, {@link #started} when an
 * async one has been started (the subclass may wrap its handle to see the await). Tracing, timing
 * and counting wrappers extend it and override only these two hooks.
 * Threading: the member's thread, like the group it wraps.
 */
public abstract class ObservedTensorParallelGroup implements TensorParallelGroup {

    /** The collectives, with the name a trace shows for each. */
    public enum Collective {
        ALL_REDUCE_SUM("tp all-reduce"),
        ALL_REDUCE_MAX("tp all-reduce max"),
        ALL_GATHER("tp all-gather"),
        REDUCE_SCATTER("tp reduce-scatter");

        private final String traceName;

        Collective(String traceName) {
            this.traceName = traceName;
        }

        /** {@code tp all-reduce}, {@code tp all-gather}, ... */
        public String traceName() {
            return traceName;
        }
    }

    private final TensorParallelGroup inner;

    protected ObservedTensorParallelGroup(TensorParallelGroup inner) {
        this.inner = inner;
    }

    /**
     * A blocking collective over {@code elements} floats (the full tensor for gathers and scatters)
     * that began at {@code startNs} ({@link System#nanoTime()}) has returned. Does nothing unless
     * overridden.
     */
    protected void completed(Collective c, long elements, long startNs) {
    }

    /**
     * An async collective that began at {@code startNs} has been started as {@code pending}; returns
     * the handle the layer gets ({@code pending} itself unless overridden).
     */
    protected PendingTensorParallelCollective started(Collective c, long elements, long startNs,
                                                      PendingTensorParallelCollective pending) {
        return pending;
    }

    @Override
    public final int size() {
        return inner.size();
    }

    @Override
    public final int index() {
        return inner.index();
    }

    @Override
    public final void allReduceSum(Tensor t) {
        long t0 = System.nanoTime();
        inner.allReduceSum(t);
        completed(Collective.ALL_REDUCE_SUM, t.numel(), t0);
    }

    @Override
    public final void allReduceMax(Tensor t) {
        long t0 = System.nanoTime();
        inner.allReduceMax(t);
        completed(Collective.ALL_REDUCE_MAX, t.numel(), t0);
    }

    @Override
    public final void allGather(Tensor shard, Tensor full) {
        long t0 = System.nanoTime();
        inner.allGather(shard, full);
        completed(Collective.ALL_GATHER, full.numel(), t0);
    }

    @Override
    public final void reduceScatter(Tensor full, Tensor shard) {
        long t0 = System.nanoTime();
        inner.reduceScatter(full, shard);
        completed(Collective.REDUCE_SCATTER, full.numel(), t0);
    }

    @Override
    public final PendingTensorParallelCollective allReduceSumAsync(Tensor t) {
        long t0 = System.nanoTime();
        return started(Collective.ALL_REDUCE_SUM, t.numel(), t0, inner.allReduceSumAsync(t));
    }

    @Override
    public final PendingTensorParallelCollective allGatherAsync(Tensor shard, Tensor full) {
        long t0 = System.nanoTime();
        return started(Collective.ALL_GATHER, full.numel(), t0, inner.allGatherAsync(shard, full));
    }

    @Override
    public final PendingTensorParallelCollective reduceScatterAsync(Tensor full, Tensor shard) {
        long t0 = System.nanoTime();
        return started(Collective.REDUCE_SCATTER, full.numel(), t0, inner.reduceScatterAsync(full, shard));
    }
}
