package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.CheckpointDiff;
import io.troupe.runtime.launch.ChildJvm;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe train} on the engines that run their steps in this process (the single-device trainer,
 * {@code --engine in-process}) as its own process, interrupted with SIGINT (Ctrl-C) mid-run: it ends after the
 * step in progress, says where it stopped and which checkpoint to resume from, as the cluster engine does
 * ({@link TrainInterruptProcessTest}), and exits 130 (143 for SIGTERM, which stands in where SIGINT is inherited
 * as ignored); {@code --resume} then finishes bitwise as the uninterrupted run does.
 */
@Timeout(300)
class TrainStopProcessTest {
    @TempDir
    Path tmp;

    @Test
    void shouldStopTheSingleDeviceTrainerOnSigintAndResumeBitwise() throws Exception {
        stopResumeAndCompare(60, List.of("--layout", "1x1"));
    }

    @Test
    void shouldStopTheInProcessEngineOnSigintAndResumeBitwise() throws Exception {
        stopResumeAndCompare(40, List.of("--layout", "2x2", "--engine", "in-process"));
    }

    private static List<String> options(int steps, List<String> engine) {
        List<String> o = new ArrayList<>(List.of("train", "--model", "small", "--steps", Integer.toString(steps),
            "--threads", "2", "--checkpoint-interval", "5", "--eval-interval", "0"));
        o.addAll(engine);
        return o;
    }

    private void stopResumeAndCompare(int steps, List<String> engine) throws Exception {
        Pattern stopped = Pattern.compile("^troupe: stopped at step (\\d+) of " + steps + " \\(interrupted\\); its"
            + " last checkpoint is step (\\d+): resume with scripts/troupe train --resume (\\S+) and this run's"
            + " other options$", Pattern.MULTILINE);
        Path a = tmp.resolve("a");
        List<String> first = options(steps, engine);
        first.addAll(List.of("--out", a.toString()));
        String log;
        try (ChildJvm train = ChildJvm.start(TroupeCli.class, List.of("-Xmx512m", "-XX:+UseSerialGC"), first)) {
            train.awaitMatch(Pattern.compile("^step +12/" + steps + " "), 120_000);
            // started in the background of a non-interactive shell, this JVM and its child ignore SIGINT (and the
            // JVM keeps it ignored): SIGTERM then stands for Ctrl-C, through the same stop
            boolean intIgnored = train.ignoresSignal(2);
            if (intIgnored) {
                System.out.println("SIGINT is ignored here (inherited): stopping with SIGTERM instead");
            }
            Process kill = new ProcessBuilder("kill", intIgnored ? "-TERM" : "-INT", Long.toString(train.pid()))
                .inheritIO().start();
            assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "signal sent");
            int code = train.waitFor(60_000);
            log = train.output();
            System.out.print(log);
            assertEquals(intIgnored ? 143 : 130, code, log);
        }
        Matcher stop = stopped.matcher(log);
        assertTrue(stop.find(), "the stop line:\n" + log);
        long stoppedAt = Long.parseLong(stop.group(1));
        long committed = Long.parseLong(stop.group(2));
        assertTrue(stoppedAt >= 12 && stoppedAt < steps && committed >= 10 && committed <= stoppedAt
            && committed > stoppedAt - 5, "stopped mid-run after a checkpoint: " + stop.group());
        assertEquals(a.toAbsolutePath().normalize().toString(), stop.group(3));
        assertTrue(log.contains(String.format("step %5d/%d ", stoppedAt, steps)), "the step it names ran:\n" + log);
        assertFalse(log.contains(String.format("step %5d/%d ", stoppedAt + 1, steps)), "no step after it:\n" + log);
        assertFalse(log.contains("Exception"), log);
        assertTrue(Files.isRegularFile(a.resolve("loss.svg")), "the plot of the steps it ran");

        Path b = tmp.resolve("b");
        List<String> resume = options(steps, engine);
        resume.addAll(List.of("--resume", a.toString(), "--out", b.toString()));
        String resumed = run(resume);
        assertTrue(resumed.contains("at step " + committed), resumed);
        Path c = tmp.resolve("c");
        List<String> whole = options(steps, engine);
        whole.addAll(List.of("--out", c.toString()));
        run(whole);
        String last = String.format("checkpoints/step-%08d", steps);
        CheckpointDiff.Result diff = CheckpointDiff.of(b.resolve(last), c.resolve(last));
        assertTrue(diff.bitwise(), "resumed after the stop vs uninterrupted: " + diff.summary());
    }

    private static String run(List<String> args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(args.toArray(String[]::new), new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
        String said = out.toString(StandardCharsets.UTF_8) + err.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, said);
        return said;
    }
}
