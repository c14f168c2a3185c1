package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Which faults count against {@code max-restarts} ({@link RestartBudget}), and how the window is configured. */
class RestartBudgetTest {
    private static final long HOUR = 3_600_000L;
    private static final long NOW = 1_800_000_000_000L;
    private static final Duration WINDOW = Duration.ofHours(1);

    private static JobRecord.Fault fault(long agoMs, long step) {
        return new JobRecord.Fault(1, NOW - agoMs, step, "f");
    }

    @Test
    void shouldCountEveryFaultWithTheWindowOff() {
        List<JobRecord.Fault> faults = List.of(fault(30 * HOUR, 10), fault(20 * HOUR, 40), fault(0, 90));
        assertEquals(3, RestartBudget.counted(faults, Duration.ZERO, NOW));
    }

    @Test
    void shouldCountOnlyTheFaultsWithinTheWindowWhenTheJobTrainedOnBetweenThem() {
        List<JobRecord.Fault> faults = List.of(fault(5 * HOUR, 10), fault(2 * HOUR, 40), fault(HOUR - 1, 60),
            fault(0, 90));
        assertEquals(2, RestartBudget.counted(faults, WINDOW, NOW), "the two of the last hour");
        assertEquals(1, RestartBudget.counted(List.of(fault(0, 5)), WINDOW, NOW), "the fault of now");
        assertEquals(0, RestartBudget.counted(List.of(), WINDOW, NOW));
    }

    @Test
    void shouldCountOldFaultsAfterWhichTheJobNeverTrainedPastTheirStep() {
        // the same step after every restore, each restore longer than the window: all count
        List<JobRecord.Fault> stuck = List.of(fault(6 * HOUR, 50), fault(4 * HOUR, 50), fault(2 * HOUR, 50),
            fault(0, 50));
        assertEquals(4, RestartBudget.counted(stuck, WINDOW, NOW));
        // a fault that found the job further on ends the chain: the older ones count by their time alone
        List<JobRecord.Fault> progressed = List.of(fault(6 * HOUR, 10), fault(4 * HOUR, 50), fault(2 * HOUR, 50),
            fault(0, 30));
        assertEquals(3, RestartBudget.counted(progressed, WINDOW, NOW), "the fault of now and the two at step 50");
        // a fault of a record that did not carry its step counts by its time alone
        List<JobRecord.Fault> unknown = List.of(fault(3 * HOUR, -1), fault(2 * HOUR, -1), fault(0, 10));
        assertEquals(1, RestartBudget.counted(unknown, WINDOW, NOW));
    }

    private static JobRecord.Fault departure(long agoMs, long step) {
        return new JobRecord.Fault(1, NOW - agoMs, step, "left", true);
    }

    @Test
    void shouldNotCountPlannedDeparturesAfterWhichTheJobTrainedOn() {
        // a rolling restart of six nodes within minutes, the job training between them: none counts, with the
        // window on or off, and a fault among them counts as before
        List<JobRecord.Fault> rolling = List.of(departure(300_000, 10), departure(240_000, 14),
            departure(180_000, 19), departure(120_000, 25), departure(60_000, 30), departure(0, 36));
        assertEquals(0, RestartBudget.counted(rolling, WINDOW, NOW));
        assertEquals(0, RestartBudget.counted(rolling, Duration.ZERO, NOW));
        List<JobRecord.Fault> withFault = List.of(departure(300_000, 10), fault(240_000, 14), departure(180_000, 19),
            departure(0, 36));
        assertEquals(1, RestartBudget.counted(withFault, WINDOW, NOW), "the fault");
        // the newest departure alone never counts: a job at its budget survives an operator's stop
        List<JobRecord.Fault> atBudget = List.of(fault(3000, 5), fault(2000, 8), fault(1000, 11), departure(0, 14));
        assertEquals(3, RestartBudget.counted(atBudget, WINDOW, NOW));
    }

    @Test
    void shouldCountPlannedDeparturesAfterWhichTheJobMadeNoProgress() {
        // a node stopped again and again before the job trains a step: every departure but the newest counts
        List<JobRecord.Fault> again = List.of(departure(30 * HOUR, 50), departure(20 * HOUR, 50),
            departure(10 * HOUR, 50), departure(0, 50));
        assertEquals(3, RestartBudget.counted(again, WINDOW, NOW));
        // a fault at the step a departure found: both count
        assertEquals(2, RestartBudget.counted(List.of(departure(2 * HOUR, 50), fault(0, 50)), WINDOW, NOW));
        // progress after the departure: it does not
        assertEquals(1, RestartBudget.counted(List.of(departure(60_000, 50), fault(0, 51)), WINDOW, NOW));
    }

    @Test
    void shouldReadTheWindowFromConfigurationAndRefuseWhatCannotBeMeant() {
        assertEquals(RecoverySettings.DEFAULT_RESTART_WINDOW,
            RecoverySettings.from(ConfigFactory.load()).restartWindow(), "reference.conf and the default agree");
        assertEquals(RecoverySettings.defaults().restartWindow(), RecoverySettings.DEFAULT_RESTART_WINDOW);
        assertEquals(Duration.ZERO, window("off").restartWindow());
        assertEquals(Duration.ofMinutes(30), window("30m").restartWindow());
        for (String bad : List.of("0s", "-5m", "sometimes")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> window(bad));
            assertTrue(e.getMessage().contains("troupe.recovery.restart-window")
                && e.getMessage().contains("restart-window=" + bad), e.getMessage());
        }
        assertEquals("off", RecoveringPhase.windowText(Duration.ZERO));
        assertEquals("1h", RecoveringPhase.windowText(Duration.ofHours(1)));
        assertEquals("90m", RecoveringPhase.windowText(Duration.ofMinutes(90)));
        assertEquals("1500ms", RecoveringPhase.windowText(Duration.ofMillis(1500)));
    }

    private static RecoverySettings window(String value) {
        return RecoverySettings.from(ConfigFactory.parseString("troupe.recovery.restart-window = \"" + value + "\""));
    }
}
