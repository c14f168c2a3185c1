package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.runtime.cuda.CudaAvailability;
import io.troupe.runtime.cuda.CudaSupport;
import java.time.Duration;

/** What the cluster engine's GPU tests share: the job they compare on both devices and its per-step losses. */
final class CudaJobs {
    /** Steps of every compared job. */
    static final int STEPS = 3;

    private CudaJobs() {
    }

    /** Skips the calling test, with the reason, where no CUDA device (GPU or emulator) is usable. */
    static void assumeGpu() {
        CudaAvailability a = CudaSupport.availability();
        assumeTrue(a.isAvailable(), "no usable GPU, CUDA test skipped: " + a.reason());
    }

    /** The tiny GPT for {@link #STEPS} steps in {@code layout} on {@code device} ("cpu", "cuda"). */
    static TrainingJob.Builder job(String layout, String device) {
        return TrainingJob.builder().model("tiny").layout(layout).schedule("1f1b").microbatches(2).batchSize(8)
            .steps(STEPS).lr(3e-3f, 3e-4f, 1).gradClip(1f).seed(7).bucketBytes(16 * 1024).stepTimeoutMs(120_000)
            .validation(0, 1).device(device);
    }

    /** The loss of every step of {@code h}, which must finish within 3 minutes. */
    static double[] losses(JobHandle h, String what) throws Exception {
        JobEvent end = h.await(Duration.ofMinutes(3));
        assertInstanceOf(JobEvent.Finished.class, end, what + ": " + end);
        double[] l = new double[h.steps().size()];
        for (int i = 0; i < l.length; i++) {
            l[i] = h.steps().get(i).loss();
        }
        return l;
    }

    /** The largest relative difference of {@code a} from {@code b}'s steps {@code from..}. */
    static double maxRelative(double[] a, double[] b, int from) {
        assertEquals(b.length - from, a.length, "steps");
        double worst = 0;
        for (int i = from; i < b.length; i++) {
            worst = Math.max(worst, Math.abs(a[i - from] - b[i]) / Math.abs(b[i]));
        }
        return worst;
    }
}
