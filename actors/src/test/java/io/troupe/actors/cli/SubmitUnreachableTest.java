package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.testkit.RefusingPort;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe submit} to an address where no node listens fails within {@code --connect-timeout-s}
 * (not {@code --timeout-s}) with one line naming the address, exit code 5, and leaves the run
 * directory as it was: not created when absent, its files unchanged when present.
 */
@Timeout(60)
class SubmitUnreachableTest {
    private static final long CONNECT_S = 2;

    @TempDir
    Path tmp;

    private record Result(int code, String out, String err, double seconds) {
    }

    private static Result submit(String cluster, Path runDir) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        long t0 = System.nanoTime();
        int code = TroupeCli.run(new String[] {"submit", "--cluster", cluster, "--connect-timeout-s",
            String.valueOf(CONNECT_S), "--timeout-s", "3600", "--model", "tiny", "--layout", "1x1", "--steps", "2",
            "--out", runDir.toString()}, new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8),
            (System.nanoTime() - t0) / 1e9);
    }

    @Test
    void shouldFailFastNamingTheAddressWithoutTouchingTheRunDirectoryWhenNoNodeListens() throws IOException {
        try (RefusingPort dead = RefusingPort.open()) {
            Path absent = tmp.resolve("absent");
            Result r = submit(dead.hostPort(), absent);
            System.out.printf("submit to a dead port: exit %d after %.1f s: %s", r.code(), r.seconds(), r.err());
            assertEquals(5, r.code(), r.out() + r.err());
            List<String> lines = r.err().lines().toList();
            assertEquals(1, lines.size(), "one line: " + r.err());
            String line = lines.get(0);
            assertTrue(line.contains(" at " + dead.hostPort() + " ") && line.contains("--connect-timeout-s")
                && line.contains("nothing was submitted"), line);
            assertTrue(r.seconds() >= CONNECT_S - 0.5 && r.seconds() < CONNECT_S + 20,
                "bounded by --connect-timeout-s: " + r.seconds() + " s");
            assertFalse(Files.exists(absent), "run directory not created");
            assertFalse(r.out().contains("submitting"), r.out());

            Path present = Files.createDirectories(tmp.resolve("present"));
            Files.writeString(present.resolve("metrics.csv"), "step,loss\n7,1.5\n");
            assertEquals(5, submit(dead.hostPort(), present).code());
            try (var files = Files.list(present)) {
                assertEquals(List.of(present.resolve("metrics.csv")), files.toList(), "nothing added");
            }
            assertEquals("step,loss\n7,1.5\n", Files.readString(present.resolve("metrics.csv")), "nothing rewritten");
        }
    }
}
