package io.troupe.runtime.launch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.transport.DriverDirectory;
import io.troupe.runtime.transport.TransportNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real child JVM: its command line, a line sent to its stdin and echoed back, a pattern found in its
 * output, its exit code, a stop, and the Aeron directory its killed driver leaves deleted.
 */
class ChildJvmTest {
    /** An unmarked directory named like a child's generated driver directory, made by a test. */
    private Path lookAlike;

    /** Launches a node with an embedded driver, prints {@code AERONDIR <dir>}, and runs until its stdin ends. */
    public static final class DriverMain {
        public static void main(String[] args) throws Exception {
            try (TransportNode node = TransportNode.launch(LoopbackDriver.testSettings(), Throwable::printStackTrace)) {
                System.out.println("AERONDIR " + node.aeronDir());
                System.out.flush();
                System.in.transferTo(OutputStream.nullOutputStream());
            }
        }
    }

    /** Ignores SIGHUP, prints READY, and runs until its stdin ends. */
    public static final class IgnoresHupMain {
        public static void main(String[] args) throws Exception {
            sun.misc.Signal.handle(new sun.misc.Signal("HUP"), sun.misc.SignalHandler.SIG_IGN);
            System.out.println("READY");
            System.out.flush();
            System.in.transferTo(OutputStream.nullOutputStream());
        }
    }

    @Test
    @Timeout(60)
    void shouldTellWhichSignalsTheChildIgnores() throws Exception {
        try (ChildJvm child = ChildJvm.start(IgnoresHupMain.class)) {
            child.awaitLine("READY", 30_000);
            assertTrue(child.ignoresSignal(1), "SIGHUP set to ignored");
            assertFalse(child.ignoresSignal(15), "the JVM handles SIGTERM");
            assertThrows(IllegalArgumentException.class, () -> child.ignoresSignal(0));
        }
    }

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
    void shouldPlaceThePropertysOptionsBeforeTheCallersAndNoneWhenItIsBlank() {
        String saved = System.getProperty(ChildJvm.OPTIONS_PROPERTY);
        try {
            System.setProperty(ChildJvm.OPTIONS_PROPERTY, " -Dtroupe.a=1 \t -XX:TieredStopAtLevel=1 ");
            List<String> cmd = ChildJvm.command(EchoMain.class, List.of("-Xmx64m"), List.of("a"));
            int cp = cmd.indexOf("-cp");
            assertEquals(List.of("-Dtroupe.a=1", "-XX:TieredStopAtLevel=1", "-Xmx64m", "-cp"),
                cmd.subList(cp - 3, cp + 1), cmd::toString);
            System.setProperty(ChildJvm.OPTIONS_PROPERTY, "  ");
            assertEquals(List.of(), ChildJvm.propertyOptions());
            List<String> plain = ChildJvm.command(EchoMain.class, List.of("-Xmx64m"), List.of("a"));
            assertFalse(plain.contains("-Dtroupe.a=1") || plain.contains("-XX:TieredStopAtLevel=1"), plain::toString);
        } finally {
            if (saved == null) {
                System.clearProperty(ChildJvm.OPTIONS_PROPERTY);
            } else {
                System.setProperty(ChildJvm.OPTIONS_PROPERTY, saved);
            }
        }
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

    @AfterEach
    void deleteLookAlike() throws IOException {
        if (lookAlike != null) {
            Files.deleteIfExists(lookAlike);
        }
    }

    @Test
    @Timeout(60)
    void shouldReturnTheMatchOfAPatternInAWholeLine() throws Exception {
        try (ChildJvm child = ChildJvm.start(EchoMain.class, "x", "y")) {
            MatchResult m = child.awaitMatch(Pattern.compile("Y (\\w+),(\\w+)$"), 30_000);
            assertEquals("Y x,y", m.group());
            assertEquals("y", m.group(2));
        }
    }

    /**
     * Starts a child whose embedded driver made its marked directory, puts an unmarked directory named
     * for the child's pid beside it, and returns the driver's directory.
     */
    private Path driverDirOf(ChildJvm child) throws Exception {
        Path dir = Path.of(child.awaitLine("AERONDIR ", 30_000).substring("AERONDIR ".length()));
        assertTrue(Files.isRegularFile(dir.resolve(DriverDirectory.MARKER)), "the driver marked " + dir);
        assertTrue(dir.getFileName().toString().startsWith("troupe-" + child.pid() + "-"), dir.toString());
        lookAlike = Files.createDirectory(dir.resolveSibling("troupe-" + child.pid() + "-0-unmarked"));
        return dir;
    }

    @Test
    @Timeout(60)
    void shouldDeleteTheMarkedDriverDirectoryOfAKilledChildAndKeepAnUnmarkedOne() throws Exception {
        try (ChildJvm child = ChildJvm.start(DriverMain.class)) {
            Path dir = driverDirOf(child);
            child.kill();
            assertFalse(child.isAlive(), "killed");
            assertFalse(Files.exists(dir), "the killed driver's directory is deleted: " + dir);
            assertTrue(Files.isDirectory(lookAlike), "a directory without the marker is kept: " + lookAlike);
        }
    }

    @Test
    @Timeout(60)
    void shouldDeleteTheMarkedDriverDirectoryOnCloseWhenKilledFromOutside() throws Exception {
        Path dir;
        try (ChildJvm child = ChildJvm.start(DriverMain.class)) {
            dir = driverDirOf(child);
            child.process().destroyForcibly();
            child.waitFor(30_000);
            assertTrue(Files.isDirectory(dir), "a SIGKILLed driver leaves its directory: " + dir);
        }
        assertFalse(Files.exists(dir), "close deletes the killed driver's directory: " + dir);
        assertTrue(Files.isDirectory(lookAlike), "a directory without the marker is kept: " + lookAlike);
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
