package io.troupe.actors.cluster;

import io.troupe.models.parallel.Layout;

/**
 * Chooses the layout of a job's next epoch from the workers at hand: the requested layout when
 * enough workers are there; otherwise fewer data-parallel replicas with the same global batch (each
 * replica runs more micro-batches of the same size, so every step sums the same samples); pipeline
 * and tensor parallelism never shrink, since the model's split across devices is what makes it fit.
 */
public final class LayoutPlanner {
    private LayoutPlanner() {
    }

    /** A chosen layout: {@code dp x pp x tp} and the micro-batches each replica runs. */
    public record Plan(int dp, int pp, int tp, int microbatches) {
        public String layout() {
            return dp + "x" + pp + "x" + tp;
        }

        public int worldSize() {
            return dp * pp * tp;
        }
    }

    /**
     * @param requested    the layout the job asked for ({@code DPxPP[xTP]})
     * @param microbatches the micro-batches per replica it asked for
     * @param workers      workers available now
     * @throws IllegalStateException naming the numbers when not even one replica fits
     */
    public static Plan plan(String requested, int virtualStages, int microbatches, int workers) {
        Layout l = Layout.parse(requested, virtualStages);
        int perReplica = l.pp() * l.tp();
        if (workers >= l.worldSize()) {
            return new Plan(l.dp(), l.pp(), l.tp(), microbatches);
        }
        // The global batch is dp x microbatches micro-batches: a smaller dp must divide it.
        long microbatchesTotal = (long) l.dp() * microbatches;
        for (int dp = Math.min(l.dp() - 1, workers / perReplica); dp >= 1; dp--) {
            if (microbatchesTotal % dp == 0) {
                return new Plan(dp, l.pp(), l.tp(), (int) (microbatchesTotal / dp));
            }
        }
        throw new IllegalStateException("layout " + requested + " needs at least " + perReplica
            + " workers for one replica (pp=" + l.pp() + " x tp=" + l.tp() + ", never shrunk), only " + workers
            + " available");
    }
}
