package io.troupe.actors.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.models.gpt.GptConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class TrainingJobTest {

    /** The builder's defaults are reference.conf's troupe.train section, derived settings by the CLI's rules. */
    @Test
    void shouldTakeEveryDefaultFromReferenceConf() {
        Config t = ConfigFactory.defaultReference().getConfig("troupe.train");
        JobRequest r = TrainingJob.builder().build().request();
        assertEquals(t.getString("model"), r.model());
        assertEquals(t.getString("layout"), r.layout());
        assertEquals(t.getString("schedule"), r.schedule());
        assertEquals(t.getInt("steps"), r.steps());
        assertEquals((float) t.getDouble("lr"), r.lr());
        assertEquals((float) t.getDouble("min-lr"), r.minLr());
        assertEquals((float) t.getDouble("grad-clip"), r.gradClip());
        assertEquals(t.getLong("seed"), r.seed());
        assertEquals(t.getInt("eval-interval"), r.evalInterval());
        assertEquals(t.getInt("eval-batches"), r.evalBatches());
        assertEquals(t.getInt("checkpoint-interval"), r.checkpointInterval());
        assertEquals(t.getString("device"), r.device());
        assertEquals(t.getString("data"), r.dataPath());
        assertEquals(t.getString("partition"), r.partition());
        assertEquals(t.getLong("step-timeout-ms"), r.stepTimeoutMs());
        assertEquals(t.getLong("bucket-kib") * 1024, r.bucketBytes());
        // Derived: warm-up -1 = 10% of steps; batch 0 = the preset's; micro-batches 0 = min(2 pp, rows per replica).
        assertEquals(t.getInt("warmup-steps"), r.warmupSteps());
        assertEquals(0, t.getInt("batch-size"));
        assertEquals(GptConfig.preset(r.model()).defaultBatchSize(), r.batchSize());
        assertEquals(1, r.virtualStages());
        assertEquals(4, r.microbatches(), "2x2x1 small: min(2 x pp, 16 / dp) = 4");
        assertEquals(30, TrainingJob.builder().steps(300).lr(1e-3f, 1e-4f, -1).build().request().warmupSteps());
        assertEquals(2, TrainingJob.builder().schedule("interleaved").layout("1x2").build().request().virtualStages());
    }

    @Test
    void shouldSayWhatIsWrongNamingTheBadValue() {
        refused(() -> TrainingJob.builder().model("huge").build(), "huge");
        refused(() -> TrainingJob.builder().layout("3x").build(), "3x");
        refused(() -> TrainingJob.builder().schedule("zigzag").build(), "zigzag");
        refused(() -> TrainingJob.builder().steps(0).build(), "steps=0");
        refused(() -> TrainingJob.builder().batchSize(-2).build(), "batch-size=-2");
        refused(() -> TrainingJob.builder().layout("1x1").batchSize(10).microbatches(3).build(), "microbatches=3");
        refused(() -> TrainingJob.builder().lr(-1f, 0f, 1).build(), "lr=-1");
        refused(() -> TrainingJob.builder().device("tpu").build(), "tpu");
        refused(() -> TrainingJob.builder().validation(5, 0).build(), "eval_batches=0");
        refused(() -> TrainingJob.builder().validation(5, -1).build(), "eval_batches=-1");
        refused(() -> TrainingJob.builder().bucketBytes(2).build(), "bucket_bytes=2");
        refused(() -> TrainingJob.builder().layout("1x2").partition("1,1,1").build(), "1,1,1");
    }

    /** The setters record; build() refuses, a null by the setting's name, so a builder can be filled in any order. */
    @Test
    void shouldRefuseNullsAndBadValidationFromBuildNamingThem() {
        TrainingJob.Builder noBatches = TrainingJob.builder().validation(5, 0);
        refused(noBatches::build, "eval_batches=0");
        assertEquals(2, noBatches.validation(5, 2).build().request().evalBatches(), "set right, it builds");
        refused(() -> TrainingJob.builder().model(null).build(), "model must not be null");
        refused(() -> TrainingJob.builder().layout(null).build(), "layout must not be null");
        refused(() -> TrainingJob.builder().schedule(null).build(), "schedule must not be null");
        refused(() -> TrainingJob.builder().partition(null).build(), "partition must not be null");
        refused(() -> TrainingJob.builder().data(null).build(), "data must not be null");
        refused(() -> TrainingJob.builder().device(null).build(), "device must not be null");
        refused(() -> TrainingJob.builder().stageModules(null).build(), "stage-modules must not be null");
        refused(() -> TrainingJob.builder().checkpoints(5, null).build(), "checkpoint directory must not be null");
    }

    /** Clipping at an infinite norm is no clipping at all, and an infinite norm over it divides to NaN. */
    @Test
    void shouldRefuseANonFiniteGradientClip() {
        refused(() -> TrainingJob.builder().gradClip(Float.POSITIVE_INFINITY).build(), "grad_clip=Infinity");
        refused(() -> TrainingJob.builder().gradClip(Float.NaN).build(), "grad_clip=NaN");
        assertEquals(0f, TrainingJob.builder().gradClip(0).build().request().gradClip(), "0 turns clipping off");
    }

    /**
     * The nodes run with working directories of their own: a relative data path or checkpoint directory is taken
     * against the submitter's, so every node reads and writes the path the submitter meant.
     */
    @Test
    void shouldMakeRelativePathsAbsoluteAgainstTheSubmittersDirectory() {
        java.nio.file.Path here = java.nio.file.Path.of("").toAbsolutePath();
        TrainingJob job = TrainingJob.builder().data("corpus/../text.txt").checkpoints(5, "runs/a").build();
        assertEquals(here.resolve("text.txt").toString(), job.request().dataPath());
        assertEquals(here.resolve("runs/a").toString(), job.request().checkpointDir());
        TrainingJob defaults = TrainingJob.builder().build();
        assertEquals("", defaults.request().dataPath(), "the built-in corpus stays the built-in corpus");
        assertEquals("", defaults.request().checkpointDir(), "the cluster's job root stays the default");
        refused(() -> TrainingJob.builder().data("a\u0000b").build(), "is not a path: data=");
    }

    private static void refused(Executable build, String naming) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build);
        assertTrue(e.getMessage().startsWith("bad training job: ") && e.getMessage().contains(naming), e.getMessage());
    }
}
