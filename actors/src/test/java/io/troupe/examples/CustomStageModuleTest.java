package io.troupe.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A user's own model ({@link ResidualMlpModel}, written against the stage contract only) trained by
 * the cluster runtime: it learns, a pipeline split and a data-parallel split give the single-worker
 * loss trajectory, and the job's result names its final validation loss and checkpoint.
 */
class CustomStageModuleTest {
    @TempDir
    Path tmp;

    private static TrainingJob.Builder job(String layout) {
        return TrainingJob.builder().model("tiny").layout(layout).schedule("1f1b").microbatches(2).batchSize(4)
            .steps(12).lr(1e-2f, 1e-3f, 2).seed(3).validation(0, 1).device("cpu").stageModules(ResidualMlpModel.class);
    }

    private static List<JobEvent.StepCompleted> run(Troupe troupe, TrainingJob job) throws Exception {
        JobHandle h = troupe.submit(job);
        JobEvent end = h.await(Duration.ofMinutes(2));
        assertInstanceOf(JobEvent.Finished.class, end, String.valueOf(end));
        return h.steps();
    }

    @Test
    @Timeout(180)
    void shouldTrainAUsersModuleWithAnyLayoutAndTheSameLosses() throws Exception {
        try (Troupe troupe = Troupe.local(2, 1)) {
            Path ckpt = tmp.resolve("ckpt");
            JobHandle h = troupe.submit(job("1x1").validation(6, 2).checkpoints(6, ckpt.toString()).build());
            JobEvent.Finished fin = assertInstanceOf(JobEvent.Finished.class, h.await(Duration.ofMinutes(2)));
            List<JobEvent.StepCompleted> single = h.steps();
            List<JobEvent.StepCompleted> pipeline = run(troupe, job("1x2").build());
            List<JobEvent.StepCompleted> data = run(troupe, job("2x1").build());
            double first = single.get(0).loss();
            double last = single.get(single.size() - 1).loss();
            System.out.printf("residual MLP: loss %.4f -> %.4f, final val %.4f%n", first, last, fin.finalValLoss());
            assertTrue(last < first - 0.3, "the user's model learns: " + first + " -> " + last);
            assertTrue(Double.isFinite(fin.finalValLoss()), "validation ran: " + fin);
            assertTrue(Files.isRegularFile(Path.of(fin.checkpoint()).resolve("manifest.json")), "checkpoint: "
                + fin.checkpoint());
            for (int i = 0; i < single.size(); i++) {
                double ref = single.get(i).loss();
                assertEquals(ref, pipeline.get(i).loss(), 1e-5 * Math.abs(ref), "1x2 step " + (i + 1));
                assertEquals(ref, data.get(i).loss(), 1e-5 * Math.abs(ref), "2x1 step " + (i + 1));
            }
        }
    }

    @Test
    @Timeout(60)
    void shouldRefuseAMissingModuleClassBeforeAnyWork() throws Exception {
        try (Troupe troupe = Troupe.local(1, 1)) {
            TrainingJob bad = TrainingJob.builder().model("tiny").layout("1x1").steps(1).batchSize(4)
                .stageModules(ResidualMlpModel.class).build();
            var r = bad.request();
            var missing = new io.troupe.actors.cluster.JobRequest(r.model(), r.layout(), r.virtualStages(),
                r.schedule(),
                r.microbatches(), r.batchSize(), r.steps(), r.lr(), r.minLr(), r.warmupSteps(), r.gradClip(), r.seed(),
                r.partition(), r.dataPath(), 0, "", 5_000, 0, 1,
                r.bucketBytes(), "cpu", "com.example.NoSuchModel", 0, "none", "none");
            JobEvent end = troupe.submit(missing).await(Duration.ofSeconds(30));
            JobEvent.Failed f = assertInstanceOf(JobEvent.Failed.class, end);
            assertTrue(f.reason().contains("before any work") && f.reason().contains("com.example.NoSuchModel"),
                f.reason());
        }
    }
}
