package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real server with the decode step thread isolated: the kernel's own view of each thread's CPUs
 * ({@code Cpus_allowed_list} in /proc) shows the step thread alone on the process's last CPU and the
 * other threads off it, and closing the server gives them all their CPUs back. Skipped (with the
 * reason) off Linux or with fewer than two CPUs.
 */
@Timeout(60)
class CoreIsolationTest {
    private static final Pattern ALLOWED = Pattern.compile("Cpus_allowed_list:\\s*(\\S+)");

    /** The CPUs in a /proc status file's Cpus_allowed_list ("0-3,6"). */
    private static BitSet allowed(Path status) throws IOException {
        Matcher m = ALLOWED.matcher(Files.readString(status));
        if (!m.find()) {
            throw new AssertionError("no Cpus_allowed_list in " + status);
        }
        BitSet cpus = new BitSet();
        for (String part : m.group(1).split(",")) {
            String[] range = part.split("-");
            int from = Integer.parseInt(range[0]);
            int to = range.length > 1 ? Integer.parseInt(range[1]) : from;
            cpus.set(from, to + 1);
        }
        return cpus;
    }

    private static Path threadNamed(String prefix) throws IOException {
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path t : tasks) {
                if (Files.readString(t.resolve("comm")).trim().startsWith(prefix)) {
                    return t;
                }
            }
        }
        return null;
    }

    @Test
    void shouldRunTheStepThreadAloneOnTheLastCpuAndGiveTheCpusBackOnClose() throws Exception {
        Assumptions.assumeTrue(System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux"),
            "thread affinity is set on Linux only");
        BitSet all = allowed(Path.of("/proc/thread-self/status"));
        Assumptions.assumeTrue(all.cardinality() >= 2, "isolation needs two CPUs; this process may use " + all);
        int last = all.length() - 1;
        try (InferenceServer server = InferenceServer.start(ServeTestSupport.weights(3),
            ServeTestSupport.settings().withIsolateStepCore(true))) {
            // an answered request: the loop has opened the isolation (before its first step)
            assertEquals(200, ServeTestSupport.post(server.port(), "{\"prompt\":\"to be\",\"max_tokens\":4}")
                .statusCode());
            Path step = threadNamed("troupe-serve-st");
            assertNotNull(step, "the decode step thread");
            BitSet expectedStep = new BitSet();
            expectedStep.set(last);
            assertEquals(expectedStep, allowed(step.resolve("status")), "the step thread's CPUs");
            BitSet rest = (BitSet) all.clone();
            rest.clear(last);
            assertEquals(rest, allowed(Path.of("/proc/thread-self/status")), "this (older) thread's CPUs");
            Path events = threadNamed("troupe-serve-ev");
            assertNotNull(events, "the events thread");
            assertNotEquals(expectedStep, allowed(events.resolve("status")), "the events thread left the step CPU");
        }
        // every thread of the process, not only this one: the JVM's threads outlive the server
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path t : tasks) {
                BitSet cpus;
                try {
                    cpus = allowed(t.resolve("status"));
                } catch (IOException ended) {
                    continue;                                    // a thread that ended since the listing
                }
                assertEquals(all, cpus, "CPUs given back on close: thread " + Files.readString(t.resolve("comm"))
                    .trim());
            }
        }
    }
}
