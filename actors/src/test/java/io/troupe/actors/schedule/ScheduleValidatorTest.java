package io.troupe.actors.schedule;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class ScheduleValidatorTest {

    @Test
    void shouldAcceptEveryStaticScheduleForPUpTo8AndMUpTo32() {
        int checked = 0;
        for (int p = 1; p <= 8; p++) {
            for (int m = 1; m <= 32; m++) {
                List<Schedule> schedules = new ArrayList<>(List.of(Schedules.gpipe(p, m), Schedules.oneFOneB(p, m),
                        Schedules.zbH1(p, m), Schedules.zbH2(p, m)));
                for (int v = 2; v <= 3; v++) {
                    if (m % p == 0) {
                        schedules.add(Schedules.interleaved(p, v, m));
                    }
                }
                for (Schedule s : schedules) {
                    ValidationReport report = ScheduleValidator.validate(s);
                    assertTrue(report.valid(), s.name() + " p=" + p + " m=" + m + ": " + report.problems());
                    // and the timed simulation agrees: it runs to the end
                    SimulationResult r = new PipelineSimulator(CostModel.uniform(p, 1, 1, 1), false).run(s.asPolicy());
                    assertTrue(r.stepUs() > 0);
                    checked++;
                }
            }
        }
        System.out.println("validated schedules: " + checked);
    }

    @Test
    void shouldRejectInterleavedWhenMicrobatchesAreNotAMultipleOfStages() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Schedules.interleaved(4, 2, 6));
        assertTrue(e.getMessage().contains("microbatches=6") && e.getMessage().contains("stages=4"), e.getMessage());
    }

    @Test
    void shouldNameTheActionWhenBRunsBeforeItsF() {
        Schedule good = Schedules.oneFOneB(3, 4);
        List<List<Action>> lists = copy(good);
        // rank 2 (last): F0 BW0 F1 BW1 ... -> swap F1 and BW1
        List<Action> last = lists.get(2);
        int f1 = last.indexOf(Action.f(1));
        int bw1 = last.indexOf(Action.bw(1));
        last.set(f1, Action.bw(1));
        last.set(bw1, Action.f(1));
        ValidationReport report = ScheduleValidator.validate(new Schedule("broken", good.shape(), lists));
        System.out.println(report.problems());
        assertFalse(report.valid());
        assertTrue(report.problems().get(0).contains("rank 2: BW(mb=1, v=0)"), report.problems().toString());
    }

    @Test
    void shouldNameMissingAndDuplicatedActions() {
        Schedule good = Schedules.zbH1(2, 3);
        List<List<Action>> lists = copy(good);
        lists.get(1).remove(Action.w(2));
        lists.get(0).add(Action.f(1));
        ValidationReport report = ScheduleValidator.validate(new Schedule("broken", good.shape(), lists));
        System.out.println(report.problems());
        String all = report.problems().toString();
        assertTrue(all.contains("rank 1: missing W(mb=2, v=0)"), all);
        assertTrue(all.contains("rank 0: F(mb=1, v=0) appears twice"), all);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ScheduleValidator.validate(new Schedule("broken", good.shape(), lists)).requireValid());
        assertTrue(e.getMessage().contains("invalid schedule broken"), e.getMessage());
    }

    @Test
    void shouldReportTheDeadlockCycleWhenBackwardsAreReordered() {
        // rank 0 waits for the gradient of mb 1 first, but rank 1 does B of mb 0 first and then needs F1,
        // which rank 0 has done; make rank 1 wait for F2 before B0, which rank 0 only sends after B1.
        List<List<Action>> lists = List.of(
                List.of(Action.f(0), Action.f(1), Action.bw(1), Action.f(2), Action.bw(0), Action.bw(2)),
                List.of(Action.f(0), Action.f(1), Action.f(2), Action.bw(0), Action.bw(1), Action.bw(2)));
        Schedule deadlocked = new Schedule("deadlocked", PipelineShape.of(2, 3), lists);
        ValidationReport report = ScheduleValidator.validate(deadlocked);
        System.out.println(report.problems());
        assertEquals(1, report.problems().size());
        String msg = report.problems().get(0);
        assertTrue(msg.startsWith("deadlock (rank 0 -> rank 1 -> rank 0)"), msg);
        assertTrue(msg.contains("rank 0 waits at BW(mb=1, v=0)"), msg);
        assertTrue(msg.contains("rank 1 waits at F(mb=2, v=0)"), msg);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> new PipelineSimulator(CostModel.uniform(2, 1, 1, 1)).run(deadlocked.asPolicy()));
        System.out.println(e.getMessage());
        assertTrue(e.getMessage().contains("rank 0 waits at BW(mb=1, v=0)"), e.getMessage());
    }

    @Test
    void shouldReportPeakLiveActivationsPerStage() {
        ValidationReport oneF = ScheduleValidator.validate(Schedules.oneFOneB(4, 8));
        assertEquals(List.of(4, 3, 2, 1), toList(oneF.peakLiveActivations()));
        ValidationReport gpipe = ScheduleValidator.validate(Schedules.gpipe(4, 8));
        assertEquals(List.of(8, 8, 8, 8), toList(gpipe.peakLiveActivations()));
        ValidationReport zb = ScheduleValidator.validate(Schedules.zbH1(4, 8));
        System.out.println("zb-h1 p=4 m=8 peak live per stage: " + toList(zb.peakLiveActivations()));
        for (int n : zb.peakLiveActivations()) {
            assertTrue(n <= 4);
        }
        ValidationReport inter = ScheduleValidator.validate(Schedules.interleaved(4, 2, 8),
                CostModel.uniform(4, 1, 1, 1).withActivationBytes(1000));
        System.out.println("interleaved p=4 v=2 m=8 peak chunks per stage: " + toList(inter.peakLiveActivations())
                + " bytes " + java.util.Arrays.toString(inter.peakActivationBytes()));
        assertEquals(inter.peakLiveActivations()[0] * 500L, inter.peakActivationBytes()[0]);
    }

    private static List<Integer> toList(int[] values) {
        List<Integer> list = new ArrayList<>();
        for (int v : values) {
            list.add(v);
        }
        return list;
    }

    private static List<List<Action>> copy(Schedule s) {
        List<List<Action>> lists = new ArrayList<>();
        for (List<Action> l : s.perRank()) {
            lists.add(new ArrayList<>(l));
        }
        return lists;
    }
}
