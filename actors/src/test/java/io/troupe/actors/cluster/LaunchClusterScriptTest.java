package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * scripts/launch-cluster.sh reading its hosts file, with {@code TROUPE_CMD} a stand-in that records each command
 * line it is given (nodes and the submitting client) instead of starting a JVM: which nodes start, on which ports,
 * with how many workers, and that a bad line starts none.
 */
@Timeout(120)
class LaunchClusterScriptTest {
    @TempDir
    Path dir;

    private static Path root() {
        return Path.of(System.getProperty("user.dir")).getParent();
    }

    /** Runs the script on {@code hosts}; returns its exit code, its output in {@code dir/out.log}. */
    private int launch(String hosts, int nodes) throws IOException, InterruptedException {
        Path root = root();
        Path fake = dir.resolve("fake-troupe");
        // a node records its command line; the client waits (10 s at most) until every node has, then records its own
        Files.writeString(fake, """
            #!/usr/bin/env bash
            if [ "$1" = submit ]; then
              for _ in $(seq 1 100); do [ "$(grep -c '^node ' "$FAKE_LOG" 2>/dev/null)" -ge "$FAKE_NODES" ] && break; \
            sleep 0.1; done
            fi
            echo "$*" >> "$FAKE_LOG"
            if [ "$1" = submit ]; then echo "resume with: $TROUPE_RESUME_COMMAND" >> "$FAKE_LOG"; fi
            """);
        assertTrue(fake.toFile().setExecutable(true));
        Path hostsFile = dir.resolve("hosts");
        Files.writeString(hostsFile, hosts);
        ProcessBuilder pb = new ProcessBuilder("bash", root.resolve("scripts/launch-cluster.sh").toString(),
            hostsFile.toString(), "--model", "tiny", "--steps", "3")
            .redirectErrorStream(true).redirectOutput(dir.resolve("out.log").toFile());
        pb.environment().put("TROUPE_CMD", fake.toString());
        pb.environment().put("FAKE_LOG", dir.resolve("commands.log").toString());
        pb.environment().put("FAKE_NODES", Integer.toString(nodes));
        pb.environment().put("TROUPE_LOG_DIR", dir.resolve("logs").toString());
        Process p = pb.start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("launch-cluster.sh did not end: " + Files.readString(dir.resolve("out.log")));
        }
        return p.exitValue();
    }

    private List<String> commands() throws IOException {
        return Files.readAllLines(dir.resolve("commands.log"), StandardCharsets.UTF_8);
    }

    @Test
    void shouldStartANodePerLineSkippingCommentsAndBlankLinesAndReadingALastLineWithoutNewline() throws Exception {
        int code = launch("127.0.0.1:35611   # the seed\n\n  # a comment line\n127.0.0.2:35612 2# two workers\r\n"
            + "127.0.0.3", 3);
        String out = Files.readString(dir.resolve("out.log"));
        assertEquals(0, code, out);
        List<String> commands = commands();
        assertEquals(5, commands.size(), String.join("\n", commands));
        assertTrue(commands.contains("node --hostname 127.0.0.1 --port 35611 --workers 1 --role worker,coordinator"),
            commands.toString());
        assertTrue(commands.contains("node --hostname 127.0.0.2 --port 35612 --workers 2 --role worker,coordinator"
            + " --seed 127.0.0.1:35611"), commands.toString());
        assertTrue(commands.contains("node --hostname 127.0.0.3 --port 25520 --workers 1 --role worker,coordinator"
            + " --seed 127.0.0.1:35611"), commands.toString());
        assertEquals("submit --cluster 127.0.0.1:35611 --hostname 127.0.0.1 --model tiny --steps 3",
            commands.get(3));
        assertEquals("resume with: " + root().resolve("scripts/launch-cluster.sh") + " " + dir.resolve("hosts"),
            commands.get(4), "a stopped job is resumed by the script, whose nodes end with it");
    }

    @Test
    void shouldStartNoNodeWhenALaterLineIsBad() throws Exception {
        for (String[] bad : new String[][] {
            {"127.0.0.2:35612 x", "bad worker count 'x' for 127.0.0.2:35612"},
            {"127.0.0.2:70000", "bad port in '127.0.0.2:70000'"},
            {"127.0.0.2:35612:1", "bad port in '127.0.0.2:35612:1'"},
            {"127.0.0.2 2 3", "unexpected '3' after the worker count for 127.0.0.2"},
        }) {
            Files.deleteIfExists(dir.resolve("commands.log"));
            int code = launch("127.0.0.1:35611\n" + bad[0] + "\n", 2);
            String out = Files.readString(dir.resolve("out.log"));
            assertEquals(2, code, bad[0] + ": " + out);
            assertTrue(out.contains("launch-cluster: " + bad[1]), bad[0] + ": " + out);
            assertFalse(Files.exists(dir.resolve("commands.log")), bad[0] + ": nothing started, yet "
                + (Files.exists(dir.resolve("commands.log")) ? commands() : ""));
            assertFalse(out.contains("troupe: node 1"), bad[0] + ": " + out);
        }
    }
}
