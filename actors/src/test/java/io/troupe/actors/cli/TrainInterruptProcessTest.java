package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.JobRecord;
import io.troupe.models.checkpoint.CheckpointDiff;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
        InterruptedTrain.Stopped stop = InterruptedTrain.interrupt(first, STEPS);
        String log = stop.log();
        long stoppedAt = stop.stoppedAt();
        long committed = stop.committed();
        assertTrue(stoppedAt >= 12 && stoppedAt < STEPS && committed >= 10 && committed <= stoppedAt,
            "stopped mid-run after a checkpoint: " + stop.stopLine());
        assertEquals(a.toAbsolutePath().normalize().toString(), stop.resumeFrom());
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
        InterruptedTrain.runToTheEnd(resume);
        List<String> whole = options(STEPS);
        whole.addAll(List.of("--out", tmp.resolve("c").toString()));
        InterruptedTrain.runToTheEnd(whole);
        String last = String.format("checkpoints/step-%08d", STEPS);
        CheckpointDiff.Result diff = CheckpointDiff.of(a.resolve(last), tmp.resolve("c").resolve(last));
        assertTrue(diff.bitwise(), "resumed after the stop vs uninterrupted: " + diff.summary());
    }
}
