package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * What {@code scripts/chaos} makes of a run's launch log and of its checkpoint diff
 * ({@code scripts/lib/chaos-logs.sh}), on logs in the submitter's own line formats ({@code ClusterJobs}): the
 * committed steps every recovery took back, whether the job finished, the diff's verdict only from a diff
 * that ran to its summary line, and a corrupted frame vouched for only by a driver's line and a fault naming it
 * refused.
 */
@Timeout(60)
class ChaosLogsTest {
    private static final String STARTED = "troupe: job 5f1e started, epoch 1, 2 workers: rank 0 -> x\n";

    private static String steps(int from, int to) {
        StringBuilder sb = new StringBuilder();
        for (int s = from; s <= to; s++) {
            sb.append(String.format("step %4d/40 loss 5.1234 lr 1.0e-03%n", s));
        }
        return sb.toString();
    }

    private static String fault(int epoch, int restoring) {
        return "troupe: fault in epoch " + epoch + ": member left; last disk checkpoint step " + restoring
            + " (restart 1)\n";
    }

    private static String recovered(int epoch, int committed, int restored) {
        return "troupe: recovered: epoch " + epoch + " on layout 2x1 committed step " + committed + ", 1200 ms after"
            + " the fault (restored step " + restored + ")\n";
    }

    private static final String FINISHED = "troupe: job finished after 40 steps, final loss 4.0000, final validation"
        + " loss 4.1000; checkpoint runs/x\n";

