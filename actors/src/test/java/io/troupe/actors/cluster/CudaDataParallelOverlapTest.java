package io.troupe.actors.cluster;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * On a GPU the data-parallel sum overlaps backward as on a CPU ({@code DataParallelOverlapTest}): each bucket's
 * range of the gradients is downloaded into the host copy and launched as its last parameter becomes final, the first
 * before the step's last weight-gradient pass ends, and each replica uploads the replicas' sum of its own gradients
 * (read from the device after the schedule). Skipped, with the reason, where no CUDA device is usable (run by the
 * build on the CUDA emulator).
 */
class CudaDataParallelOverlapTest {
    @TempDir
    Path tmp;

    @BeforeEach
    void requireGpu() {
        CudaJobs.assumeGpu();
    }

    @AfterEach
    void reset() {
        ProbedGptStages.reset();
    }

    @Test
    @Timeout(180)
    void shouldDownloadAndLaunchTheFirstBucketBeforeTheLastWeightGradientIsFinalOnTheGpu() throws Exception {
        DataParallelOverlapChecks.checkOverlapAndSums("cuda", 0, true, tmp);
    }

    @Test
    @Timeout(180)
    void shouldDownloadAndLaunchTheFirstBucketBeforeTheLastWeightGradientIsFinalOnTheGpuUnderZeroOne()
        throws Exception {
        DataParallelOverlapChecks.checkOverlapAndSums("cuda", 1, true, tmp);
    }
}
