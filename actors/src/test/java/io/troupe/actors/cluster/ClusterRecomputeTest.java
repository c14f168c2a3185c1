package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Full activation recomputation on the cluster runtime (embedded cluster, Aeron data plane): a
 * 2x2 job gives bitwise the losses of keeping every activation, under 1F1B (B and W fused block by
 * block, the input gradient sent after both) and under ZB-H1 (W late, reading what B kept).
 */
class ClusterRecomputeTest {
    private static double[] losses(Troupe troupe, String schedule, String recompute) throws Exception {
        JobHandle h = troupe.submit(TrainingJob.builder().model("tiny").layout("2x2").schedule(schedule)
            .microbatches(2).batchSize(8).steps(4).lr(3e-3f, 3e-4f, 1).gradClip(1f).seed(9).stepTimeoutMs(60_000)
            .validation(0, 1).device("cpu").recompute(recompute).build());
        JobEvent end = h.await(Duration.ofMinutes(3));
        assertInstanceOf(JobEvent.Finished.class, end, schedule + " " + recompute + ": " + end);
        double[] l = new double[h.steps().size()];
        for (int i = 0; i < l.length; i++) {
            l[i] = h.steps().get(i).loss();
        }
        return l;
    }

    @Test
    @Timeout(600)
    void shouldGiveBitwiseTheLossesOfKeepingEverythingOnTheCluster() throws Exception {
        try (Troupe troupe = Troupe.local(4, 1)) {
            for (String schedule : new String[] {"1f1b", "zb-h1"}) {
                double[] none = losses(troupe, schedule, "none");
                double[] full = losses(troupe, schedule, "full");
                System.out.printf("cluster 2x2 %s: recompute full losses %s, bitwise those of none%n", schedule,
                    java.util.Arrays.toString(full));
                assertArrayEquals(none, full, schedule);
            }
        }
    }
}
