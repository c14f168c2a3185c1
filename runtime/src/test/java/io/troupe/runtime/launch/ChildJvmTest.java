package io.troupe.runtime.launch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A real child JVM: its command line, a line sent to its stdin and echoed back, its exit code, and a stop. */
class ChildJvmTest {
    /** Prints READY, echoes each stdin line as "ECHO line", exits 3 on BYE. */
    public static final class EchoMain {
        public static void main(String[] args) throws Exception {
            System.out.println("READY " + String.join(",", args));
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                if (line.equals("BYE")) {
                    System.exit(3);
                }
                System.out.println("ECHO " + line);
                System.out.flush();
            }
        }
    }

    @Test
    void shouldBuildTheCommandFromThisJvmsFlagsAndClasspath() {
        List<String> cmd = ChildJvm.command(EchoMain.class, List.of("-Xmx64m"), List.of("a", "b"));
        assertTrue(cmd.get(0).endsWith("java"), cmd.get(0));
        for (String flag : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (flag.startsWith("--add-opens") || flag.startsWith("--add-exports")) {
                assertTrue(cmd.contains(flag), "carries " + flag + ": " + cmd);
            }
        }
        int cp = cmd.indexOf("-cp");
        assertEquals(System.getProperty("java.class.path"), cmd.get(cp + 1));
        assertEquals(List.of("-Xmx64m", "-cp"), cmd.subList(cp - 1, cp + 1));
        assertEquals(List.of(EchoMain.class.getName(), "a", "b"), cmd.subList(cp + 2, cmd.size()));
    }

    @Test
    @Timeout(60)
    void shouldTalkOverStdinAndStdoutAndReportTheExitCode() throws Exception {
        try (ChildJvm child = ChildJvm.start(EchoMain.class, "x", "y")) {
            assertEquals("READY x,y", child.awaitLine("READY", 30_000));
            child.send("hello");
            assertEquals("ECHO hello", child.awaitLine("ECHO ", 30_000));
            child.send("BYE");
            assertEquals(3, child.waitFor(30_000));
            assertFalse(child.isAlive());
        }
    }

    @Test
    @Timeout(60)
    void shouldStopAChildThatWaitsForever() throws Exception {
        try (ChildJvm child = ChildJvm.start(EchoMain.class)) {
            child.awaitLine("READY", 30_000);
            child.stop(10_000);
            assertFalse(child.isAlive(), "stopped");
        }
    }
}
