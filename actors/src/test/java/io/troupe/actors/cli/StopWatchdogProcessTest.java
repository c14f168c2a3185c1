package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.launch.ChildJvm;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The bound on a stop ({@link StopSignal}) in a process whose stop never ends ({@link StuckStopMain}, bound 1 s):
 * after SIGINT (SIGTERM where SIGINT is inherited as ignored) the deadline ends the process with the signal's status
 * and a line saying so; after SIGHUP the shutdown hook gives up waiting and the JVM exits with its own status, 129.
 */
@Timeout(120)
class StopWatchdogProcessTest {
    private static final long STOP_WAIT_MS = 1_000;

    /** How the stuck process ended after the signal {@code sent}: its exit code, its output, the seconds it took. */
    private record Ended(String sent, int code, String log, double seconds) {
    }

    private static Ended stopStuck(String signal) throws Exception {
        try (ChildJvm child = ChildJvm.start(StuckStopMain.class, List.of("-Xmx64m"),
            List.of(Long.toString(STOP_WAIT_MS)))) {
            child.awaitLine("ready", 60_000);
            if (signal.equals("-HUP")) {
                Assumptions.assumeFalse(child.ignoresSignal(1), "SIGHUP is ignored here (inherited)");
            }
            String sent = signal.equals("-INT") && child.ignoresSignal(2) ? "-TERM" : signal;
            long t0 = System.nanoTime();
            Process kill = new ProcessBuilder("kill", sent, Long.toString(child.pid())).inheritIO().start();
            assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "signal sent");
            child.awaitLine("stop requested", 30_000);
            int code = child.waitFor(30_000);
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf("%s to a stuck stop: exit %d after %.1f s%n%s", sent, code, s, child.output());
            return new Ended(sent, code, child.output(), s);
        }
    }

    @Test
    void shouldEndTheProcessWithTheSignalsStatusAndSaySoWhenTheStopOutlivesItsBound() throws Exception {
        Ended e = stopStuck("-INT");
        // SIGTERM stands in where SIGINT is inherited as ignored
        assertEquals(e.sent().equals("-TERM") ? 128 + 15 : 128 + 2, e.code(), e.log());
        assertTrue(e.log().matches("(?s).*\\ntroupe: the stop \\(SIG(INT|TERM)\\) did not end within 1 s: exiting"
            + " now\\n.*"), e.log());
        assertTrue(e.seconds() >= STOP_WAIT_MS / 1e3, "not before the bound: " + e.seconds() + " s");
    }

    @Test
    void shouldLetTheJvmExitWhenTheStopAHangUpAskedForOutlivesItsBound() throws Exception {
        Ended e = stopStuck("-HUP");
        assertEquals(128 + 1, e.code(), e.log());
        assertTrue(e.log().contains("stop requested (JVM shutdown)"), "the hook asked for the stop:\n" + e.log());
        assertFalse(e.log().contains("exiting now"), "the hook ends no process itself:\n" + e.log());
        assertTrue(e.seconds() >= STOP_WAIT_MS / 1e3, "the hook waited for the stop: " + e.seconds() + " s");
    }
}
