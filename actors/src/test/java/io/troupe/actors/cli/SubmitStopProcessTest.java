package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.JobRecord;
import io.troupe.runtime.launch.ChildJvm;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.MatchResult;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code troupe submit} as its own process, to a {@code troupe node} process on 127.0.0.1: Ctrl-C (SIGINT) stops
 * the job on the cluster as {@code troupe train} stops its own (exit 130, the stop line naming
 * {@code troupe submit --resume} and the run directory, the job record {@code stopped}), so the cluster takes the
 * next job, and {@code --resume} continues from the last commit; {@code --detach} exits 0 once the job has
 * started, printing its id, and the job runs to its end on the cluster with nobody following it.
 */
@Tag("slow")
@Timeout(300)
class SubmitStopProcessTest {
    private static final int STEPS = 300;

    @TempDir
    Path tmp;

    private ChildJvm node;
    private String cluster;

    @BeforeEach
    void startNode() throws Exception {
        // the coordinator's log at INFO: the line that says a job finished
        node = ChildJvm.start(TroupeCli.class, List.of("-Dorg.slf4j.simpleLogger.log.io.troupe.actors.cluster=info"),
            List.of("node", "--port", "0", "--metrics-port", "0", "--workers", "1", "--threads", "1"));
        String line = node.awaitLine("troupe node: up at ", 60_000);
        cluster = line.substring("troupe node: up at ".length(), line.indexOf(','));
    }

    @AfterEach
    void stopNode() {
        node.close();
    }

    private List<String> submit(int steps, String... more) {
        List<String> o = new ArrayList<>(List.of("submit", "--cluster", cluster, "--model", "tiny", "--layout", "1x1",
            "--steps", Integer.toString(steps), "--checkpoint-interval", "5", "--eval-interval", "0"));
        o.addAll(List.of(more));
        return o;
    }

    @Test
    void shouldStopTheJobOnTheClusterOnSigintAndResumeFromTheRunDirectory() throws Exception {
        Path a = tmp.resolve("a");
        InterruptedTrain.Stopped stop = InterruptedTrain.interrupt(submit(STEPS, "--out", a.toString()), STEPS);
        System.out.println(stop.stopLine());
        long committed = stop.committed();
        assertTrue(stop.stoppedAt() >= InterruptedTrain.SIGNAL_AFTER_STEP && stop.stoppedAt() < STEPS
            && committed >= 10 && committed <= stop.stoppedAt(), "stopped mid-run after a checkpoint: "
            + stop.stopLine());
        assertEquals(a.toAbsolutePath().normalize().toString(), stop.resumeFrom());
        assertFalse(stop.log().contains("Exception"), stop.log());
        JobRecord record = JobRecord.read(a.resolve("checkpoints"));
        assertEquals(JobRecord.State.STOPPED, record.state(), "the job record says stopped");
        assertEquals(0, record.restarts(), "an interrupt is no restart: " + record.faults());
        assertEquals(committed, record.lastCommittedStep());

        // the cluster runs no job any more (it would refuse this one: "a job is already running"), and the resumed
        // job goes on from the stop's commit, into the same checkpoints, to the end
        String resumed = InterruptedTrain.runToTheEnd(submit(STEPS, "--resume", stop.resumeFrom(), "--out",
            tmp.resolve("b").toString()));
        assertTrue(resumed.contains(String.format("step %5d/%d ", committed + 1, STEPS)), resumed);
        assertFalse(resumed.contains(String.format("step %5d/%d ", committed, STEPS)), resumed);
        assertTrue(resumed.contains("job finished after " + STEPS + " steps"), resumed);
        JobRecord done = JobRecord.read(a.resolve("checkpoints"));
        assertEquals(JobRecord.State.FINISHED, done.state());
        assertEquals(STEPS, done.lastCommittedStep());
    }

    @Test
    void shouldExitOnceTheJobStartedAndLeaveItRunningToItsEndWhenDetached() throws Exception {
        int steps = 40;
        Path d = tmp.resolve("d");
        MatchResult started;
        String log;
        long t0 = System.nanoTime();
        try (ChildJvm client = ChildJvm.start(TroupeCli.class, List.of("-Xmx512m", "-XX:+UseSerialGC"),
            submit(steps, "--detach", "--out", d.toString()))) {
            started = client.awaitMatch(Pattern.compile("^troupe: job ([0-9a-f]{8}) started on 1 workers and runs on,"
                + " detached; run directory (\\S+) "), 120_000);
            int code = client.waitFor(30_000);
            log = client.output();
            assertEquals(0, code, log);
        }
        System.out.printf("detached after %.1f s: %s%n", (System.nanoTime() - t0) / 1e9, started.group());
        assertEquals(d.toAbsolutePath().normalize().toString(), started.group(2));
        assertFalse(Pattern.compile("(?m)^step +\\d+/").matcher(log).find(), "it follows no step:\n" + log);
        String id = started.group(1);
        // the coordinator on the node carries the job to its end with its submitter gone
        String end = node.awaitMatch(Pattern.compile("job " + id + " epoch \\d+ (finished|stopped|failed)"), 120_000)
            .group();
        System.out.println("on the node: " + end);
        assertTrue(end.endsWith(" finished"), end);
        JobRecord record = JobRecord.read(d.resolve("checkpoints"));
        assertEquals(JobRecord.State.FINISHED, record.state());
        assertEquals(id, record.identity().idHex());
        assertEquals(steps, record.lastCommittedStep());
    }
}
