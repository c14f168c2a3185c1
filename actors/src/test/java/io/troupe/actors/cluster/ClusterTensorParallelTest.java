package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

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
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Tensor parallelism on the cluster engine: real Pekko nodes on 127.0.0.1 and a real media driver,
 * each tp group's collectives over the data plane; the losses are the single device's.
 */
@Timeout(240)
class ClusterTensorParallelTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private List<TroupeNode> cluster(int nodes) {
        EmbeddedCluster c = EmbeddedCluster.start(nodes);
        open.add(c);
        return c.nodes();
    }

    private void trainAndCompare(String layout, int nodes, int steps) throws Exception {
        trainAndCompare(layout, nodes, steps, false, "1f1b");
    }

    private void trainAndCompare(String layout, int nodes, int steps, boolean sequenceParallel, String schedule)
        throws Exception {
        List<TroupeNode> cluster = cluster(nodes);
        TrainingJob job = TrainingJob.builder().model("tiny").layout(layout).schedule(schedule).microbatches(2)
            .batchSize(4).steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000)
            .validation(0, 1).device("cpu").sequenceParallel(sequenceParallel).build();
        JobHandle h = Troupe.using(cluster.get(0)).submit(job);
        JobEvent end = h.await(Duration.ofSeconds(200));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        assertEquals(steps, h.steps().size());
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, steps, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            for (JobEvent.StepCompleted s : h.steps()) {
                double ref = t.trainStep().loss();
                System.out.printf("%s step %d: cluster loss %.7f, single-device %.7f%n", layout, s.step(), s.loss(),
                    ref);
                assertEquals(ref, s.loss(), 1e-5 * ref, layout + " step " + s.step());
            }
        }
    }

    /**
     * Checkpoints written by tp members (one shard file per stage and member) resume under a layout
     * without tp, on the trajectory of the uninterrupted run.
     */
    @Test
    void shouldResumeATensorParallelCheckpointWithoutTensorParallelism(@org.junit.jupiter.api.io.TempDir
                                                                       java.nio.file.Path tmp) throws Exception {
        List<TroupeNode> nodes = cluster(2);
        String dir = tmp.resolve("ckpt").toString();
        TrainingJob split = TrainingJob.builder().model("tiny").layout("1x1x2").schedule("1f1b").microbatches(2)
            .batchSize(4).steps(6).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000).validation(0, 1)
            .device("cpu").checkpoints(2, dir).build();
        assertInstanceOf(JobEvent.Finished.class,
            Troupe.using(nodes.get(0)).submit(split).await(Duration.ofSeconds(120)));
        java.nio.file.Path step4 = tmp.resolve("ckpt").resolve("step-00000004");
        org.junit.jupiter.api.Assertions.assertTrue(
            java.nio.file.Files.isRegularFile(step4.resolve("shard-g00-t00.bin"))
            && java.nio.file.Files.isRegularFile(step4.resolve("shard-g00-t01.bin")), "one shard per tp member");
        // As if the job had died after committing step 4: the same recipe resumes there as 1x2 (no tp).
        try (var files = java.nio.file.Files.walk(tmp.resolve("ckpt").resolve("step-00000006"))) {
            for (java.nio.file.Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                java.nio.file.Files.delete(p);
            }
        }
        TrainingJob whole = TrainingJob.builder().model("tiny").layout("1x2").schedule("1f1b").microbatches(2)
            .batchSize(4).steps(6).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000).validation(0, 1)
            .device("cpu").checkpoints(2, dir).build();
        JobHandle resumed = Troupe.using(nodes.get(0)).submit(whole);
        assertInstanceOf(JobEvent.Finished.class, resumed.await(Duration.ofSeconds(120)));
        assertEquals(2, resumed.steps().size(), "resumed at step 4: " + resumed.steps());
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 1, 6, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        try (CpuDevice dev = new CpuDevice(1); Trainer t = new Trainer(tc, dev, Corpora.builtIn())) {
            double[] ref = new double[6];
            for (int i = 0; i < 6; i++) {
                ref[i] = t.trainStep().loss();
            }
            for (JobEvent.StepCompleted s : resumed.steps()) {
                double r = ref[(int) s.step() - 1];
                System.out.printf("1x1x2 checkpoint resumed as 1x2, step %d: loss %.7f, single-device %.7f%n", s.step(),
                    s.loss(), r);
                assertEquals(r, s.loss(), 1e-5 * r, "step " + s.step());
            }
        }
    }

    @Test
    void shouldMatchSingleDeviceLossWithTensorParallelismOverTwoNodes() throws Exception {
        trainAndCompare("1x1x2", 2, 5);
    }

    /**
     * The cluster's tp members overlap their input-gradient all-reduces with weight gradients over the
     * data plane; the in-process engine with the overlap off (B then W) gives bitwise the same losses.
     */
    @Test
    void shouldTrainBitwiseAsTheInProcessEngineWithoutTheTpOverlap() throws Exception {
        int steps = 3;
        List<TroupeNode> cluster = cluster(2);
        TrainingJob job = TrainingJob.builder().model("tiny").layout("1x1x2").schedule("1f1b").microbatches(2)
            .batchSize(4).steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000)
            .validation(0, 1).device("cpu").build();
        JobHandle h = Troupe.using(cluster.get(0)).submit(job);
        JobEvent end = h.await(Duration.ofSeconds(200));
        assertInstanceOf(JobEvent.Finished.class, end, "job ended with " + end);
        // The last step's trace: each rank's tp collectives on a track of their own, the backward's overlapped.
        List<JobEvent.StepTrace> traces = new ArrayList<>();
        h.onEvent(e -> {
            if (e instanceof JobEvent.StepTrace t) {
                synchronized (traces) {
                    traces.add(t);
                }
            }
        });
        synchronized (traces) {
            org.junit.jupiter.api.Assertions.assertFalse(traces.isEmpty(), "the last step was traced");
            long overlapped = traces.get(traces.size() - 1).timeline().tracks().stream()
                .filter(k -> k.name().endsWith("tp collectives"))
                .flatMap(k -> k.intervals().stream())
                .filter(i -> i.name().equals("tp all-reduce (overlapped)") && i.args().containsKey("wait_us"))
                .count();
            // two ranks x two micro-batches x (lm_head + fc and qkv of each of tiny's blocks)
            assertEquals(2 * 2 * (1 + 2 * GptConfig.tiny().nLayer()), overlapped, "overlapped tp all-reduces traced");
        }
        TrainConfig tc = new TrainConfig(GptConfig.tiny(), 4, 2, steps, 3e-3f, 3e-4f, 2, 1.0f, 5, 0, 1, 0,
            AdamWConfig.defaults());
        io.troupe.models.parallel.Layout layout = io.troupe.models.parallel.Layout.parse("1x1x2", 1);
        io.troupe.actors.engine.PipelineJobSpec spec = new io.troupe.actors.engine.PipelineJobSpec(tc, layout,
            "1f1b", 2, io.troupe.models.parallel.StagePartition.balanced(GptConfig.tiny(), 1), 1, 30_000);
        try (io.troupe.actors.engine.LocalPipelineEngine local = new io.troupe.actors.engine.LocalPipelineEngine(spec,
            Corpora.builtIn())) {
            for (int t = 0; t < 2; t++) {
                ((io.troupe.models.gpt.Gpt) local.stage(0, 0, t)).overlapTensorParallel(false);
            }
            for (JobEvent.StepCompleted s : h.steps()) {
                double ref = local.trainStep().step().loss();
                System.out.printf("1x1x2 step %d: cluster (tp overlap on) loss %.9f, in-process (overlap off) %.9f%n",
                    s.step(), s.loss(), ref);
                assertEquals(ref, s.loss(), 0.0, "step " + s.step());
            }
        }
    }

    /**
     * Sequence parallelism on the cluster engine: the residual stream split by tokens over each
     * stage's tp pair, activations crossing the pipeline as token slices, the replicated LayerNorm
     * gradients summed over tp after the step.
     */
    @Test
    void shouldMatchSingleDeviceLossWithSequenceParallelismOverTwoStagesOfTwo() throws Exception {
        trainAndCompare("1x2x2", 4, 4, true, "1f1b");
    }

    /**
     * The adaptive schedule picks actions on arrival; each stage's tp leader decides and its member
     * follows over the data plane, so both issue the same collectives in the same order.
     */
    @Test
    void shouldMatchSingleDeviceLossUnderTheAdaptiveScheduleWithTensorParallelism() throws Exception {
        trainAndCompare("1x2x2", 4, 4, false, "adaptive");
    }

    /** Eight embedded nodes: a minute on a loaded two-core machine, so in the full suite only. */
    @Test
    @org.junit.jupiter.api.Tag("slow")
    void shouldMatchSingleDeviceLossWithAllThreeAxesOverEightNodes() throws Exception {
        trainAndCompare("2x2x2", 8, 4);
    }
}
