package io.troupe.actors.cluster;

import io.troupe.collectives.bucket.GradientBucketer;
import java.util.Arrays;
import java.util.function.IntConsumer;

/**
 * The final-gradient hook ({@link io.troupe.actors.engine.StageWorker#onGradientsFinal}) of a model chunk whose
 * gradients live on a GPU: its {@link GradientBucketer} reduces a host copy of them ({@link HostMirror}), so a
 * parameter made final must reach the copy before its bucket is launched. It counts each bucket's parameters as the
 * step's last weight-gradient pass reports them final; once a bucket's last one is, it downloads the bucket's range of
 * the gradients into the same range of the host copy and marks the bucket's parameters ready, which launches the
 * bucket's reduce (in bucket order) while the rest of backward goes on. One copy per bucket, not per parameter: each
 * copy waits for the device's queued work, and the bucket cannot be launched before its last parameter anyway.
 *
 * <p>A parameter reported final is never written again in the step ({@link io.troupe.models.StageModule}'s
 * contract; the hook runs in the step's last pass only, after every micro-batch's), so the downloaded range is the
 * step's gradient. Replicated parameters whose gradients are partial over the tp group are summed over it after the
 * data-parallel sum is uploaded, which commutes.
 *
 * <p>Threading: the worker's device thread (where the stage runs its weight-gradient passes and issues every device
 * call), as {@link #rearm}. The collective agent's thread reads and writes the host ranges of launched buckets only,
 * which this hook does not write again before the bucketer's {@code finish}. Steady state allocates nothing.
 */
final class FinalGradientDownloads implements IntConsumer {
    private final GradientBucketer bucketer;
    /** Per bucket: its range of the gradients and of their host copy. */
    private final HostMirror[] bucketRanges;
    /** Per bucket: its parameters are {@code firstParam[b] .. firstParam[b] + params[b] - 1} (buckets are flat). */
    private final int[] firstParam;
    private final int[] params;
    /** Per bucket: its parameters reported final so far this step. */
    private final int[] finals;
    private final boolean[] reported;

    /**
     * The hook of a chunk of {@code paramCount} parameters whose gradients {@code gradients} mirrors, reduced by
     * {@code bucketer} (one range per parameter).
     */
    FinalGradientDownloads(HostMirror gradients, GradientBucketer bucketer, int paramCount) {
        this.bucketer = bucketer;
        int nb = bucketer.bucketCount();
        this.bucketRanges = new HostMirror[nb];
        this.firstParam = new int[nb];
        this.params = new int[nb];
        this.finals = new int[nb];
        this.reported = new boolean[paramCount];
        Arrays.fill(firstParam, Integer.MAX_VALUE);
        for (int i = 0; i < paramCount; i++) {
            int b = bucketer.bucketOf(i);
            firstParam[b] = Math.min(firstParam[b], i);
            params[b]++;
        }
        for (int b = 0; b < nb; b++) {
            bucketRanges[b] = gradients.range(bucketer.bucketStartElements(b),
                Math.toIntExact(bucketer.bucketNumel(b)));
        }
    }

    /**
     * Parameter {@code paramIndex}'s gradient is final for the step: once its bucket's parameters all are, the bucket
     * is downloaded and launched.
     *
     * @throws IllegalStateException when the parameter was reported final before in this step (its gradient may have
     *                               changed since the download)
     */
    @Override
    public void accept(int paramIndex) {
        if (reported[paramIndex]) {
            throw new IllegalStateException("parameter " + paramIndex + " reported final twice in one step: bucketer "
                + bucketer);
        }
        reported[paramIndex] = true;
        int b = bucketer.bucketOf(paramIndex);
        if (++finals[b] < params[b]) {
            return;
        }
        bucketRanges[b].download();
        for (int i = firstParam[b], end = firstParam[b] + params[b]; i < end; i++) {
            bucketer.markReady(i);
        }
    }

    /** The step is over (its buckets finished): the next step's parameters count afresh. */
    void rearm() {
        Arrays.fill(finals, 0);
        Arrays.fill(reported, false);
    }
}
