package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.train.StepMetrics;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * The progress line's ETA, on a clock the test moves: the pace of this run's steps since the first one it printed,
 * never the start-up before it nor the steps of an earlier run.
 */
class ProgressEtaTest {
    private long nowNs;

    private static StepMetrics step(long step, double stepMs) {
        return new StepMetrics(step, 100, 3.0, Double.NaN, 1e-3f, 1.0, 1000, stepMs);
    }

    @Test
    void shouldTakeThePaceOfThisRunsStepsNotItsStartUp() {
        TrainCommand.Progress p = new TrainCommand.Progress(new PrintStream(new ByteArrayOutputStream()), 100,
            () -> nowNs);
        nowNs = 60_000_000_000L; // a minute of start-up and warm-up before the first step is printed
        assertEquals(99 * 0.2, p.etaSeconds(step(1, 200)), 1e-9, "the first line: that step's own time");
        nowNs += 10 * 100_000_000L; // ten steps of 100 ms
        assertEquals(89 * 0.1, p.etaSeconds(step(11, 100)), 1e-9);
    }

    @Test
    void shouldCountOnlyTheStepsOfThisRunAfterAResume() {
        TrainCommand.Progress p = new TrainCommand.Progress(new PrintStream(new ByteArrayOutputStream()), 100,
            () -> nowNs);
        nowNs = 5_000_000_000L;
        assertEquals(49 * 0.5, p.etaSeconds(step(51, 500)), 1e-9, "resumed at step 50");
        nowNs += 4 * 500_000_000L;
        assertEquals(45 * 0.5, p.etaSeconds(step(55, 500)), 1e-9);
    }

    @Test
    void shouldMeasureAfreshAfterARollback() {
        TrainCommand.Progress p = new TrainCommand.Progress(new PrintStream(new ByteArrayOutputStream()), 100,
            () -> nowNs);
        p.etaSeconds(step(1, 100));
        nowNs += 9 * 100_000_000L;
        p.etaSeconds(step(10, 100));
        nowNs += 20_000_000_000L; // a fault: detection and recovery, then the job goes on from step 8
        assertEquals(92 * 0.3, p.etaSeconds(step(8, 300)), 1e-9, "the recovery's time is not a step's");
        nowNs += 2 * 100_000_000L;
        assertEquals(90 * 0.1, p.etaSeconds(step(10, 100)), 1e-9);
    }

    @Test
    void shouldPrintTheEtaOnTheLine() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        TrainCommand.Progress p = new TrainCommand.Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), 100,
            () -> nowNs);
        p.print(step(1, 1000));
        String line = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(line.startsWith("step     1/100 |") && line.trim().endsWith("ETA 1m39s"), line);
    }
}
