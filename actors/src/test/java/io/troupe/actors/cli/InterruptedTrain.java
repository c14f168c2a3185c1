package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.launch.ChildJvm;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A {@code troupe train} (or {@code troupe submit}) child JVM stopped as a user stops it: Ctrl-C (SIGINT) once
 * step 12 is printed, or SIGTERM where SIGINT is inherited as ignored (a background non-interactive shell), which
 * goes through the same stop; or SIGHUP (a closed terminal), which ends it through the JVM's shutdown hook. Shared
 * by the process tests of every engine's stop.
 */
final class InterruptedTrain {
    /** The step after whose line the signal is sent. */
    static final int SIGNAL_AFTER_STEP = 12;

    /** What the stopped run printed, and its stop line's figures. */
    record Stopped(String log, String stopLine, long stoppedAt, long committed, String resumeFrom) {
    }

    private InterruptedTrain() {
    }

    /**
     * Runs {@code args} ({@code train ...} or {@code submit ...} of {@code steps} steps) in a child JVM, signals it
     * after step 12, and asserts the stop's exit code (130 for SIGINT, 143 for SIGTERM) and that it printed the stop
     * line, which names the same command ({@code args.get(0)}) to resume with.
     */
    static Stopped interrupt(List<String> args, int steps) throws Exception {
        return signal(args, steps, false);
    }

    /**
     * As {@link #interrupt}, with SIGHUP, which the command does not handle: the JVM's shutdown hook asks for the
     * same stop and waits for it, and the exit code is the JVM's own for SIGHUP, 129. Skips (an assumption) where
     * SIGHUP is inherited as ignored ({@code nohup}): the child would never end by it.
     */
    static Stopped hangUp(List<String> args, int steps) throws Exception {
        return signal(args, steps, true);
    }

    private static Stopped signal(List<String> args, int steps, boolean hangUp) throws Exception {
        Pattern stopped = Pattern.compile("^troupe: stopped at step (\\d+) of " + steps + " \\(interrupted\\); its"
            + " last checkpoint is step (\\d+): resume with scripts/troupe " + Pattern.quote(args.get(0))
            + " --resume (\\S+) and this run's other options$", Pattern.MULTILINE);
        String log;
        try (ChildJvm train = ChildJvm.start(TroupeCli.class, List.of("-Xmx512m", "-XX:+UseSerialGC"), args)) {
            train.awaitMatch(Pattern.compile("^step +" + SIGNAL_AFTER_STEP + "/" + steps + " "), 120_000);
            String signal;
            int expected;
            if (hangUp) {
                org.junit.jupiter.api.Assumptions.assumeFalse(train.ignoresSignal(1),
                    "SIGHUP is ignored here (inherited): it cannot end the child");
                signal = "-HUP";
                expected = 128 + 1;
            } else {
                // started in the background of a non-interactive shell, this JVM and its child ignore SIGINT (and
                // the JVM keeps it ignored): SIGTERM then stands for Ctrl-C, through the same stop
                boolean intIgnored = train.ignoresSignal(2);
                if (intIgnored) {
                    System.out.println("SIGINT is ignored here (inherited): stopping with SIGTERM instead");
                }
                signal = intIgnored ? "-TERM" : "-INT";
                expected = intIgnored ? 128 + 15 : 128 + 2;
            }
            Process kill = new ProcessBuilder("kill", signal, Long.toString(train.pid())).inheritIO().start();
            assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "signal sent");
            int code = train.waitFor(60_000);
            log = train.output();
            assertEquals(expected, code, log);
        }
        Matcher stop = stopped.matcher(log);
        assertTrue(stop.find(), "the stop line:\n" + log);
        return new Stopped(log, stop.group(), Long.parseLong(stop.group(1)), Long.parseLong(stop.group(2)),
            stop.group(3));
    }

    /** Runs {@code args} in this JVM and asserts it ends with exit code 0; returns what it printed. */
    static String runToTheEnd(List<String> args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(args.toArray(String[]::new), new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
        String said = out.toString(StandardCharsets.UTF_8) + err.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, said);
        return said;
    }
}
