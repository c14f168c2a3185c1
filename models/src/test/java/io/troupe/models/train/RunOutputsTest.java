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
}
