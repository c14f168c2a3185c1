package io.troupe.actors.schedule;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class PipelineSimulatorTest {
    private static final double EPS = 1e-9;

    @Test
    void shouldChargeLinkLatencyAndBandwidthAsCommunicationIdle() {
        // p=2, m=1, F=B=W=1 (BW=2), latency 0.25 us, 1000 bytes over 1000 bytes/us: transit T = 1.25
        double transit = 1.25;
        CostModel cost = CostModel.uniform(2, 1, 1, 1).withLink(0.25, 1000.0).withActivationBytes(1000);
        SimulationResult r = new PipelineSimulator(cost).run(Schedules.gpipe(2, 1).asPolicy());
        // stage 0: F [0,1]; stage 1: F [1+T, 2+T], BW [2+T, 4+T]; stage 0: BW [4+2T, 6+2T]
        assertEquals(6 + 2 * transit, r.stepUs(), EPS);
        assertEquals(1.0, r.idleUs(1, IdleCause.INPUT), EPS);
        assertEquals(transit, r.idleUs(1, IdleCause.COMMUNICATION), EPS);
        assertEquals(2 + transit, r.idleUs(1, IdleCause.DRAINED), EPS);
        assertEquals(3 + transit, r.idleUs(0, IdleCause.INPUT), EPS);
        assertEquals(transit, r.idleUs(0, IdleCause.COMMUNICATION), EPS);
        assertEquals(0.0, r.idleUs(0, IdleCause.DRAINED), EPS);
        assertEquals(2, r.timeline().tracks().size() / 2, "compute and send tracks");
    }

    @Test
    void shouldSendNothingOverTheWireWithinOneRank() {
        // p=1 with 3 chunks: every hop stays on rank 0, so links cost nothing
        CostModel cost = CostModel.uniform(1, 1, 1, 1).withLink(5.0, 1.0);
        SimulationResult r = new PipelineSimulator(cost).run(Schedules.interleaved(1, 3, 2).asPolicy());
        assertEquals(2 * 3.0, r.stepUs(), EPS);
        assertEquals(0.0, r.idleUs(0), EPS);
    }

    @Test
    void shouldGiveTheSameCostToTheSameActionWhateverTheSchedule() {
        CostModel cost = CostModel.uniform(4, 1, 2, 1).withJitter(0.2, 42).withStraggler(1, 1.5);
        double gpipe = busy(new PipelineSimulator(cost).run(Schedules.gpipe(4, 8).asPolicy()));
        double zb = busy(new PipelineSimulator(cost).run(Schedules.zbH1(4, 8).asPolicy()));
        double adaptive = busy(new PipelineSimulator(cost).run(
                AdaptivePolicy.forCosts(PipelineShape.of(4, 8), cost, 4L << 20)));
        System.out.printf("total busy: gpipe=%.6f zb-h1=%.6f adaptive=%.6f%n", gpipe, zb, adaptive);
        assertEquals(gpipe, zb, 1e-9);
        assertEquals(gpipe, adaptive, 1e-9);
        double jittered = cost.durationUs(0, Action.f(3), 1);
        assertTrue(jittered >= 0.8 && jittered <= 1.2 && jittered != 1.0, "jitter=" + jittered);
        assertEquals(jittered, cost.durationUs(0, Action.f(3), 1), 0.0, "reproducible");
    }

    @Test
    void shouldAgreeWithTheValidatorOnRandomOrdersWhetherTheyDeadlock() {
        Random random = new Random(20261128L);
        int deadlocked = 0;
        int trials = 400;
        for (int t = 0; t < trials; t++) {
            int p = 1 + random.nextInt(4);
            int m = 1 + random.nextInt(5);
            Schedule s = randomLocallyOrdered(p, m, random);
            ValidationReport report = ScheduleValidator.validate(s);
            boolean simulated;
            try {
                new PipelineSimulator(CostModel.uniform(p, 1, 1, 1).withJitter(0.3, t), false).run(s.asPolicy());
                simulated = true;
            } catch (IllegalStateException e) {
                assertTrue(e.getMessage().startsWith("deadlock"), e.getMessage());
                simulated = false;
            }
            assertEquals(report.valid(), simulated, s + " " + report.problems());
            if (!simulated) {
                deadlocked++;
                assertTrue(report.problems().get(0).startsWith("deadlock ("), report.problems().toString());
            }
        }
        System.out.println("random orders: " + trials + ", deadlocked: " + deadlocked);
        assertTrue(deadlocked > 20 && deadlocked < trials - 20, "both outcomes exercised: " + deadlocked);
    }

    /** Per rank a random interleaving of F(mb) before B(mb) before W(mb), micro-batches in any order. */
    private static Schedule randomLocallyOrdered(int p, int m, Random random) {
        List<List<Action>> perRank = new ArrayList<>();
        for (int r = 0; r < p; r++) {
            int[] next = new int[m];
            List<Action> order = new ArrayList<>();
            while (order.size() < 3 * m) {
                int mb = random.nextInt(m);
                if (next[mb] < 3) {
                    order.add(new Action(ActionType.values()[next[mb]], mb, 0));
                    next[mb]++;
                }
            }
            perRank.add(order);
        }
        return new Schedule("random", PipelineShape.of(p, m), perRank);
    }

    @Test
    void shouldRejectACostModelForAnotherNumberOfStages() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new PipelineSimulator(CostModel.uniform(3, 1, 1, 1)).run(Schedules.oneFOneB(4, 8).asPolicy()));
        assertTrue(e.getMessage().contains("costStages=3, stages=4"), e.getMessage());
    }

    private static double busy(SimulationResult r) {
        double sum = 0;
        for (double b : r.busyUs()) {
            sum += b;
        }
        return sum;
    }
}
