package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.bucket.GradientBucketer;
import java.nio.file.Path;
import java.util.List;

/**
 * What {@code DataParallelOverlapTest} (CPU) and {@code CudaDataParallelOverlapTest} (GPU) check on a
 * {@link DataParallelReplicas} job: each chunk's first bucket is launched while the step's last weight-gradient pass
 * still runs, and the replicas end the step with the sum of their gradients.
 */
final class DataParallelOverlapChecks {
    /** Small buckets: the tiny GPT's chunk has several. */
    static final long BUCKET_BYTES = 16 * 1024;
    static final int STEPS = 2;

    private DataParallelOverlapChecks() {
    }

    /**
     * Runs {@link #STEPS} steps of the 2x1 job on {@code device} under ZeRO {@code zero} and checks each: when the
     * step's last parameter is reported final (the last weight-gradient pass is still running), some bucket (not the
     * one of that parameter) has been launched; every bucket has by the end of the schedule; and (with
     * {@code checkSums}: the replica's own gradients are readable after the schedule, on a GPU) each replica holds
     * the replicas' sum of every gradient it reduces (under ZeRO its owned segments), bitwise.
     */
    static void checkOverlapAndSums(String device, int zero, boolean checkSums, Path dir) throws Exception {
        try (DataParallelReplicas job = new DataParallelReplicas(device, zero, BUCKET_BYTES, dir.toString())) {
            int buckets = job.bucketCount(0);
            assertTrue(buckets >= 3, "several buckets: " + buckets);
            for (int step = 0; step < STEPS; step++) {
                DataParallelReplicas.StepRecord[] recs = job.step(step, checkSums);
                for (int k = 0; k < DataParallelReplicas.REPLICAS; k++) {
                    List<Integer> launched = recs[k].launchedAtReport;
                    String what = device + " zero " + zero + " step " + step + " replica " + k;
                    assertTrue(!launched.isEmpty(), what + ": no parameter reported");
                    int atLast = launched.get(launched.size() - 1);
                    System.out.printf("%s: %d buckets, %d launched as the last parameter was reported final, %d after "
                        + "the schedule%n", what, buckets, atLast, recs[k].launchedAfterSchedule);
                    assertTrue(atLast >= 1, what + ": no bucket launched before the last weight gradient was final "
                        + "(buckets launched at each report: " + launched + ")");
                    assertTrue(atLast < buckets, what + ": the last parameter's bucket launched before it was final");
                    assertEquals(buckets, recs[k].launchedAfterSchedule, what + ": buckets launched by the schedule");
                    if (checkSums) {
                        checkSum(what, recs, job.bucketer(k), k, zero > 0);
                    }
                }
                if (zero == 0) {
                    assertArrayEquals(recs[0].reduced, recs[1].reduced, "the replicas' sums");
                }
            }
        }
    }

    /** Replica {@code k}'s reduced gradients are the replicas' own summed (under ZeRO: in the ranges it owns). */
    private static void checkSum(String what, DataParallelReplicas.StepRecord[] recs, GradientBucketer bucketer, int k,
                                 boolean owned) {
        float[] a = recs[0].local;
        float[] b = recs[1].local;
        float[] sum = recs[k].reduced;
        long[] starts = owned ? bucketer.ownedStarts() : new long[] {0};
        long[] numels = owned ? bucketer.ownedNumels() : new long[] {sum.length};
        double worst = 0;
        long checked = 0;
        long differing = 0;
        for (int r = 0; r < starts.length; r++) {
            for (long i = starts[r]; i < starts[r] + numels[r]; i++) {
                int e = (int) i;
                worst = Math.max(worst, Math.abs(sum[e] - (a[e] + b[e])));
                checked++;
                differing += a[e] != b[e] ? 1 : 0;
            }
        }
        System.out.printf("%s: %d gradients reduced, max difference from the replicas' sum %.3e%n", what, checked,
            worst);
        assertTrue(differing > checked / 2, what + ": the replicas' gradients differ (" + differing + " of " + checked
            + ")");
        assertEquals(0.0, worst, what + ": max difference from the replicas' sum");
    }
}
