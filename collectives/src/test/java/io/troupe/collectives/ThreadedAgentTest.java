package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import io.troupe.collectives.bucket.GradientBucketer;
import io.troupe.collectives.bucket.ParamRange;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Agents on their own threads (as in a worker), the bucketer driven from a "compute" thread per
 * rank: bucket 0's all-reduce completes while that thread is still producing the other gradients.
 */
class ThreadedAgentTest {
    @Test
    @Timeout(60)
    void shouldOverlapBucketAllReduceWithRemainingBackwardOnAgentThreads() throws Exception {
        int n = 2;
        List<ParamRange> p = GradientBucketerTest.params();
        long total = GradientBucketerTest.total(p);
        try (LocalGroup g = new LocalGroup(n); Buffers buf = new Buffers(n, total)) {
            Communicator[] c = g.communicators(0, LocalGroup.collectiveSettings());
            for (CollectiveAgent a : g.agents) {
                a.start(new BackoffIdleStrategy(10, 10, 1_000, 100_000));
            }
            CompletableFuture<?>[] ranks = new CompletableFuture<?>[n];
            boolean[] overlapped = new boolean[n];
            for (int r = 0; r < n; r++) {
                int rank = r;
                ranks[r] = CompletableFuture.runAsync(() -> {
                    GradientBucketer bk = new GradientBucketer(c[rank], buf.address[rank], total, p, 4 * 4000,
                        ReduceOp.SUM);
                    for (long i = 0; i < total; i++) {
                        buf.set(rank, i, rank + 1);
                    }
                    bk.markReady(9);
                    bk.markReady(8);
                    // the rest of "backward": bucket 0 must finish meanwhile, on the agent thread
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                    while (!bk.handle(0).isDone() && System.nanoTime() < deadline) {
                        Thread.onSpinWait();
                    }
                    overlapped[rank] = bk.handle(0).isDone() && bk.launched() == 1;
                    for (int i = 7; i >= 0; i--) {
                        bk.markReady(i);
                    }
                    bk.finish();
                });
            }
            CompletableFuture.allOf(ranks).get(30, TimeUnit.SECONDS);
            for (int r = 0; r < n; r++) {
                assertTrue(overlapped[r], "rank " + r + ": bucket 0 done before the other gradients were ready");
                for (long i = 0; i < total; i++) {
                    assertEquals(3f, buf.get(r, i), "rank " + r + " element " + i);
                }
            }
            // blocking collectives from the caller while the agent runs elsewhere
            for (int r = 0; r < n; r++) {
                int rank = r;
                ranks[r] = CompletableFuture.runAsync(() -> c[rank].barrier());
            }
            CompletableFuture.allOf(ranks).get(30, TimeUnit.SECONDS);
        }
    }
}
