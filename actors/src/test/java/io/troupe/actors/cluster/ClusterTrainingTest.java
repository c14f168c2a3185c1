package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.models.train.TrainConfig;
import io.troupe.models.train.Trainer;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Real Pekko cluster nodes on 127.0.0.1 and a real media driver: pipeline training end to end. */
@Timeout(180)
class ClusterTrainingTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static TrainingJob.Builder builder(String layout, String schedule, int steps) {
        return TrainingJob.builder().model("tiny").layout(layout).schedule(schedule).microbatches(2).batchSize(4)
            .steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000).validation(0, 1).device("cpu");
    }

    private static TrainingJob job(String layout, String schedule, int steps) {
        return builder(layout, schedule, steps).build();
    }

    private List<TroupeNode> cluster(int nodes) {
        EmbeddedCluster c = EmbeddedCluster.start(nodes);
        open.add(c);
        return c.nodes();
    }

    @Test
    void shouldMatchSingleDeviceLossWhenPipelinedOverTwoClusterNodes() throws Exception {
        List<TroupeNode> nodes = cluster(2);
        JobHandle h = Troupe.using(nodes.get(0)).submit(job("1x2", "1f1b", 5));
        JobEvent end = h.await(Duration.ofSeconds(120));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        List<JobEvent.StepCompleted> steps = h.steps();
        assertEquals(5, steps.size());

        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, 5, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            for (int i = 0; i < 5; i++) {
                double ref = t.trainStep().loss();
                double got = steps.get(i).loss();
                System.out.printf("step %d: cluster loss %.7f, single-device %.7f%n", i + 1, got, ref);
                assertEquals(ref, got, 1e-5 * ref, "step " + (i + 1));
            }
            // the validation after the last step: the stages' forward-only pass over the same batch
            double refVal = t.validationLoss();
            double gotVal = ((JobEvent.Finished) end).finalValLoss();
            System.out.printf("validation: cluster %.7f, single-device %.7f%n", gotVal, refVal);
            assertEquals(refVal, gotVal, 1e-5 * refVal, "validation loss after the last step");
        }
    }

    /**
     * Chaos, packet loss (DESIGN.md section 9): two nodes with a media driver each, so their workers
     * exchange activations and gradients over UDP, and each driver drops 20% of the UDP data frames it
     * receives. Aeron repairs every loss, so the run loses time, never bytes: the losses are the
     * single-device ones.
     */
    @Test
    void shouldMatchSingleDeviceLossWhenTheUdpBetweenNodesDropsPackets() throws Exception {
        TransportSettings lossy = TransportSettings.defaults().withUdpLossRate(0.2);
        TransportNode ta = TransportNode.launch(lossy, Throwable::printStackTrace);
        open.add(ta);
        TransportNode tb = TransportNode.launch(lossy, Throwable::printStackTrace);
        open.add(tb);
        NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
        TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1).withSeeds(List.of()),
            ConfigFactory.load(), ta);
        open.add(first);
        open.add(TroupeNode.start(base.withRoles(List.of("worker"), 1).withSeeds(List.of(first.hostPort())),
            ConfigFactory.load(), tb));
        JobHandle h = Troupe.using(first).submit(job("1x2", "1f1b", 5));
        JobEvent end = h.await(Duration.ofSeconds(150));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        assertEquals(5, h.steps().size());
        long naks = ta.driverCounter("naks sent") + tb.driverCounter("naks sent");
        System.out.printf("pipeline over lossy UDP: %d NAKs sent%n", naks);
        assertTrue(naks > 0, "no loss was injected and repaired");
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, 5, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            for (JobEvent.StepCompleted s : h.steps()) {
                double ref = t.trainStep().loss();
                assertEquals(ref, s.loss(), 1e-5 * ref, "step " + s.step());
            }
        }
    }

    @Test
    void shouldMatchSingleDeviceLossWithDataAndPipelineParallelOverFourNodes() throws Exception {
        List<TroupeNode> nodes = cluster(4);
        JobHandle h = Troupe.using(nodes.get(0)).submit(job("2x2", "zb-h1", 4));
        JobEvent end = h.await(Duration.ofSeconds(150));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, 4, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            for (JobEvent.StepCompleted s : h.steps()) {
                double ref = t.trainStep().loss();
                System.out.printf("dp2 x pp2 step %d: cluster loss %.7f, single-device %.7f%n", s.step(), s.loss(),
                    ref);
                assertEquals(ref, s.loss(), 1e-5 * ref, "step " + s.step());
            }
        }
    }

    @Test
    void shouldCommitCheckpointsAndResumeOnTheSameTrajectory(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp)
        throws Exception {
        List<TroupeNode> nodes = cluster(2);
        String dir = tmp.resolve("ckpt").toString();
        TrainingJob job = builder("1x2", "1f1b", 6).checkpoints(2, dir).build();
        JobHandle straight = Troupe.using(nodes.get(0)).submit(job);
        assertInstanceOf(JobEvent.Finished.class, straight.await(Duration.ofSeconds(120)));
        for (String step : List.of("step-00000002", "step-00000004", "step-00000006")) {
            java.nio.file.Path c = tmp.resolve("ckpt").resolve(step);
            assertTrue(java.nio.file.Files.isRegularFile(c.resolve("manifest.json")), step + " committed");
            assertTrue(java.nio.file.Files.isRegularFile(c.resolve("shard-g00.bin"))
                && java.nio.file.Files.isRegularFile(c.resolve("shard-g01.bin")), step + " has both stages' shards");
        }
        // As if the job had died after committing step 4: the same job resumes there and repeats steps 5
        // and 6 bit for bit.
        try (var files = java.nio.file.Files.walk(tmp.resolve("ckpt").resolve("step-00000006"))) {
            for (java.nio.file.Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                java.nio.file.Files.delete(p);
            }
        }
        JobHandle resumed = Troupe.using(nodes.get(0)).submit(job);
        assertInstanceOf(JobEvent.Finished.class, resumed.await(Duration.ofSeconds(120)));
        assertEquals(2, resumed.steps().size(), "resumed at step 4: " + resumed.steps());
        assertEquals(5, resumed.steps().get(0).step());
        for (int i = 0; i < 2; i++) {
            assertEquals(straight.steps().get(4 + i).loss(), resumed.steps().get(i).loss(), 0.0, "step " + (5 + i)
                + " bit for bit");
        }
        assertTrue(java.nio.file.Files.isRegularFile(
            tmp.resolve("ckpt").resolve("step-00000006").resolve("manifest.json")));
    }

    @Test
    void shouldRefuseAJobThatCannotRunBeforeAnyWork() throws Exception {
        IllegalArgumentException stages = assertThrows(IllegalArgumentException.class, () -> job("1x3", "1f1b", 2));
        assertTrue(stages.getMessage().contains("stages=3"), stages.getMessage());
        IllegalArgumentException schedule = assertThrows(IllegalArgumentException.class, () -> job("1x2", "zigzag", 2));
        assertTrue(schedule.getMessage().contains("zigzag"), schedule.getMessage());
        // A job that is valid but larger than the cluster is refused by the coordinator.
        List<TroupeNode> nodes = cluster(1);
        TrainingJob tooBig = builder("2x1", "1f1b", 2).stepTimeoutMs(2_000).build();
        JobEvent.Failed few = assertInstanceOf(JobEvent.Failed.class,
            Troupe.using(nodes.get(0)).submit(tooBig).await(Duration.ofSeconds(30)));
        assertTrue(few.reason().contains("needs 2 workers, only 1"), few.reason());
    }
}
