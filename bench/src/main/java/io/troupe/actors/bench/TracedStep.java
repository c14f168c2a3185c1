package io.troupe.actors.bench;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.engine.StageWorker;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.actors.trace.TimelineTrack;
import io.troupe.bench.Median;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * What one traced pipeline step says about the runtime, read from its per-rank timelines (one
 * track per rank, ranks in stage order for a dp 1 layout):
 * <ul>
 *   <li>{@link #forwardUs()} / {@link #backwardUs()}: each stage's median F and median B+W (a W
 *       folded into its micro-batch's B) as they ran in the job, contention included, sends
 *       excluded: the costs to simulate (medians, so one action slowed by a preemption does not
 *       set a stage's cost);</li>
 *   <li>{@link #overheadUs()}: the control overhead per scheduled action, the device thread's time
 *       between its first and last compute action that is neither compute nor waiting for an
 *       input (scheduling, bookkeeping, and the sends, which count as overhead here), over the
 *       number of actions, averaged over ranks;</li>
 *   <li>{@link #pickupUs()}: the median delay from an input's arrival to the start of the action
 *       that waited for it, when the rank was idle for it (wake-up latency).</li>
 * </ul>
 */
public record TracedStep(double[] forwardUs, double[] backwardUs, double overheadUs, double pickupUs) {

    public static TracedStep of(JobEvent.StepTrace trace) {
        List<TimelineTrack> tracks = trace.timeline().tracks();
        int n = tracks.size();
        double[] f = new double[n];
        double[] b = new double[n];
        double overheadSum = 0;
        List<Double> pickups = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            List<TimelineInterval> all = new ArrayList<>(tracks.get(r).intervals());
            all.sort(Comparator.comparingDouble(TimelineInterval::startUs));
            List<Double> fs = new ArrayList<>();
            java.util.Map<String, Double> bw = new java.util.LinkedHashMap<>();
            double first = Double.NaN;
            double last = Double.NaN;
            double compute = 0;
            double idle = 0;
            int actions = 0;
            for (TimelineInterval i : all) {
                String c = i.category();
                if (!StageWorker.isCompute(c) || c.equals("optimizer")) {
                    continue;
                }
                double d = i.durationUs() - sendInside(all, i);
                if (c.equals("F")) {
                    fs.add(d);
                } else {
                    // B, W or BW of one micro-batch (label) of one virtual stage
                    bw.merge(i.label() + "/" + i.args().getOrDefault("virtual_stage", "0"), d, Double::sum);
                }
                if (Double.isNaN(first)) {
                    first = i.startUs();
                }
                last = Math.max(Double.isNaN(last) ? i.endUs() : last, i.endUs());
                compute += d;
                actions++;
            }
            if (actions == 0) {
                throw new IllegalArgumentException("traced step: rank " + r + " ran no compute action");
            }
            for (TimelineInterval i : all) {
                if (i.category().equals("idle") && i.startUs() >= first && i.endUs() <= last) {
                    idle += i.durationUs();
                }
            }
            f[r] = medianOrZero(fs);
            b[r] = medianOrZero(new ArrayList<>(bw.values()));
            double outside = (last - first) - compute - idle;
            overheadSum += Math.max(0, outside) / actions;
            pickups.addAll(pickupDelays(all));
        }
        return new TracedStep(f, b, overheadSum / n, medianOrZero(pickups));
    }

    /** Time spent in sends that lie inside {@code action} (a forward or backward sends its output from inside it). */
    private static double sendInside(List<TimelineInterval> all, TimelineInterval action) {
        double s = 0;
        for (TimelineInterval i : all) {
            if (i.category().equals("send") && i.startUs() >= action.startUs() && i.endUs() <= action.endUs()) {
                s += i.durationUs();
            }
        }
        return s;
    }

    /** For each idle gap that ended when an input arrived: the gap's end minus the last arrival inside it. */
    private static List<Double> pickupDelays(List<TimelineInterval> all) {
        List<Double> out = new ArrayList<>();
        for (TimelineInterval idle : all) {
            if (!idle.category().equals("idle")) {
                continue;
            }
            double arrived = Double.NaN;
            for (TimelineInterval i : all) {
                if (i.category().equals("recv") && i.startUs() >= idle.startUs() && i.startUs() <= idle.endUs()) {
                    arrived = Double.isNaN(arrived) ? i.startUs() : Math.max(arrived, i.startUs());
                }
            }
            if (!Double.isNaN(arrived)) {
                out.add(idle.endUs() - arrived);
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return "TracedStep[F=" + Arrays.toString(forwardUs) + ", B+W=" + Arrays.toString(backwardUs) + ", overheadUs="
            + overheadUs + ", pickupUs=" + pickupUs + "]";
    }

    private static double medianOrZero(List<Double> values) {
        return values.isEmpty() ? 0 : Median.of(values);
    }
}
