package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.transport.JobIdentity;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The coordinator's plain parts, without an actor system: commits, manifests, membership, layouts, the record. */
class CoordinatorAccountingTest {
    private static final JobIdentity JOB = new JobIdentity(0x77, 2);

    private static CoordinatorActor.StepDone done(int rank, long step, double loss) {
        return new CoordinatorActor.StepDone(rank, JOB, step, loss, 1, 0.5, 1e-3f, 10, 2, 1, WorkerTrace.EMPTY, 0, 0);
    }

    @Test
    void shouldCommitAStepOnlyWhenEveryRankReportedItAndCountOvertakingReportsLater() {
        CommitLedger ledger = new CommitLedger(3, 5);
        assertNull(ledger.offer(done(0, 5, 1.0)));
        assertNull(ledger.offer(done(1, 6, 7.0)), "a report of the next step waits");
        assertNull(ledger.offer(done(0, 5, 1.0)), "a repeat counts once");
        assertNull(ledger.offer(done(1, 5, 2.0)));
        assertNull(ledger.offer(done(0, 4, 9.0)), "a committed step's report is ignored");
        assertEquals(List.of(2), ledger.missing());
        CommitLedger.Committed c = ledger.offer(done(2, 5, 3.0));
        assertNotNull(c);
        assertEquals(5, c.step());
        assertEquals(2.0, c.loss(), 1e-12, "mean over the reported losses");
        assertEquals(30, c.busyMs(), 1e-12);
        assertEquals(6, ledger.nextStep());
        assertNull(ledger.drainEarly(), "one of three reports of step 6 is in");
        assertNull(ledger.offer(done(0, 6, 7.0)));
        CommitLedger.Committed six = ledger.offer(done(2, 6, 7.0));
        assertEquals(6, six.step());
        assertThrows(IllegalArgumentException.class, () -> ledger.offer(done(3, 7, 0)));
    }

    @Test
    void shouldDrainAWholeOvertakingStepAndKeepTheStepAfter() {
        CommitLedger ledger = new CommitLedger(2, 0);
        ledger.offer(done(1, 1, 1));
        ledger.offer(done(1, 2, 1));
        ledger.offer(done(0, 1, 1));
        assertNull(ledger.offer(done(0, 0, 1)));
        assertEquals(0, ledger.offer(done(1, 0, 1)).step());
        assertEquals(1, ledger.drainEarly().step());
        assertNull(ledger.drainEarly());
        assertEquals(2, ledger.offer(done(0, 2, 1)).step(), "rank 1's step 2 report was kept");
    }

    @Test
    void shouldKeepTracesOfTheTracedStepOnly() {
        CommitLedger ledger = new CommitLedger(2, 0);
        ledger.traceCurrent();
        ledger.offer(done(0, 0, 1));
        CommitLedger.Committed c = ledger.offer(done(1, 0, 1));
        assertEquals(2, c.traces().length);
        ledger.offer(done(0, 1, 1));
        assertEquals(0, ledger.offer(done(1, 1, 1)).traces().length);
    }

    @Test
    void shouldBuildTheManifestOnceEveryRankWroteItsShardsInNameOrder() {
        ManifestBuilder b = new ManifestBuilder(3, 20);
        assertFalse(b.add(2, new String[0], new long[0], new long[0]));
        assertFalse(b.add(1, new String[] {"shard-g01.bin"}, new long[] {10}, new long[] {0xabc}));
        assertThrows(IllegalStateException.class, () -> b.manifest(1, 8, "1x2", GptConfig.tiny(), "x"));
        assertEquals(List.of(0), b.missing());
        assertTrue(b.add(0, new String[] {"shard-g00.bin"}, new long[] {12}, new long[] {0xdef}));
        Manifest m = b.manifest(1, 8, "1x2", GptConfig.tiny(), "x");
        assertEquals(20, m.step());
        assertEquals(List.of("shard-g00.bin", "shard-g01.bin"),
            m.files().stream().map(Manifest.FileEntry::name).toList());
        assertThrows(IllegalArgumentException.class, () -> b.add(1, new String[] {"a"}, new long[0], new long[0]));
    }

    private static WorkerDescription worker(String node, int local) {
        return new WorkerDescription(node, "ep", "cep", "cpu", local);
    }

