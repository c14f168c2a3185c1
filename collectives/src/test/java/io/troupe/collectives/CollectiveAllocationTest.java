package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.collectives.LocalGroup.Buffers;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Warmed-up collectives with reused handles, every agent driven by the test thread, allocate 0
 * bytes on that thread ({@code ThreadMXBean.getThreadAllocatedBytes}): submission, the agents' duty
 * cycles, the ring, recursive doubling, bf16 and the transport underneath. A round of 100 may show a
 * few hundred bytes while the JIT is still settling (the MXBean call itself allocates at times), so
 * the best of three rounds must be 0: a real per-collective allocation shows in every round.
 */
class CollectiveAllocationTest {
    private static final com.sun.management.ThreadMXBean THREADS =
        (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private static long allocated() {
        return THREADS.getThreadAllocatedBytes(Thread.currentThread().getId());
    }

    private static void allReduce(LocalGroup g, Communicator[] c, Buffers b, CollectiveHandle[] h) {
        for (int r = 0; r < g.n; r++) {
            c[r].allReduceAsync(b.address[r], b.count, ReduceOp.AVERAGE, 3, h[r]);
        }
        long deadline = System.nanoTime() + 30_000_000_000L;
        for (int r = 0; r < g.n; r++) {
            while (!h[r].isDone()) {
                for (CollectiveAgent a : g.agents) {
                    a.doWork();
                }
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("stuck");
                }
            }
            if (h[r].isFailed()) {
                throw h[r].failure();
            }
        }
    }

    @Test
    @Timeout(60)
    void shouldNotAllocateInSteadyStateCollectives() {
        int n = 3;
        try (LocalGroup g = new LocalGroup(n)) {
            Object[][] cases = {
                {CollectiveAlgorithm.RING, Compression.NONE, 200_003L},
                {CollectiveAlgorithm.RECURSIVE_DOUBLING, Compression.NONE, 1000L},
                {CollectiveAlgorithm.RING, Compression.BF16, 100_000L},
            };
            int id = 0;
            for (Object[] k : cases) {
                Communicator[] c = g.communicators(id++, LocalGroup.collectiveSettings()
                    .withAlgorithm((CollectiveAlgorithm) k[0]).withCompression((Compression) k[1]));
                CollectiveHandle[] h = new CollectiveHandle[n];
                for (int r = 0; r < n; r++) {
                    h[r] = new CollectiveHandle();
                }
                try (Buffers b = new Buffers(n, (Long) k[2])) {
                    for (int i = 0; i < 300; i++) {
                        allReduce(g, c, b, h);
                    }
                    long bytes = Long.MAX_VALUE;
                    for (int round = 0; round < 3 && bytes != 0; round++) {
                        long before = allocated();
                        for (int i = 0; i < 100; i++) {
                            allReduce(g, c, b, h);
                        }
                        bytes = allocated() - before;
                    }
                    System.out.printf("%s/%s, %d floats, 100 all-reduces x %d ranks: %d bytes allocated%n", k[0], k[1],
                        k[2], n, bytes);
                    assertEquals(0, bytes, k[0] + "/" + k[1] + " allocated " + bytes + " bytes");
                }
            }
        }
    }
}
