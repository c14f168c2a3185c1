package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.JobRecord;
import io.troupe.models.checkpoint.CheckpointDiff;
import io.troupe.runtime.launch.ChildJvm;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
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
 * {@code troupe train} (embedded cluster) as its own process, interrupted with SIGINT (Ctrl-C) mid-run:
 * a user's stop, not a fault. It says where it stopped and how to resume, exits 130, logs nothing at
 * WARN or ERROR, and leaves its job record {@code stopped} with no restart; {@code --resume} then
 * finishes bitwise as the uninterrupted run does.
 */
@Timeout(300)
class TrainInterruptProcessTest {
    private static final int STEPS = 200;
    private static final Pattern STOPPED = Pattern.compile("^troupe: stopped at step (\\d+) of " + STEPS
        + " \\(interrupted\\); its last checkpoint is step (\\d+): resume with scripts/troupe train --resume (\\S+)"
        + " and this run's other options$", Pattern.MULTILINE);
    // Pekko's notices of a starved heartbeat thread: CPU load on a shared machine, whatever the run does
    private static final Pattern LOAD_NOTICE = Pattern.compile("pekkoHeartbeatStarvation|pekkoFailureDetectorGrowing");

    @TempDir
    Path tmp;

    private static List<String> options(int steps) {
        return new ArrayList<>(List.of("train", "--model", "tiny", "--layout", "2x2", "--steps",
            Integer.toString(steps), "--threads", "2", "--checkpoint-interval", "5", "--eval-interval", "0"));
    }

    @Test
    void shouldStopWithoutAFaultOnSigintAndResumeBitwise() throws Exception {
        Path a = tmp.resolve("a");
        List<String> first = options(STEPS);
        first.addAll(List.of("--out", a.toString()));
        String log;
        try (ChildJvm train = ChildJvm.start(TroupeCli.class, List.of("-Xmx512m", "-XX:+UseSerialGC"), first)) {
            train.awaitMatch(Pattern.compile("^step +12/" + STEPS + " "), 120_000);
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
            assertEquals(intIgnored ? 143 : 130, code, log);
        }
        Matcher stop = STOPPED.matcher(log);
        assertTrue(stop.find(), "the stop line:\n" + log);
        long stoppedAt = Long.parseLong(stop.group(1));
        long committed = Long.parseLong(stop.group(2));
        assertTrue(stoppedAt >= 12 && stoppedAt < STEPS && committed >= 10 && committed <= stoppedAt,
            "stopped mid-run after a checkpoint: " + stop.group());
        assertEquals(a.toAbsolutePath().normalize().toString(), stop.group(3));
        for (String line : log.split("\n")) {
            assertTrue(!line.contains("fault") && !line.contains("restor") && !line.contains("Exception"),
                "a stop is not a fault: " + line + "\n" + log);
            assertTrue(!(line.contains(" WARN ") || line.contains(" ERROR ")) || LOAD_NOTICE.matcher(line).find(),
                "nothing logged at WARN or ERROR: " + line + "\n" + log);
        }
        JobRecord record = JobRecord.read(a.resolve("checkpoints"));
        assertEquals(JobRecord.State.STOPPED, record.state(), "the job record says stopped");
        assertEquals(0, record.restarts(), "an interrupt is no restart: " + record.faults());
        assertEquals(committed, record.lastCommittedStep());

        List<String> resume = options(STEPS);
        resume.addAll(List.of("--resume", a.toString(), "--out", tmp.resolve("b").toString()));
        assertEquals(0, run(resume));
        List<String> whole = options(STEPS);
        whole.addAll(List.of("--out", tmp.resolve("c").toString()));
        assertEquals(0, run(whole));
        String last = String.format("checkpoints/step-%08d", STEPS);
        CheckpointDiff.Result diff = CheckpointDiff.of(a.resolve(last), tmp.resolve("c").resolve(last));
        assertTrue(diff.bitwise(), "resumed after the stop vs uninterrupted: " + diff.summary());
    }

    private static int run(List<String> args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(args.toArray(String[]::new), new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, code, out.toString(StandardCharsets.UTF_8) + err.toString(StandardCharsets.UTF_8));
        return code;
    }
}
