package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.CheckpointDiff;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe train} on the engines that run their steps in this process (the single-device trainer,
 * {@code --engine in-process}) as its own process, interrupted with SIGINT (Ctrl-C) mid-run: it ends after the
 * step in progress, says where it stopped and which checkpoint to resume from, as the cluster engine does
 * ({@link TrainInterruptProcessTest}), and exits 130 (143 for SIGTERM, which stands in where SIGINT is inherited
 * as ignored); {@code --resume} then finishes bitwise as the uninterrupted run does. SIGHUP ends it the same way,
 * through the JVM's shutdown hook.
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

    /**
     * SIGHUP (the terminal closed), which the command leaves to the JVM: its shutdown hook asks for the same stop
     * and waits for it, so the run ends after its step with the stop line and the JVM's status for SIGHUP (129), and
     * its last commit, verified, resumes the run.
     */
    @Test
    void shouldStopTheSingleDeviceTrainerOnSighupWithAResumableCheckpoint() throws Exception {
        int steps = 60;
        Path a = tmp.resolve("a");
        List<String> first = options(steps, List.of("--layout", "1x1"));
        first.addAll(List.of("--out", a.toString()));
        InterruptedTrain.Stopped stop = InterruptedTrain.hangUp(first, steps);
        System.out.println(stop.stopLine());
        long committed = stop.committed();
        assertTrue(stop.stoppedAt() >= 12 && stop.stoppedAt() < steps && committed >= 10
            && committed <= stop.stoppedAt(), "stopped mid-run after a checkpoint: " + stop.stopLine());
        assertEquals(a.toAbsolutePath().normalize().toString(), stop.resumeFrom());
        Manifest last = Checkpoints.verify(Checkpoints.resolve(a));
        assertEquals(committed, last.step(), "the commit the stop line names is the last, whole");
        List<String> resume = options(steps, List.of("--layout", "1x1"));
        resume.addAll(List.of("--resume", a.toString(), "--out", tmp.resolve("b").toString()));
        String resumed = InterruptedTrain.runToTheEnd(resume);
        assertTrue(resumed.contains("at step " + committed), resumed);
    }

    private static List<String> options(int steps, List<String> engine) {
        List<String> o = new ArrayList<>(List.of("train", "--model", "small", "--steps", Integer.toString(steps),
            "--threads", "2", "--checkpoint-interval", "5", "--eval-interval", "0"));
        o.addAll(engine);
        return o;
    }

    private void stopResumeAndCompare(int steps, List<String> engine) throws Exception {
        Path a = tmp.resolve("a");
        List<String> first = options(steps, engine);
        first.addAll(List.of("--out", a.toString()));
        InterruptedTrain.Stopped stop = InterruptedTrain.interrupt(first, steps);
        String log = stop.log();
        System.out.print(log);
        long stoppedAt = stop.stoppedAt();
        long committed = stop.committed();
        assertTrue(stoppedAt >= 12 && stoppedAt < steps && committed >= 10 && committed <= stoppedAt
            && committed > stoppedAt - 5, "stopped mid-run after a checkpoint: " + stop.stopLine());
        assertEquals(a.toAbsolutePath().normalize().toString(), stop.resumeFrom());
        assertTrue(log.contains(String.format("step %5d/%d ", stoppedAt, steps)), "the step it names ran:\n" + log);
        assertFalse(log.contains(String.format("step %5d/%d ", stoppedAt + 1, steps)), "no step after it:\n" + log);
        assertFalse(log.contains("Exception"), log);
        assertTrue(Files.isRegularFile(a.resolve("loss.svg")), "the plot of the steps it ran");

        Path b = tmp.resolve("b");
        List<String> resume = options(steps, engine);
        resume.addAll(List.of("--resume", a.toString(), "--out", b.toString()));
        String resumed = InterruptedTrain.runToTheEnd(resume);
        assertTrue(resumed.contains("at step " + committed), resumed);
        Path c = tmp.resolve("c");
        List<String> whole = options(steps, engine);
        whole.addAll(List.of("--out", c.toString()));
        InterruptedTrain.runToTheEnd(whole);
        String last = String.format("checkpoints/step-%08d", steps);
        CheckpointDiff.Result diff = CheckpointDiff.of(b.resolve(last), c.resolve(last));
        assertTrue(diff.bitwise(), "resumed after the stop vs uninterrupted: " + diff.summary());
    }
}
