package io.troupe.actors.schedule;

import java.io.PrintStream;
import java.util.List;
import java.util.Locale;

/**
 * Prints the markdown table of {@code docs/schedules.md}: bubble fraction, step time and peak
 * activation memory for every schedule at (p, m) = (4, 8), (8, 32), (8, 64), (16, 64), (64, 512),
 * with uniform costs (F = B = W = 1) and with 20% jitter (mean over seeds 1..5). Peak memory is the
 * worst stage's peak of live activations in micro-batches (one micro-batch = all chunks of a rank).
 *
 * <p>Run: {@code java -cp actors/target/classes io.troupe.actors.schedule.ScheduleTable}
 */
public final class ScheduleTable {
    private static final int[][] SHAPES = {{4, 8}, {8, 32}, {8, 64}, {16, 64}, {64, 512}};
    private static final List<String> SCHEDULES = List.of("gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "adaptive",
            "adaptive-2p");
    private static final int SEEDS = 5;
    private static final double JITTER = 0.2;

    private ScheduleTable() {
    }

    public static void main(String[] args) {
        print(System.out);
    }

    static void print(PrintStream out) {
        out.println("| p | m | schedule | bubble (uniform) | step (uniform) | bubble (20% jitter) | step (20% jitter) "
                + "| peak activations (micro-batches, worst stage) |");
        out.println("|---:|---:|---|---:|---:|---:|---:|---:|");
        for (int[] pm : SHAPES) {
            int p = pm[0];
            int m = pm[1];
            for (String name : SCHEDULES) {
                CostModel uniform = CostModel.uniform(p, 1, 1, 1);
                SimulationResult u = simulate(name, p, m, uniform);
                double jitterBubble = 0;
                double jitterStep = 0;
                for (int seed = 1; seed <= SEEDS; seed++) {
                    SimulationResult j = simulate(name, p, m, uniform.withJitter(JITTER, seed));
                    jitterBubble += j.bubbleFraction() / SEEDS;
                    jitterStep += j.stepUs() / SEEDS;
                }
                double peak = (double) u.maxPeakActivationBytes() / uniform.activationBytes(0);
                out.printf(Locale.ROOT, "| %d | %d | %s | %.4f | %.1f | %.4f | %.1f | %s |%n", p, m,
                        label(name), u.bubbleFraction(), u.stepUs(),
                        jitterBubble, jitterStep, peak == Math.rint(peak) ? Long.toString((long) peak)
                                : String.format(Locale.ROOT, "%.1f", peak));
            }
        }
    }

    private static String label(String name) {
        return switch (name) {
            case "interleaved" -> "interleaved v=2";
            case "adaptive" -> "adaptive (budget p)";
            case "adaptive-2p" -> "adaptive (budget 2p)";
            default -> name;
        };
    }

    private static SimulationResult simulate(String name, int p, int m, CostModel cost) {
        SchedulePolicy policy = switch (name) {
            case "adaptive" -> AdaptivePolicy.forCosts(PipelineShape.of(p, m), cost, p * cost.activationBytes(0));
            case "adaptive-2p" -> AdaptivePolicy.forCosts(PipelineShape.of(p, m), cost, 2L * p
                * cost.activationBytes(0));
            default -> Schedules.byName(name, p, 2, m).asPolicy();
        };
        return new PipelineSimulator(cost, false).run(policy);
    }
}
