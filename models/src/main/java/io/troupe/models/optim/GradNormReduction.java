package io.troupe.models.optim;

/**
 * How the participants of a step (pipeline stages, data-parallel replicas, later tensor or
 * optimizer shards) turn their local sums of squared gradients into the job-wide sum that the
 * global gradient norm is the square root of.
 *
 * <p>Contract: {@link #sum} is called once per step by every participant, with its own local sum
 * (0 when its gradients are counted by another participant, e.g. a second replica holding
 * identical gradients). It returns the same value on every participant, added in a fixed order, so
 * every participant clips by the same factor and the result is bitwise repeatable. It may block on
 * communication (the cluster's reduction waits for every rank's contribution on the data plane).
 */
@FunctionalInterface
public interface GradNormReduction {

    /** One participant holds every gradient (one device, or one process adding its stages itself). */
    GradNormReduction LOCAL = localSumOfSquares -> localSumOfSquares;

    /**
     * @param localSumOfSquares this participant's sum of squared gradient elements
     * @return the sum over every participant, identical on each
     */
    double sum(double localSumOfSquares);
}