    @Test
    void shouldOrderWorkersByNodeAndIndexAndLeaveUnreachableNodesOut() {
        Membership<String> m = new Membership<>();
        m.add("c0", worker("pekko://t@h:3", 0));
        m.add("a1", worker("pekko://t@h:1", 1));
        m.add("a0", worker("pekko://t@h:1", 0));
        m.add("b0", worker("pekko://t@h:2", 0));
        assertEquals(List.of("a0", "a1", "b0", "c0"), m.usable());
        m.unreachable("pekko://t@h:2");
        assertEquals(List.of("a0", "a1", "c0"), m.usable());
        assertEquals(4, m.size(), "unreachable is not gone");
        m.reachable("pekko://t@h:2");
        assertEquals(List.of(2), m.ranksOn(List.of("a0", "a1", "b0"), "pekko://t@h:2"));
        assertEquals(List.of("a0", "a1"), m.removeNode("pekko://t@h:1"));
        assertEquals(List.of("b0", "c0"), m.usable());
    }

    @Test
    void shouldKeepTheLayoutWhenWorkersSufficeAndOtherwiseShrinkDpKeepingTheGlobalBatch() {
        assertEquals(new LayoutPlanner.Plan(2, 2, 1, 4), LayoutPlanner.plan("2x2", 1, 4, 5));
        LayoutPlanner.Plan shrunk = LayoutPlanner.plan("2x2", 1, 4, 3);
        assertEquals(new LayoutPlanner.Plan(1, 2, 1, 8), shrunk, "one replica runs both replicas' micro-batches");
        assertEquals("1x2x1", shrunk.layout());
        assertEquals(new LayoutPlanner.Plan(2, 1, 1, 3), LayoutPlanner.plan("3x1", 1, 2, 2),
            "3 replicas x 2 micro-batches = 6 = 2 replicas x 3");
        assertEquals(new LayoutPlanner.Plan(1, 1, 1, 3), LayoutPlanner.plan("3x1", 1, 1, 2),
            "2 does not divide 3 micro-batches: one replica runs all three");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> LayoutPlanner.plan("2x2", 1, 4, 1));
        assertTrue(e.getMessage().contains("pp=2") && e.getMessage().contains("only 1"), e.getMessage());
    }

    @Test
    void shouldAdmitOnlyTheCurrentIdentityAndCountTheRest() {
        ControlGate g = new ControlGate();
        assertFalse(g.admit(JOB), "no job assigned yet");
        assertTrue(g.admitAssignment(JOB));
        assertTrue(g.admit(JOB));
        assertFalse(g.admit(new JobIdentity(0x77, 1)));
        assertFalse(g.admit(new JobIdentity(0x78, 2)));
        assertFalse(g.admitAssignment(new JobIdentity(0x77, 1)), "epochs never go back");
        assertFalse(g.admitAssignment(JOB), "the same epoch is not assigned twice");
        assertTrue(g.admitAbort(JOB.nextEpoch()));
        assertFalse(g.admitAbort(new JobIdentity(0x78, 9)));
        assertEquals(2, g.refused(JobIdentity.Verdict.STALE_EPOCH));
        assertEquals(3, g.refused(JobIdentity.Verdict.OTHER_JOB));
        assertTrue(g.admitAssignment(JOB.nextEpoch()));
        assertEquals(JOB.nextEpoch(), g.current());
    }

    @Test
    void shouldWriteTheJobRecordAtomicallyAndReadItBack(@TempDir Path dir) throws Exception {
        JobRequest spec = new JobRequest("tiny", "2x2", 1, "1f1b", 4, 16, 30, 3e-3f, 3e-4f, 2, 1f, 9, "", "", 10,
            dir.toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none", true, 2, 3);
        JobRecord r = new JobRecord(JOB, JobRecord.State.RUNNING, spec, "2x2", 4, 0, "", "pekko://t@h:1/user/x#1",
            "pekko://t@h:2/user/jobs/job-0#2", List.of());
        r.write(dir);
        JobRecord later = r.withCommit(10, dir.resolve("step-00000010").toString())
            .withFault(new JobRecord.Fault(2, 1_700_000_000_000L, "member \"x\" removed")) // step unknown
            .withFault(new JobRecord.Fault(2, 1_700_000_060_000L, 12, "rank 1 failed"))
            .withEpoch(JOB.nextEpoch()).withLayout("1x2x1", 8);
        later.write(dir);
        assertFalse(Files.exists(dir.resolve("job.json.tmp")), "no temporary file left");
        JobRecord back = JobRecord.read(dir);
        assertEquals(later, back);
        assertEquals(2, back.restarts());
        assertEquals(List.of(-1L, 12L), back.faults().stream().map(JobRecord.Fault::step).toList());
        assertEquals(spec, back.spec());
        assertTrue(Files.readString(dir.resolve("job.json")).contains("\"job_id\": \"00000077\""));
        assertNull(JobRecord.read(dir.resolve("none")));
        assertThrows(IllegalArgumentException.class, () -> later.withEpoch(JOB));
        // a value damaged into another valid one (the last committed step, a spec setting) is refused by the record's
        // own CRC32C, naming the file, not carried on
        String json = Files.readString(dir.resolve("job.json"));
        for (String[] damage : new String[][] {{"\"last_committed_step\": 10", "\"last_committed_step\": 19"},
            {"\"steps\": 30", "\"steps\": 38"}, {"\"step\": 12", "\"step\": 13"}}) {
            assertTrue(json.contains(damage[0]), damage[0] + " in " + json);
            Files.writeString(dir.resolve("job.json"), json.replace(damage[0], damage[1]));
            CheckpointException e = assertThrows(CheckpointException.class, () -> JobRecord.read(dir), damage[1]);
            assertTrue(e.getMessage().contains("job.json") && e.getMessage().contains("does not match its own CRC32C"),
                e.getMessage());
        }
    }

    /**
     * A planned departure and a coordinator's hand-over are written only where they are (a record without them
     * reads, and checks against its CRC32C, as one written before they existed), read back as written, and held by
     * the CRC like every other value.
     */
    @Test
    void shouldRecordPlannedDeparturesAndAHandOver(@TempDir Path dir) throws Exception {
        JobRequest spec = new JobRequest("tiny", "2x2", 1, "1f1b", 4, 16, 30, 3e-3f, 3e-4f, 2, 1f, 9, "", "", 10,
            dir.toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none", true, 2, 3);
        JobRecord plain = new JobRecord(JOB, JobRecord.State.RUNNING, spec, "2x2", 4, 0, "", "pekko://t@h:1/user/x#1",
            "", List.of(new JobRecord.Fault(1, 1_700_000_000_000L, 3, "rank 1 failed")));
        plain.write(dir);
        String plainJson = Files.readString(dir.resolve("job.json"));
        assertFalse(plainJson.contains("planned") || plainJson.contains("handover"), plainJson);
        assertEquals(plain, JobRecord.read(dir));

        JobRecord handing = plain.withFault(new JobRecord.Fault(2, 1_700_000_060_000L, 5, "member left", true))
            .withHandover("pekko://troupe@127.0.0.1:25520");
        handing.write(dir);
        JobRecord back = JobRecord.read(dir);
        assertEquals(handing, back);
        assertEquals(List.of(false, true), back.faults().stream().map(JobRecord.Fault::planned).toList());
        assertEquals("pekko://troupe@127.0.0.1:25520", back.handover());
        assertTrue(back.faults().get(1).toString().endsWith("member left (planned)"), back.faults().toString());
        assertEquals(plain.withFault(handing.faults().get(1)), back.withHandover(""), "cleared by a new incarnation");

        String json = Files.readString(dir.resolve("job.json"));
        for (String[] damage : new String[][] {{"\"planned\": true", "\"planned\": false"},
            {"25520\"", "25521\""}}) {
            assertTrue(json.contains(damage[0]), damage[0] + " in " + json);
            Files.writeString(dir.resolve("job.json"), json.replace(damage[0], damage[1]));
            CheckpointException e = assertThrows(CheckpointException.class, () -> JobRecord.read(dir), damage[1]);
            assertTrue(e.getMessage().contains("does not match its own CRC32C"), e.getMessage());
        }
    }

    @Test
    void shouldDoubleTheBackoffUpToItsCap() {
        RecoverySettings s = RecoverySettings.defaults();
        assertEquals(3, s.maxRestarts());
        assertEquals(Duration.ofMillis(500), s.backoffBefore(1));
        assertEquals(Duration.ofMillis(1000), s.backoffBefore(2));
        assertEquals(Duration.ofSeconds(8), s.backoffBefore(30));
        assertThrows(IllegalArgumentException.class, () -> new RecoverySettings(-1, Duration.ZERO, Duration.ZERO, 0,
            Path.of("x"), Duration.ZERO, Duration.ZERO));
    }
}
