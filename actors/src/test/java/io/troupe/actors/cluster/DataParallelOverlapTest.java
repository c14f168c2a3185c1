package io.troupe.actors.cluster;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * On a CPU the data-parallel sum overlaps backward: each bucket is launched from the step's last weight-gradient
 * pass as its parameters become final, the first before that pass ends (the GPU twin:
 * {@code CudaDataParallelOverlapTest}).
 */
class DataParallelOverlapTest {
    @TempDir
    Path tmp;

    @AfterEach
    void reset() {
        ProbedGptStages.reset();
    }

    @Test
    @Timeout(120)
    void shouldLaunchTheFirstBucketBeforeTheLastWeightGradientIsFinalOnTheCpu() throws Exception {
        DataParallelOverlapChecks.checkOverlapAndSums("cpu", 0, false, tmp);
    }

    @Test
    @Timeout(120)
    void shouldLaunchTheFirstBucketBeforeTheLastWeightGradientIsFinalOnTheCpuUnderZeroOne() throws Exception {
        DataParallelOverlapChecks.checkOverlapAndSums("cpu", 1, false, tmp);
    }
}
