package io.troupe.actors.schedule;

import io.troupe.actors.trace.Timeline;
import java.util.List;

/**
 * What one simulated step did. Every rank's span is the whole step, from 0 to {@link #stepUs()}
 * (the end of the last action on any rank), so per rank {@code busy + idle = step}.
 *
 * @param policyName         the schedule or policy that ran
 * @param shape              ranks, virtual stages, micro-batches
 * @param stepUs             step time in microseconds
 * @param busyUs             per rank, time spent computing
 * @param idleUs             per rank, idle time by {@link IdleCause} ordinal
 * @param peakActivationBytes per rank, the most activation bytes live at once (F start to W end)
 * @param peakLiveActivations per rank, the most (micro-batch, virtual stage) activations live at once
 * @param executed           per rank, the actions in the order they ran
 * @param timeline           one track per rank (F/B/W/BW and idle intervals), plus send tracks when
 *                           links cost time
 */
public record SimulationResult(String policyName, PipelineShape shape, double stepUs, double[] busyUs,
                               double[][] idleUs, long[] peakActivationBytes, int[] peakLiveActivations,
                               List<List<Action>> executed, Timeline timeline) {

    /** Idle time of {@code rank}, all causes. */
    public double idleUs(int rank) {
        double sum = 0.0;
        for (double us : idleUs[rank]) {
            sum += us;
        }
        return sum;
    }

    /** Idle time of {@code rank} for one cause. */
    public double idleUs(int rank, IdleCause cause) {
        return idleUs[rank][cause.ordinal()];
    }

    /** Idle time summed over ranks for one cause. */
    public double totalIdleUs(IdleCause cause) {
        double sum = 0.0;
        for (double[] perCause : idleUs) {
            sum += perCause[cause.ordinal()];
        }
        return sum;
    }

    /** Bubble fraction of one rank: idle / (busy + idle). */
    public double bubbleFraction(int rank) {
        double idle = idleUs(rank);
        double span = busyUs[rank] + idle;
        return span == 0.0 ? 0.0 : idle / span;
    }

    /** Bubble fraction over all ranks: summed idle / summed (busy + idle). */
    public double bubbleFraction() {
        double idle = 0.0;
        double busy = 0.0;
        for (int r = 0; r < busyUs.length; r++) {
            idle += idleUs(r);
            busy += busyUs[r];
        }
        return idle + busy == 0.0 ? 0.0 : idle / (idle + busy);
    }

    /** The highest per-rank activation peak, in bytes. */
    public long maxPeakActivationBytes() {
        long max = 0;
        for (long b : peakActivationBytes) {
            max = Math.max(max, b);
        }
        return max;
    }

    /** The highest per-rank peak of live (micro-batch, virtual stage) activations. */
    public int maxPeakLiveActivations() {
        int max = 0;
        for (int n : peakLiveActivations) {
            max = Math.max(max, n);
        }
        return max;
    }

    /** The actions as a static schedule, in the order each rank ran them. */
    public Schedule asSchedule(String name) {
        return new Schedule(name, shape, executed);
    }
}
