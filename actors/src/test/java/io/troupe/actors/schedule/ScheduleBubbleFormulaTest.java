package io.troupe.actors.schedule;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The closed-form bubble fractions and activation peaks are the oracle for the simulator. */
@Timeout(30)
class ScheduleBubbleFormulaTest {
    private static final double EXACT = 1e-12;
    private static final int[][] SHAPES = {{1, 1}, {1, 5}, {2, 1}, {2, 4}, {3, 7}, {4, 4}, {4, 8}, {5, 3}, {8, 32},
            {8, 64}, {16, 64}};

    private static SimulationResult simulate(Schedule s, CostModel cost) {
        return new PipelineSimulator(cost).run(s.asPolicy());
    }

    /** F = B, W folded into B (W = 0), free links. */
    private static CostModel foldedUniform(int p) {
        return CostModel.uniform(p, 1.0, 1.0, 0.0);
    }

    @Test
    void shouldMatchGpipeBubbleFormulaWithUniformCosts() {
        for (int[] pm : SHAPES) {
            int p = pm[0];
            int m = pm[1];
            SimulationResult r = simulate(Schedules.gpipe(p, m), foldedUniform(p));
            double expected = (p - 1.0) / (m + p - 1.0);
            assertEquals(expected, r.bubbleFraction(), EXACT, "gpipe p=" + p + " m=" + m);
            assertEquals(2.0 * (m + p - 1), r.stepUs(), EXACT, "gpipe step p=" + p + " m=" + m);
        }
    }

    @Test
    void shouldMatchOneFOneBBubbleFormulaWithUniformCosts() {
        for (int[] pm : SHAPES) {
            int p = pm[0];
            int m = pm[1];
            SimulationResult r = simulate(Schedules.oneFOneB(p, m), foldedUniform(p));
            double expected = (p - 1.0) / (m + p - 1.0);
            assertEquals(expected, r.bubbleFraction(), EXACT, "1f1b p=" + p + " m=" + m);
        }
        SimulationResult r = simulate(Schedules.oneFOneB(8, 32), foldedUniform(8));
        System.out.printf("1f1b p=8 m=32 bubble=%.4f (published 17.9%%)%n", r.bubbleFraction());
        assertEquals(0.179, r.bubbleFraction(), 0.001);
    }

    @Test
    void shouldMatchInterleavedBubbleFormulaWithUniformCosts() {
        int[][] shapes = {{2, 2, 2}, {2, 2, 4}, {4, 2, 4}, {4, 2, 8}, {4, 3, 8}, {4, 4, 16}, {8, 2, 32}, {8, 4, 64},
                {16, 2, 64}, {3, 2, 9}};
        for (int[] pvm : shapes) {
            int p = pvm[0];
            int v = pvm[1];
            int m = pvm[2];
            SimulationResult r = simulate(Schedules.interleaved(p, v, m), foldedUniform(p));
            // bubble time (p-1)(F+B)/v against m(F+B) of work per rank
            double expected = ((p - 1.0) / v) / (m + (p - 1.0) / v);
            System.out.printf("interleaved p=%d v=%d m=%d bubble=%.6f formula=%.6f%n", p, v, m, r.bubbleFraction(),
                    expected);
            assertEquals(expected, r.bubbleFraction(), 1e-9, "interleaved p=" + p + " v=" + v + " m=" + m);
        }
    }

    @Test
    void shouldHoldPLiveActivationsOnStageZeroFor1f1bAndMForGpipe() {
        for (int[] pm : SHAPES) {
            int p = pm[0];
            int m = pm[1];
            SimulationResult oneF = simulate(Schedules.oneFOneB(p, m), foldedUniform(p));
            SimulationResult gpipe = simulate(Schedules.gpipe(p, m), foldedUniform(p));
            assertEquals(Math.min(p, m), oneF.peakLiveActivations()[0], "1f1b stage 0 p=" + p + " m=" + m);
            assertEquals(m, gpipe.peakLiveActivations()[0], "gpipe stage 0 p=" + p + " m=" + m);
            for (int r = 0; r < p; r++) {
                assertEquals(Math.min(p - r, m), oneF.peakLiveActivations()[r], "1f1b stage " + r);
            }
            assertEquals(ScheduleValidator.validate(Schedules.oneFOneB(p, m)).peakLiveActivations()[0],
                    oneF.peakLiveActivations()[0]);
            assertEquals((long) m << 20, gpipe.peakActivationBytes()[0]);
        }
    }

    @Test
    void shouldKeepBusyPlusIdleEqualToStepOnEveryStage() {
        CostModel cost = CostModel.uniform(4, 1.0, 2.0, 1.0).withJitter(0.2, 7).withStraggler(2, 1.5)
                .withLink(0.3, 1000.0);
        for (Schedule s : new Schedule[] {Schedules.gpipe(4, 8), Schedules.oneFOneB(4, 8),
                Schedules.interleaved(4, 2, 8), Schedules.zbH1(4, 8)}) {
            SimulationResult r = simulate(s, cost);
            for (int rank = 0; rank < 4; rank++) {
                assertEquals(r.stepUs(), r.busyUs()[rank] + r.idleUs(rank), 1e-9, s.name() + " rank " + rank);
            }
        }
    }
}