    @Test
    void shouldCountTheStepsEveryRecoveryTookBack(@TempDir Path tmp) throws Exception {
        // one recovery that restored the last reported step: nothing taken back
        assertEquals("0", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 17, 16) + steps(17, 40) + FINISHED)));
        // one that went back to the disk checkpoint: steps 11 to 16 again
        assertEquals("6", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 11, 10) + steps(11, 40) + FINISHED)));
        // a second recovery later in the run counts as well (2 + 5)
        assertEquals("7", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 14)
            + recovered(2, 15, 14) + steps(15, 25) + fault(2, 20) + recovered(3, 21, 20) + steps(21, 40)
            + FINISHED)));
        // two faults before one recovery: from the last step reported before the first
        assertEquals("6", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 14)
            + fault(2, 10) + recovered(3, 11, 10) + steps(11, 40) + FINISHED)));
        // a job that never recovered: the step its fault line was restoring
        assertEquals("6", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10))));
        // a planned restart (a node stopped cleanly) is a recovery like a fault's, and is seen as one
        String planned = "troupe: planned restart in epoch 1: member x leaving the cluster, hosting rank(s) [1];"
            + " last disk checkpoint step 10 (restart 1)\n";
        assertEquals("6", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + planned
            + recovered(2, 11, 10) + steps(11, 40) + FINISHED)));
        String seen = "if chaos_fault_seen \"$1\"; then echo seen; else echo none; fi";
        assertEquals("seen", lib(seen, log(tmp, STARTED + steps(1, 16) + planned)));
        assertEquals("none", lib(seen, log(tmp, STARTED + steps(1, 40) + FINISHED)));
        // a second fault right after a recovery, before any new step: nothing more than that recovery took back
        assertEquals("6", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 11, 10) + fault(2, 10) + recovered(3, 11, 10) + steps(11, 40) + FINISHED)));
    }

    /**
     * What the recoveries took back from disk: nothing when each restored its fault line's last disk checkpoint (the
     * steps since it are re-run, not lost), the difference when one restored an older step.
     */
    @Test
    void shouldCountOnlyTheStepsARecoveryTookBackFromDisk(@TempDir Path tmp) throws Exception {
        assertEquals("0", lib("chaos_disk_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 11, 10) + steps(11, 40) + FINISHED)));
        assertEquals("0", lib("chaos_disk_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 17, 16) + steps(17, 40) + FINISHED)));
        assertEquals("10", lib("chaos_disk_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 1, 0) + steps(1, 40) + FINISHED)));
        // two recoveries: each against its own fault lines' checkpoint (0 + 10)
        assertEquals("10", lib("chaos_disk_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 11, 10) + steps(11, 25) + fault(2, 20) + recovered(3, 11, 10) + steps(11, 40)
            + FINISHED)));
        // the rows the chaos plan's line would also print: the steps re-run
        assertEquals("6", lib("chaos_lost_steps \"$1\"", log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 11, 10) + steps(11, 40) + FINISHED)));
    }

    /** A node started again (launch-local.sh --respawn) is found by its latest pid, and by the latest assignment. */
    @Test
    void shouldFindARespawnedNodesPidAndWhetherItHostsARankOfTheLatestEpoch(@TempDir Path tmp) throws Exception {
        Path l = log(tmp, "troupe: node 1 (pid 100) on a free port of 127.0.0.1, log n1\n"
            + "troupe: node 1 is up on 127.0.0.1:4001\n"
            + "troupe: node 2 (pid 200) on a free port of 127.0.0.1, log n2\n"
            + "troupe: node 3 (pid 300) on a free port of 127.0.0.1, log n3\n"
            + "troupe: node 2 is up on 127.0.0.1:4002\n"
            + "troupe: node 3 is up on 127.0.0.1:4003\n"
            + "troupe: job 1a2b started, epoch 1, 2 workers: rank 0 -> pekko://troupe@127.0.0.1:4001#11#0, "
            + "rank 1 -> pekko://troupe@127.0.0.1:4002#22#0\n"
            + steps(1, 16) + fault(1, 10)
            + "troupe: node 1 (pid 101) on 127.0.0.1:4001, log n1 (respawned)\n"
            + "troupe: job 1a2b started, epoch 2, 2 workers: rank 0 -> pekko://troupe@127.0.0.1:4003#33#0, "
            + "rank 1 -> pekko://troupe@127.0.0.1:4002#22#0\n");
        assertEquals("101", lib("node_pid_now \"$1\" 1", l));
        assertEquals("100", lib("node_pid \"$1\" 1", l));
        assertEquals("200", lib("node_pid_now \"$1\" 2", l));
        assertEquals("no yes yes",
            lib("for n in 1 2 3; do node_hosts_rank \"$1\" $n && printf 'yes ' || printf 'no '; done", l));
    }

    @Test
    void shouldCountAJobAsFinishedOnlyWhenItsLaunchSucceededAndTheSubmitterSaidSo(@TempDir Path tmp)
        throws Exception {
        Path done = log(tmp, STARTED + steps(1, 40) + FINISHED);
        assertEquals("yes", lib("chaos_finished \"$1\" 0 && echo yes || echo no", done));
        assertEquals("no", lib("chaos_finished \"$1\" 5 && echo yes || echo no", done), "the launch failed");
        Path failed = log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + "troupe: job failed: the job finished no step after epoch 2; last committed step 10 (epoch 2)\n");
        assertEquals("no", lib("chaos_finished \"$1\" 0 && echo yes || echo no", failed), "a failed job");
        assertEquals("yes", lib("chaos_fault_seen \"$1\" && echo yes || echo no", failed));
        assertEquals("no", lib("chaos_fault_seen \"$1\" && echo yes || echo no", done));
    }

    @Test
    void shouldTakeTheDiffsVerdictOnlyFromItsSummaryLine(@TempDir Path tmp) throws Exception {
        Path same = log(tmp, "A: step 40\nstate step 40 (same)\nbitwise=true max_abs=0.000e+00 max_rel=0.000e+00\n");
        assertEquals("true 0.000e+00", lib("chaos_diff_verdict 0 \"$1\"", same));
        assertEquals("false nan", lib("chaos_diff_verdict 1 \"$1\"", same), "a diff that exited 1");
        Path nan = log(tmp, "bitwise=false max_abs=inf max_rel=inf\n");
        assertEquals("false inf", lib("chaos_diff_verdict 0 \"$1\"", nan));
        Path crashed = log(tmp, "Exception in thread \"main\" java.lang.OutOfMemoryError: bitwise=true max_abs=0 "
            + "max_rel=0\n\tat x\n");
        assertEquals("false nan", lib("chaos_diff_verdict 0 \"$1\"", crashed), "no summary line");
        assertEquals("false nan", lib("chaos_diff_verdict 0 \"$1\"", log(tmp, "")), "no output");
        assertEquals("false nan", lib("chaos_diff_verdict 0 \"$1\"", tmp.resolve("absent")), "no file");
    }

    /** The line {@code FrameCorrupter} writes to its node's log when its driver damages a received frame. */
    private static final String INJECTED = "troupe: media driver corrupted received UDP data frame 150 (udp-corrupt-nth"
        + " 150): one payload byte of 1376 flipped, from /127.0.0.1:40123\n";

    /** A node's log: a Pekko line, and the JVM's options echoed (which name udp-corrupt-nth but corrupt nothing). */
    private static final String NODE = "02:51:07.114 INFO  o.a.p.cluster.Cluster - Cluster Node"
        + " [pekko://troupe@127.0.0.1:40211] - Started up successfully\n"
        + "java -Dtroupe.transport.udp-corrupt-nth=150 -cp x TroupeCli node\n";

    /**
     * The submitter's fault line for a collective chunk refused by its CRC: the rank's step failed with the root
     * message of the all-reduce that {@code CollectiveAgent} aborted ({@code CollectiveEngine}'s 'aborted (...)
     * during ...').
     */
    private static final String REFUSED_COLLECTIVE = "troupe: fault in epoch 1: rank 1 failed in step 16: aborted"
        + " (a chunk from rank 0 arrived corrupt (BAD_CHUNK_CRC)) during ALL_REDUCE #33 (count=9216, tag=2, group 1"
        + " epoch 1, member 1/2 rank 1); last disk checkpoint step 16 (restart 1)\n";

    /** The same for a pipeline chunk ({@code AeronStageLink}), refused by its MAC where frames are authenticated. */
    private static final String REFUSED_STAGE = "troupe: fault in epoch 2: rank 0 failed in step 21: a gradient chunk"
        + " from rank 1 arrived corrupt (BAD_MAC); last disk checkpoint step 20 (restart 2)\n";

    @Test
    void shouldVouchForACorruptedFrameOnlyWhenADriverInjectedItAndAFaultNamesItRefused(@TempDir Path tmp)
        throws Exception {
        String evidence = "chaos_corruption_evidence \"$1\" \"${@:2}\"; echo \"rc=$?\"";
        Path quiet = log(tmp, NODE);
        Path injected = log(tmp, NODE + INJECTED + NODE);
        Path refusedLog = log(tmp, STARTED + steps(1, 16) + REFUSED_COLLECTIVE + recovered(2, 17, 16) + steps(17, 40)
            + FINISHED);
        assertEquals(INJECTED + REFUSED_COLLECTIVE + "rc=0", lib(evidence, refusedLog, quiet, injected),
            "a driver's corrupted frame and the fault its refusal caused: both lines, as evidence");
        assertEquals(INJECTED + REFUSED_STAGE + "rc=0", lib(evidence, log(tmp, STARTED + steps(1, 21) + REFUSED_STAGE
            + recovered(3, 21, 20) + steps(21, 40) + FINISHED), injected), "a pipeline chunk refused by its MAC");

        Path clean = log(tmp, STARTED + steps(1, 40) + FINISHED);
        assertEquals("rc=1", lib(evidence, clean, quiet, quiet), "no driver corrupted a frame (too few frames, IPC)");
        assertEquals("rc=1", lib(evidence, clean), "no node log at all");
        assertEquals(REFUSED_COLLECTIVE.trim() + "\nrc=1", lib(evidence, refusedLog, quiet),
            "a refusal with no corruption logged by a driver vouches for no injection");
        assertEquals(INJECTED + "rc=2", lib(evidence, clean, injected),
            "a corrupted frame no receiver refused (the job finished without a fault)");
        assertEquals(INJECTED + "rc=2", lib(evidence, log(tmp, STARTED + steps(1, 16) + fault(1, 10)
            + recovered(2, 11, 10) + steps(11, 40) + FINISHED), injected), "a fault for another reason");
        assertEquals(INJECTED + "rc=2", lib(evidence, log(tmp, STARTED + steps(1, 16)
            + "troupe: fault in epoch 1: rank 1 failed in step 16: a chunk from rank 0 arrived corrupt (BAD_HEADER_CRC)"
            + "; last disk checkpoint step 10 (restart 1)\n"), injected), "a reason no chunk check gives");
        assertEquals(INJECTED + "rc=2", lib(evidence, log(tmp, STARTED + steps(1, 16)
            + "12:00:01 WARN job 5f1e epoch 1: fault in step 16: rank 1 failed in step 16: a chunk from rank 0 arrived"
            + " corrupt (BAD_CHUNK_CRC)\n"), injected), "only the submitter's fault lines count");
    }

    private static Path log(Path dir, String text) throws Exception {
        Path p = Files.createTempFile(dir, "launch", ".log");
        Files.writeString(p, text, StandardCharsets.UTF_8);
        return p;
    }

    /** The output of SCRIPT run by bash after sourcing scripts/lib/chaos-logs.sh, with FILES as $1, $2, ... */
    private static String lib(String script, Path... files) throws Exception {
        Path root = Path.of(System.getProperty("user.dir")).getParent();
        List<String> command = new ArrayList<>(List.of("bash", "-c", "source \""
            + root.resolve("scripts/lib/chaos-logs.sh") + "\" && " + script, "chaos-logs"));
        for (Path f : files) {
            command.add(f.toString());
        }
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String result = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "chaos-logs.sh: " + script);
        assertEquals(0, p.exitValue(), "chaos-logs.sh: " + script + ": " + result);
        return result;
    }
}
