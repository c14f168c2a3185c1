package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Each epoch builds its communicators on the same agents and releases them when it ends: the agent
 * routes only the live ones, and the released ones' native memory (bf16 staging, int8 residuals) is
 * freed, so re-plans do not accumulate it.
 */
class CommunicatorReleaseTest {
    private static final int N = 2;
    private static final int COUNT = 4096;
    private final LocalGroup group = new LocalGroup(N);
    private final Buffers buffers = new Buffers(N, COUNT);

    @AfterEach
    void close() {
        group.close();
        buffers.close();
    }

    private Communicator[] communicators(long epoch, int groupId, Compression compression) {
        Communicator[] c = new Communicator[N];
        for (int r = 0; r < N; r++) {
            c[r] = group.agents[r].communicator(CollectiveGroup.ofWorld(epoch, groupId, r, group.endpoints),
                LocalGroup.collectiveSettings().withCompression(compression));
        }
        return c;
    }

    private void allReduce(Communicator[] c) {
        CollectiveHandle[] h = new CollectiveHandle[N];
        for (int r = 0; r < N; r++) {
            for (int i = 0; i < COUNT; i++) {
                buffers.set(r, i, r + 1);
            }
            h[r] = c[r].allReduceAsync(buffers.address[r], COUNT, ReduceOp.SUM, 7, new CollectiveHandle());
        }
        group.awaitAll(h);
        assertEquals(3f, buffers.get(0, 0), 0.1f);
    }

    @Test
    @Timeout(60)
    void shouldRouteOnlyLiveCommunicatorsAndFreeTheReleasedOnesMemory() {
        for (long epoch = 1; epoch <= 4; epoch++) {
            boolean tensorParallel = epoch < 4; // the last layout drops group 2
            Communicator[] dp = communicators(epoch, 0, Compression.INT8_ERROR_FEEDBACK);
            Communicator[] tp = tensorParallel ? communicators(epoch, 2, Compression.BF16) : null;
            allReduce(dp);
            if (tp != null) {
                allReduce(tp);
            }
            for (int r = 0; r < N; r++) {
                CollectiveAgent agent = group.agents[r];
                assertTrue(agent.routes(0));
                assertEquals(tensorParallel, agent.routes(2), "epoch " + epoch);
                assertEquals(tensorParallel ? 2 : 1, agent.communicatorCount());
                assertTrue(dp[r].errorFeedback().nativeBytes() > 0, "the int8 residual was allocated");
                long live = dp[r].nativeBytes() + (tp == null ? 0 : tp[r].nativeBytes());
                assertEquals(live, agent.nativeBytes(), "only the live communicators hold memory");
            }
            for (int r = 0; r < N; r++) {
                group.agents[r].release(dp[r]);
                if (tp != null) {
                    group.agents[r].release(tp[r]);
                }
            }
            // a send still in flight from a released engine's memory delays its free to the duty cycle
            long deadlineNs = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (group.agents[0].nativeBytes() + group.agents[1].nativeBytes() > 0
                && System.nanoTime() < deadlineNs) {
                for (CollectiveAgent a : group.agents) {
                    a.doWork();
                }
            }
            for (int r = 0; r < N; r++) {
                CollectiveAgent agent = group.agents[r];
                assertFalse(agent.routes(0));
                assertFalse(agent.routes(2));
                assertEquals(0, agent.communicatorCount());
                assertEquals(0, dp[r].nativeBytes(), "the released dp communicator's memory was freed");
                if (tp != null) {
                    assertEquals(0, tp[r].nativeBytes(), "the released tp communicator's memory was freed");
                }
                assertEquals(0, agent.nativeBytes());
            }
        }
        System.out.println("4 epochs built and released; errors=" + group.driver.errors());
    }

    @Test
    @Timeout(60)
    void shouldFailCollectivesQueuedOnAReleasedCommunicator() {
        Communicator[] dp = communicators(1, 0, Compression.NONE);
        CollectiveHandle h = dp[0].allReduceAsync(buffers.address[0], COUNT, ReduceOp.SUM, 0, new CollectiveHandle());
        group.agents[0].release(dp[0]);
        assertTrue(h.isDone() && h.isFailed(), "a collective of a released communicator fails at once");
        assertNotNull(dp[0].failure());
        assertTrue(h.failure().getMessage().contains("released"), h.failure().getMessage());
        assertEquals(0, dp[0].nativeBytes());
        group.agents[1].release(dp[1]);
    }

    /**
     * A newer epoch's connect to a peer (a pipeline link opening its sender on the device thread) replaces the
     * older epoch's sender, which the agent's duty cycle may still be pumping: it is not closed on the
     * connecting thread (that would unmap a shared-memory ring under the pump) but by the next duty cycle,
     * which drops the links on it; the new epoch's collectives run on the new sender.
     */
    @Test
    @Timeout(60)
    void shouldCloseASenderANewerEpochReplacedOnTheDutyCycleNotOnTheConnectingThread() {
        try (LocalGroup rings = new LocalGroup(N, LocalGroup.settings(), true); Buffers b = new Buffers(N, COUNT)) {
            Communicator[] one = new Communicator[N];
            for (int r = 0; r < N; r++) {
                one[r] = rings.agents[r].communicator(CollectiveGroup.ofWorld(1, 0, r, rings.endpoints),
                    LocalGroup.collectiveSettings());
            }
            CollectiveHandle[] h = new CollectiveHandle[N];
            for (int r = 0; r < N; r++) {
                h[r] = one[r].allReduceAsync(b.address[r], COUNT, ReduceOp.SUM, 1, new CollectiveHandle());
            }
            rings.awaitAll(h);
            CollectiveAgent agent = rings.agents[0];
            var old = agent.worker().sender(1);
            assertEquals(1, old.epoch());
            for (int r = 0; r < N; r++) {
                rings.agents[r].release(one[r]);
                rings.agents[r].worker().assign(r, 2);
            }
            var fresh = agent.worker().connect(1, rings.endpoints[1], 2);
            assertTrue(fresh != old && fresh.epoch() == 2);
            assertFalse(old.isClosed(), "the replaced sender is left to the duty cycle, not closed on this thread");
            agent.doWork();
            assertTrue(old.isClosed(), "the next duty cycle closed it");
            assertFalse(fresh.isClosed());
            Communicator[] two = new Communicator[N];
            for (int r = 0; r < N; r++) {
                two[r] = rings.agents[r].communicator(CollectiveGroup.ofWorld(2, 0, r, rings.endpoints),
                    LocalGroup.collectiveSettings());
                for (int i = 0; i < COUNT; i++) {
                    b.set(r, i, r + 1);
                }
                h[r] = two[r].allReduceAsync(b.address[r], COUNT, ReduceOp.SUM, 2, new CollectiveHandle());
            }
            rings.awaitAll(h);
            assertEquals(3f, b.get(0, COUNT - 1), 0f);
            assertTrue(agent.worker().sender(1) == fresh, "the new epoch's link sends on the new sender");
            assertTrue(rings.driver.errors().isEmpty(), rings.driver.errors().toString());
        }
    }
}
