package io.troupe.actors.schedule;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** ZB-H1 against the Zero Bubble paper's claims: a third of 1F1B's bubble at 1F1B's peak memory. */
@Timeout(60)
class ZeroBubbleScheduleTest {

    @Test
    void shouldCutOneFOneBBubbleToAThirdWithEqualFBW() {
        for (int p = 1; p <= 8; p++) {
            for (int m = 1; m <= 32; m++) {
                CostModel cost = CostModel.uniform(p, 1.0, 1.0, 1.0);
                SimulationResult zb = new PipelineSimulator(cost).run(Schedules.zbH1(p, m).asPolicy());
                SimulationResult oneF = new PipelineSimulator(cost).run(Schedules.oneFOneB(p, m).asPolicy());
                assertTrue(zb.bubbleFraction() <= oneF.bubbleFraction() + 1e-12, "zb-h1 vs 1f1b p=" + p + " m=" + m);
                if (m >= p) {
                    // the paper's regime: the steady state fills, and W covers the whole cool-down
                    double bound = (p - 1.0) / (3.0 * m + p - 1.0);
                    assertTrue(zb.bubbleFraction() <= bound + 1e-12,
                            "zb-h1 p=" + p + " m=" + m + " bubble=" + zb.bubbleFraction() + " bound=" + bound);
                    for (int r = 0; r < p; r++) {
                        // idle per stage at most a third of 1F1B's (p-1)(F+B+W)
                        assertTrue(zb.idleUs(r) <= (p - 1.0) + 1e-12, "zb-h1 idle p=" + p + " m=" + m + " rank " + r);
                    }
                }
                assertTrue(zb.maxPeakLiveActivations() <= oneF.maxPeakLiveActivations(),
                        "zb-h1 peak p=" + p + " m=" + m + ": " + zb.maxPeakLiveActivations() + " > "
                                + oneF.maxPeakLiveActivations());
                assertTrue(zb.maxPeakActivationBytes() <= oneF.maxPeakActivationBytes());
            }
        }
        SimulationResult zb = new PipelineSimulator(CostModel.uniform(8, 1, 1, 1)).run(Schedules.zbH1(8,
            32).asPolicy());
        SimulationResult oneF = new PipelineSimulator(CostModel.uniform(8, 1, 1, 1))
                .run(Schedules.oneFOneB(8, 32).asPolicy());
        System.out.printf("p=8 m=32 F=B=W: zb-h1 bubble=%.4f (bound %.4f), 1f1b bubble=%.4f, idle ratio=%.3f%n",
                zb.bubbleFraction(), 7.0 / 103.0, oneF.bubbleFraction(), zb.idleUs(0) / oneF.idleUs(0));
        assertEquals(7.0 / 103.0, zb.bubbleFraction(), 1e-12);
    }

    @Test
    void shouldHalveTheBubbleAgainWithZbH2AtTwiceTheMemoryWhenBIsSlowerThanF() {
        for (int p = 2; p <= 8; p++) {
            for (int m = p; m <= 32; m += 3) {
                for (double[] fbw : new double[][] {{1, 1, 1}, {1, 2, 1}, {1, 1, 0.5}}) {
                    CostModel cost = CostModel.uniform(p, fbw[0], fbw[1], fbw[2]);
                    SimulationResult h1 = new PipelineSimulator(cost, false).run(Schedules.zbH1(p, m).asPolicy());
                    SimulationResult h2 = new PipelineSimulator(cost, false).run(Schedules.zbH2(p, m).asPolicy());
                    String at = "p=" + p + " m=" + m + " cost=" + java.util.Arrays.toString(fbw);
                    assertTrue(h2.stepUs() <= h1.stepUs() + 1e-9, at + " h2=" + h2.stepUs() + " h1=" + h1.stepUs());
                    assertTrue(h2.maxPeakLiveActivations() <= 2 * p, at + " peak=" + h2.maxPeakLiveActivations());
                }
            }
        }
        CostModel cost = CostModel.uniform(8, 1, 2, 1);
        SimulationResult h1 = new PipelineSimulator(cost, false).run(Schedules.zbH1(8, 32).asPolicy());
        SimulationResult h2 = new PipelineSimulator(cost, false).run(Schedules.zbH2(8, 32).asPolicy());
        System.out.printf("p=8 m=32 F=1 B=2 W=1: zb-h1 bubble=%.4f peak=%d, zb-h2 bubble=%.4f peak=%d%n",
                h1.bubbleFraction(), h1.maxPeakLiveActivations(), h2.bubbleFraction(), h2.maxPeakLiveActivations());
        assertTrue(h2.bubbleFraction() < 0.6 * h1.bubbleFraction());
    }

    @Test
    void shouldProduceAValidStaticScheduleThatSplitsBAndW() {
        Schedule zb = Schedules.zbH1(4, 8);
        System.out.print(zb);
        ScheduleValidator.validate(zb).requireValid();
        assertEquals(3 * 8, zb.actions(0).size());
        assertTrue(zb.actions(3).contains(Action.w(7)));
    }
}
