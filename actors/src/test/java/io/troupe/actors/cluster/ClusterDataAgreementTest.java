package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.data.CorpusCache;
import io.troupe.models.data.DataFingerprint;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job's data path names a file on every node, and two hosts' copies can differ: real nodes on 127.0.0.1, the second
 * one's worker reading another file at the job's path
 * ({@link EmbeddedCluster#addWorker(java.util.function.UnaryOperator)}), as another host's copy. Ranks that read
 * different bytes, or bytes other than those the submitter read, fail the job before its first step, naming both
 * ranks (or the rank and the submitter), their hosts and both fingerprints; data missing on one node fails it at
 * once. Neither is a fault to recover from: no restart, the record lists the one refusal and says failed.
 */
@Timeout(120)
class ClusterDataAgreementTest {
    private static final Duration WAIT = Duration.ofSeconds(90);

    @TempDir
    Path tmp;

    @Test
    void shouldFailBeforeAnyStepWhenTwoNodesHoldDifferentBytesAtTheDataPath() throws Exception {
        Path data = corpus("data.txt");
        byte[] other = Files.readAllBytes(data);
        other[other.length / 2] ^= 1;                    // the same size, one bit apart
        Path otherCopy = Files.write(Files.createDirectories(tmp.resolve("other-host")).resolve("data.txt"), other);
        DataFingerprint here = DataFingerprint.of(data);
        // as the coordinator names it: the job's data path, the other copy's size and hash
        DataFingerprint there = DataFingerprint.fromToken(data.toString(), DataFingerprint.of(otherCopy).token());
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1)) {
            cluster.addWorker(p -> p.equals(data) ? otherCopy : p);
            Path records = tmp.resolve("job");
            JobHandle h = Troupe.using(cluster.get(0)).submit(job("2x1", data, records).build());
            JobEvent.Failed failed = assertInstanceOf(JobEvent.Failed.class, h.await(WAIT));
            String why = failed.reason();
            assertTrue(why.contains("the data differs between ranks: rank 0 on ") && why.contains(", rank 1 on "),
                why);
            for (TroupeNode n : cluster.nodes()) {
                assertTrue(why.contains("@" + n.hostPort() + " read " + data + " ("), "names each host: " + why);
            }
            assertTrue(why.contains(here.describe()) && why.contains(there.describe()), "names both: " + why);
            assertRefusedAtOnce(h, records, why);
        }
    }

    @Test
    void shouldFailWhenTheRanksReadOtherBytesThanTheSubmitter() throws Exception {
        Path data = corpus("data.txt");
        Path submitted = Files.write(tmp.resolve("submitted.txt"), Files.readAllBytes(corpus("longer.txt")));
        DataFingerprint expected = DataFingerprint.of(submitted);
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1)) {
            Path records = tmp.resolve("job");
            JobHandle h = Troupe.using(cluster.get(0)).submit(job("1x1", data, records).expectedData(expected)
                .build());
            String why = assertInstanceOf(JobEvent.Failed.class, h.await(WAIT)).reason();
            assertTrue(why.contains("the data differs from the submitter's: rank 0 on ")
                && why.contains(" read " + DataFingerprint.of(data).describe())
                && why.contains("the submitter read " + data + " (" + expected.sizeBytes() + " bytes, sha256 "
                    + expected.hash().substring(0, 12) + ")"), why);
            assertRefusedAtOnce(h, records, why);
        }
    }

    @Test
    void shouldFailAtOnceWhenTheDataIsMissingOnOneNode() throws Exception {
        Path data = corpus("data.txt");
        Path absent = tmp.resolve("not-on-this-host").resolve("data.txt");
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1)) {
            cluster.addWorker(p -> p.equals(data) ? absent : p);
            Path records = tmp.resolve("job");
            JobHandle h = Troupe.using(cluster.get(0)).submit(job("2x1", data, records).build());
            String why = assertInstanceOf(JobEvent.Failed.class, h.await(WAIT)).reason();
            assertTrue(why.contains("cannot take its assignment: data: no such file or directory: " + absent), why);
            assertRefusedAtOnce(h, records, why);
        }
    }

    @Test
    void shouldTrainWhenEveryNodeHoldsTheSameBytes() throws Exception {
        Path data = corpus("data.txt");
        Path copy = Files.write(tmp.resolve("same-bytes-elsewhere.txt"), Files.readAllBytes(data));
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1)) {
            cluster.addWorker(p -> p.equals(data) ? copy : p);
            JobHandle h = Troupe.using(cluster.get(0)).submit(job("2x1", data, tmp.resolve("job"))
                .expectedData(DataFingerprint.of(data)).build());
            assertInstanceOf(JobEvent.Finished.class, h.await(WAIT));
            assertEquals(2, h.steps().size());
            // the job ended: its workers free its epochs, and the nodes keep none of its data mapped
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (CorpusCache.shared().held() != null) {
                assertTrue(System.nanoTime() < end, "the ended job's data is still held: "
                    + CorpusCache.shared().held());
                Thread.sleep(20);
            }
        }
    }

    /**
     * {@code troupe submit} from a client that holds a copy at the job's data path sends that copy's fingerprint: the
     * nodes' copy, one bit apart, fails the job before its first step, naming both; from a client with no copy there
     * the ranks are compared only with each other, and the job trains.
     */
    @Test
    void shouldCompareTheNodesCopyWithTheSubmittingClientsOwnWhenItHoldsOne() throws Exception {
        Path here = corpus("data.txt");
        byte[] other = Files.readAllBytes(here);
        other[other.length / 2] ^= 1;
        Path nodesCopy = Files.write(Files.createDirectories(tmp.resolve("on-the-nodes")).resolve("data.txt"), other);
        Path notHere = tmp.resolve("not-on-this-client").resolve("data.txt");
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1, p -> p.equals(here) || p.equals(notHere) ? nodesCopy
            : p)) {
            String[] noCopy = submit(cluster.get(0), notHere, tmp.resolve("run-no-copy"));
            assertEquals("0", noCopy[0], "no copy here: the job trains\n" + noCopy[1] + noCopy[2]);

            String[] differs = submit(cluster.get(0), here, tmp.resolve("run-differs"));
            assertEquals("5", differs[0], differs[1] + differs[2]);
            DataFingerprint nodes = DataFingerprint.fromToken(here.toString(), DataFingerprint.of(nodesCopy).token());
            String why = differs[2];
            assertTrue(why.contains("the data differs from the submitter's: rank 0 on ")
                && why.contains(" read " + nodes.describe() + ", the submitter read "
                    + DataFingerprint.of(here).describe()), why);
            assertFalse(differs[1].contains("step     1/"), "no step trained: " + differs[1]);
        }
    }

    /** Runs {@code troupe submit} of a 2-step job in this process: its exit code, stdout and stderr. */
    private static String[] submit(TroupeNode node, Path data, Path runDir) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(new String[] {"submit", "--cluster", node.hostPort(), "--connect-timeout-s", "30",
            "--timeout-s", "90", "--model", "tiny", "--layout", "1x1", "--steps", "2", "--batch", "4",
            "--microbatches", "2", "--eval-interval", "0", "--data", data.toString(), "--out", runDir.toString()},
            new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new String[] {Integer.toString(code), out.toString(StandardCharsets.UTF_8),
            err.toString(StandardCharsets.UTF_8)};
    }

    private static TrainingJob.Builder job(String layout, Path data, Path checkpoints) {
        return TrainingJob.builder().model("tiny").layout(layout).microbatches(2).batchSize(4).steps(2)
            .validation(0, 1).stepTimeoutMs(20_000).data(data.toString()).checkpoints(1000, checkpoints.toString());
    }

    /** Random printable bytes, enough for the tiny model's windows in both splits. */
    private Path corpus(String name) throws Exception {
        byte[] b = new byte[name.startsWith("longer") ? 24_000 : 16_000];
        Random r = new Random(name.hashCode());
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (' ' + r.nextInt(90));
        }
        Path dir = tmp.resolve("corpora");
        Files.createDirectories(dir);
        return Files.write(dir.resolve(name), b);
    }

    /**
     * The job ended on its first refusal: no step, no recovery told to the submitter, and its record says failed with
     * that refusal as its one fault.
     */
    private static void assertRefusedAtOnce(JobHandle h, Path records, String why) {
        List<JobEvent> events = new CopyOnWriteArrayList<>();
        h.onEvent(events::add);
        assertTrue(h.steps().isEmpty(), "no step trained: " + h.steps());
        assertTrue(events.stream().noneMatch(e -> e instanceof JobEvent.Recovering), "no restart: " + events);
        JobRecord record = JobRecord.read(records);
        assertNotNull(record, "job.json in " + records);
        assertEquals(JobRecord.State.FAILED, record.state());
        assertEquals(1, record.faults().size(), () -> "one fault: " + record.faults());
        assertTrue(why.endsWith(record.faults().get(0).reason()), () -> why + " vs " + record.faults());
    }
}
