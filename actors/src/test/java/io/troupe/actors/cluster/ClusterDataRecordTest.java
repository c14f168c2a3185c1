package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cli.TroupeCli;
import io.troupe.models.data.DataFingerprint;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A cluster job records the data it trained on as {@code data.json} beside its job record, and a job that continues
 * it ({@code troupe submit --resume}, or a job submitted through the Java API into its checkpoint directory) must read
 * the same bytes: real nodes on 127.0.0.1 whose workers read the job's data at a path this client does not hold, so
 * the check is the cluster's alone (the client sends no fingerprint of its own).
 */
@Timeout(240)
class ClusterDataRecordTest {
    private static final Duration WAIT = Duration.ofSeconds(90);

    @TempDir
    Path tmp;

    @Test
    void shouldRecordTheDataBesideTheJobRecordAndRefuseToContinueTheRunOnOtherBytes() throws Exception {
        Path notHere = tmp.resolve("not-on-this-client").resolve("data.txt");
        Path nodesCopy = corpus(tmp.resolve("on-the-nodes").resolve("data.txt"), 1);
        Path run = tmp.resolve("run");
        Path record = run.resolve("checkpoints").resolve(DataFingerprint.FILE_NAME);
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1, p -> p.equals(notHere) ? nodesCopy : p)) {
            TroupeNode node = cluster.get(0);
            String[] first = submit(node, notHere, 2, "--out", run.toString());
            assertEquals("0", first[0], first[1] + first[2]);
            DataFingerprint trained = DataFingerprint.of(nodesCopy);
            // the job's data path as its source, the bytes the nodes read
            DataFingerprint expected = new DataFingerprint(notHere.toString(), trained.sizeBytes(), trained.hashKind(),
                trained.hash());
            assertEquals(expected, DataFingerprint.read(record), "data.json beside job.json");
            assertTrue(Files.isRegularFile(run.resolve("checkpoints").resolve(JobRecord.FILE)));
            assertEquals(expected.toJson(), Files.readString(record), "written as DataFingerprint writes it");

            String[] same = submit(node, notHere, 4, "--resume", run.toString(), "--out", tmp.resolve("b").toString());
            assertEquals("0", same[0], same[1] + same[2]);
            assertTrue(same[1].contains("step     3/4") && !same[1].contains("step     1/"),
                "continues from step 2: " + same[1]);

            // another file at the same path on the nodes
            Path other = corpus(tmp.resolve("other.txt"), 2);
            Files.move(other, nodesCopy, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            DataFingerprint now = DataFingerprint.fromToken(notHere.toString(), DataFingerprint.of(nodesCopy).token());
            assertFalse(now.sameData(expected));
            String[] differs = submit(node, notHere, 6, "--resume", run.toString(), "--out",
                tmp.resolve("c").toString());
            assertEquals("5", differs[0], differs[1] + differs[2]);
            String why = differs[2];
            assertTrue(why.contains("the data differs from the data this run trained on: the record " + record
                + " says it trained on " + expected.describe() + ", the ranks read " + now.describe()), why);
            assertFalse(differs[1].contains("step     5/"), "no step trained: " + differs[1]);
            assertEquals(expected, DataFingerprint.read(record), "the run's record is kept");
            JobRecord job = JobRecord.read(run.resolve("checkpoints"));
            assertEquals(JobRecord.State.FAILED, job.state());
            assertEquals(4, job.lastCommittedStep());

            // the Java API: a job submitted into that checkpoint directory continues its commit, and is held alike
            JobHandle h = Troupe.using(node).submit(TrainingJob.builder().model("tiny").layout("1x1").microbatches(2)
                .batchSize(4).steps(6).validation(0, 1).data(notHere.toString())
                .checkpoints(1000, run.resolve("checkpoints").toAbsolutePath().toString()).build());
            String api = assertInstanceOf(JobEvent.Failed.class, h.await(WAIT)).reason();
            assertTrue(api.contains(expected.describe()) && api.contains(now.describe()), api);
            assertTrue(h.steps().isEmpty(), "no step trained: " + h.steps());
        }
    }

    /**
     * A file named {@code data.json} beside a job's checkpoint directory (a user's own JSON, not a record) is not the
     * run's record: a job continuing that directory's commit, whose record is gone, trains on and records its data
     * afresh.
     */
    @Test
    void shouldTakeNoDataJsonOutsideTheJobsRecordForTheRunsRecord() throws Exception {
        Path data = corpus(tmp.resolve("data.txt"), 3);
        Path work = Files.createDirectories(tmp.resolve("work"));
        Path ckpt = work.resolve("ckpt");
        Files.writeString(work.resolve(DataFingerprint.FILE_NAME), "{\"users\": [1, 2, 3]}\n");
        try (EmbeddedCluster cluster = EmbeddedCluster.start(1)) {
            TroupeNode node = cluster.get(0);
            for (int steps : new int[] {2, 4}) {
                JobHandle h = Troupe.using(node).submit(TrainingJob.builder().model("tiny").layout("1x1")
                    .microbatches(2).batchSize(4).steps(steps).validation(0, 1).data(data.toString())
                    .checkpoints(2, ckpt.toString()).build());
                assertInstanceOf(JobEvent.Finished.class, h.await(WAIT), "job of " + steps + " steps");
                assertTrue(DataFingerprint.read(ckpt.resolve(DataFingerprint.FILE_NAME)).sameData(
                    DataFingerprint.of(data)), "recorded beside job.json");
                Files.delete(ckpt.resolve(DataFingerprint.FILE_NAME)); // the run's record gone, the user's file kept
            }
        }
    }

    /** Runs {@code troupe submit} of a tiny job of {@code steps} steps in this process: exit code, stdout, stderr. */
    private static String[] submit(TroupeNode node, Path data, int steps, String... more) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        String[] base = {"submit", "--cluster", node.hostPort(), "--connect-timeout-s", "30", "--timeout-s", "90",
            "--model", "tiny", "--layout", "1x1", "--steps", Integer.toString(steps), "--batch", "4",
            "--microbatches", "2", "--eval-interval", "0", "--checkpoint-interval", "2", "--data", data.toString()};
        String[] args = java.util.Arrays.copyOf(base, base.length + more.length);
        System.arraycopy(more, 0, args, base.length, more.length);
        int code = TroupeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
        return new String[] {Integer.toString(code), out.toString(StandardCharsets.UTF_8),
            err.toString(StandardCharsets.UTF_8)};
    }

    /** Random printable bytes, enough for the tiny model's windows in both splits. */
    private static Path corpus(Path file, int seed) throws Exception {
        byte[] b = new byte[16_000];
        Random r = new Random(seed);
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (' ' + r.nextInt(90));
        }
        Files.createDirectories(file.getParent());
        return Files.write(file, b);
    }
}
