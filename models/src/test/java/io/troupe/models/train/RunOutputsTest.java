package io.troupe.models.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.data.Batches;
import io.troupe.models.data.TokenStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(30)
class RunOutputsTest {
    @TempDir
    Path dir;

    private static StepMetrics step(long s, double val) {
        return new StepMetrics(s, 10, 3.0 - 0.1 * s, val, 1e-3f, 0.5 + s, 1000, 10);
    }

    @Test
    void shouldRedrawTheLossPlotAtEachValidation() throws IOException {
        try (RunOutputs out = new RunOutputs(dir, "test")) {
            out.countEpochs(Batches.shuffled(new TokenStream(new byte[16 * 11], "s"), 16, 1), 5);
            out.record(step(1, Double.NaN));
            assertFalse(Files.exists(dir.resolve("loss.svg")), "no plot before the first validation");
            out.record(step(2, 2.5));
            String first = Files.readString(dir.resolve("loss.svg"));
            out.record(step(3, Double.NaN));
            out.record(step(4, 2.2));
            String second = Files.readString(dir.resolve("loss.svg"));
            assertNotEquals(first, second, "redrawn with the new steps");
            assertTrue(second.startsWith("<svg"));
        }
        List<String> csv = Files.readAllLines(dir.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER, csv.get(0));
        assertEquals("1,0.50000,2.900000,,1.000000e-03,1.500000,1000.0,10.000", csv.get(1));
        assertTrue(csv.get(4).startsWith("4,2.00000,2.600000,2.200000,"), csv.get(4));
    }

    /**
     * A run resumed into its own directory (stopped at step 5, its last checkpoint step 3) continues metrics.csv:
     * steps 1..3 stay, 4 and 5 are run again and written once, and loss.svg draws every step.
     */
    @Test
    void shouldContinueTheMetricsOfTheRunItResumesWithEveryStepOnce() throws IOException {
        try (RunOutputs first = new RunOutputs(dir, "test", true)) {
            for (int s = 1; s <= 5; s++) {
                first.record(step(s, s == 2 ? 2.7 : Double.NaN), 0.25, 1.5, 12.0, 4096);
            }
        }
        List<String> before = Files.readAllLines(dir.resolve("metrics.csv"));
        try (RunOutputs resumed = new RunOutputs(dir, "test", true, true)) {
            assertEquals(before, Files.readAllLines(dir.resolve("metrics.csv")), "left as it was until a step");
            for (int s = 4; s <= 6; s++) {
                resumed.record(step(s, s == 6 ? 2.4 : Double.NaN), 0.5, 2.5, 13.0, 8192);
            }
            assertEquals(3, resumed.history().size(), "this run's steps");
        }
        List<String> csv = Files.readAllLines(dir.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER + RunOutputs.PIPELINE_COLUMNS, csv.get(0));
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), csv.stream().skip(1).map(r -> Long.parseLong(r.split(",")[0]))
            .toList());
        assertEquals(before.subList(1, 4), csv.subList(1, 4), "the earlier run's rows before the resumed step");
        assertTrue(csv.get(4).endsWith(",0.5000,2.500,13.00,8192"), "step 4 as this run recorded it: " + csv.get(4));
        String svg = Files.readString(dir.resolve("loss.svg"));
        assertEquals(3, svg.split("r=\"3.5\" fill=\"#d62728\"", -1).length - 1,
            "both validations drawn, and the legend's marker: " + svg);
        assertTrue(svg.contains(">1</text>"), "the step axis starts at the earlier run's step 1: " + svg);
    }

    /** A fresh run (not a resume) replaces what a directory held; a single-device run's rows continue padded. */
    @Test
    void shouldReplaceTheMetricsOfAFreshRunAndPadSingleDeviceRowsOfAResumedOne() throws IOException {
        try (RunOutputs first = new RunOutputs(dir, "test")) {
            first.record(step(1, Double.NaN));
            first.record(step(2, Double.NaN));
        }
        try (RunOutputs resumed = new RunOutputs(dir, "test", true, true)) {
            resumed.record(step(3, Double.NaN), 0.5, 2.5, 13.0, 8192);
        }
        List<String> csv = Files.readAllLines(dir.resolve("metrics.csv"));
        assertEquals(4, csv.size(), String.join("\n", csv));
        assertEquals("2,,2.800000,,1.000000e-03,2.500000,1000.0,10.000,,,,", csv.get(2));
        try (RunOutputs fresh = new RunOutputs(dir, "test", true)) {
            fresh.record(step(1, Double.NaN), 0.5, 2.5, 13.0, 8192);
        }
        assertEquals(2, Files.readAllLines(dir.resolve("metrics.csv")).size(), "a fresh run starts the file afresh");
    }
}
