package io.troupe.actors.cli;

import static io.troupe.actors.cli.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cli.CliRun.Result;
import io.troupe.models.train.RunOutputs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --zero}, {@code --recompute}, {@code --grad-compression} from the command line: bad values
 * refused before any work (exit 2, naming them), the memory plan printed at start, and
 * {@code mem_peak_mib} (both engines) and {@code grad_bytes_sent} (cluster) in metrics.csv.
 */
@Timeout(300)
class MemoryOptionsCliTest {
    @TempDir
    Path tmp;

    @Test
    void shouldRefuseUnknownStagesModesAndFormatsNamingThem() {
        Result zero = run("train", "--zero", "3");
        assertEquals(2, zero.code(), zero.err());
        assertTrue(zero.err().contains("unknown zero stage 3"), zero.err());
        Result recompute = run("train", "--recompute", "most");
        assertEquals(2, recompute.code(), recompute.err());
        assertTrue(recompute.err().contains("'most'"), recompute.err());
        Result compression = run("train", "--grad-compression", "int4");
        assertEquals(2, compression.code(), compression.err());
        assertTrue(compression.err().contains("'int4'") && compression.err().contains("int8-ef"), compression.err());
        Result inProcess = run("train", "--layout", "2x1", "--engine", "in-process", "--grad-compression", "int8-ef");
        assertEquals(2, inProcess.code(), inProcess.err());
        assertTrue(inProcess.err().contains("cluster engine"), inProcess.err());
    }

    @Test
    void shouldPrintTheMemoryPlanAndRecordThePeakUnderZero() throws IOException {
        Path out = tmp.resolve("z");
        Result r = run("train", "--model", "tiny", "--layout", "2x1", "--engine", "in-process",
            "--zero", "2", "--recompute", "full", "--batch", "4",
            "--steps", "3", "--threads", "2", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("memory per rank: params ") && r.out().contains(" activations "), r.out());
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(RunOutputs.CSV_HEADER + RunOutputs.PIPELINE_COLUMNS, csv.get(0));
        assertTrue(Double.parseDouble(TroupeCliTest.column(csv, 3, "mem_peak_mib")) > 0, csv.get(3));
        String trace = Files.readString(out.resolve("trace.json"));
        assertTrue(trace.contains("{\"name\":\"activations dp1 pp0\",\"ph\":\"C\""), "in-process counter tracks");
    }

    @Test
    void shouldRecordGradientBytesSentOnTheCluster() throws IOException {
        Path none = tmp.resolve("none");
        Path int8 = tmp.resolve("int8");
        for (Path p : new Path[] {none, int8}) {
            Result r = run("train", "--model", "tiny", "--layout", "2x1", "--batch", "4",
                "--steps", "3", "--threads", "2",
                "--grad-compression", p == none ? "none" : "int8-ef", "--out", p.toString());
            assertEquals(0, r.code(), r.err());
        }
        long f32 = Long.parseLong(TroupeCliTest.column(Files.readAllLines(none.resolve("metrics.csv")),
            3, "grad_bytes_sent"));
        long i8 = Long.parseLong(TroupeCliTest.column(Files.readAllLines(int8.resolve("metrics.csv")),
            3, "grad_bytes_sent"));
        String trace = Files.readString(none.resolve("trace.json"));
        assertTrue(trace.contains("\"ph\":\"C\"") && trace.contains("\"name\":\"activations "),
            "cluster counter tracks");
        System.out.printf("gradient bytes sent per step and rank: float32 %d, int8-ef %d (%.3fx)%n",
            f32, i8, (double) i8 / f32);
        assertTrue(f32 > 0 && i8 <= 0.27 * f32, f32 + " vs " + i8);
    }
}
