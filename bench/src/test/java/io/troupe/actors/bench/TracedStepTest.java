package io.troupe.actors.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.WorkerTrace;
import io.troupe.actors.trace.TimelineInterval;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TracedStepTest {

    private static TimelineInterval at(String name, String category, double start, double end) {
        String mb = name.matches("[FBW]+\\d+") ? name.replaceAll("\\D", "") : "";
        return new TimelineInterval(name, category, start, end, mb, Map.of());
    }

    @Test
    void costsOverheadAndPickupComeFromTheTimelines() {
        // stage 0: F0 [0,100] with a 10 us send inside, 5 us gap, F1 [105,205], idle [205,300] for an
        // input that arrived at 290, BW0 [300,500], 20 us gap, BW1 [520,700]
        WorkerTrace r0 = WorkerTrace.of(List.of(
            at("F0", "F", 0, 100), at("send act(mb=0)", "send", 90, 100),
            at("F1", "F", 105, 205),
            at("idle", "idle", 205, 300), at("recv grad(mb=0)", "recv", 290, 290),
            at("BW0", "BW", 300, 500), at("BW1", "BW", 520, 700),
            at("optimizer", "optimizer", 700, 800)));
        // stage 1: idle before its first action does not count; F0 [50,150], B0 [150,250], W0 [250,300],
        // F1 [300,400], BW1 [400,600], F2 [600,1000] (one slow forward: the median ignores it)
        WorkerTrace r1 = WorkerTrace.of(List.of(
            at("idle", "idle", 0, 50), at("recv act(mb=0)", "recv", 40, 40),
            at("F0", "F", 50, 150), at("B0", "B", 150, 250), at("W0", "W", 250, 300),
            at("F1", "F", 300, 400), at("BW1", "BW", 400, 600), at("F2", "F", 600, 1000)));
        JobEvent.StepTrace st = new JobEvent.StepTrace(9, "t", new String[] {"0", "1"}, new WorkerTrace[] {r0, r1});

        TracedStep t = TracedStep.of(st);

        assertArrayEquals(new double[] {95, 100}, t.forwardUs(), 1e-9, "median F, sends excluded");
        assertArrayEquals(new double[] {190, 175}, t.backwardUs(), 1e-9, "median B+W per micro-batch, B and W added");
        // rank 0: span 700, compute 90+100+200+180 = 570, idle 95 -> 35 us over 4 actions; rank 1: 0
        assertEquals((35.0 / 4 + 0) / 2, t.overheadUs(), 1e-9);
        // pick-ups: 300-290 = 10 (rank 0), 50-40 = 10 (rank 1)
        assertEquals(10, t.pickupUs(), 1e-9);
    }

    @Test
    void aRankWithoutComputeIsRefused() {
        WorkerTrace empty = WorkerTrace.of(List.of(at("idle", "idle", 0, 10)));
        JobEvent.StepTrace st = new JobEvent.StepTrace(0, "t", new String[] {"0"}, new WorkerTrace[] {empty});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TracedStep.of(st));
        assertEquals("traced step: rank 0 ran no compute action", e.getMessage());
    }
}
