package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.LocalGroup.Buffers;
import io.troupe.runtime.testkit.LoopbackDriver;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TransportEndpoint;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * After a re-plan (new epoch, new groups on the same workers) the peers' old-epoch publications go
 * away: the transport reports those images lost, but the new communicators stay healthy because
 * every peer still has its new image.
 */
class ReplanTest {
    @Test
    @Timeout(60)
    void shouldKeepNewEpochCommunicatorsHealthyWhenOldEpochImagesGoAway() {
        int n = 2;
        AtomicInteger lost = new AtomicInteger();
        TensorReceiverAgent.Listener delegate = new TensorReceiverAgent.Listener() {
            @Override
            public void onTensorReady(ReceiveSlot slot) {
                slot.release();
            }

            @Override
            public void onPeerLost(int peerRank) {
                lost.incrementAndGet();
            }
        };
        try (LoopbackDriver driver = LoopbackDriver.start(LocalGroup.settings()); Buffers b = new Buffers(n, 1000)) {
            CollectiveAgent[] agents = new CollectiveAgent[n];
            TransportEndpoint[] eps = new TransportEndpoint[n];
            for (int r = 0; r < n; r++) {
                agents[r] = new CollectiveAgent("rank" + r, delegate, driver.errors()::add);
                agents[r].attach(driver.openWorker("rank" + r, r, 1, agents[r]));
                eps[r] = agents[r].worker().endpoint();
            }
            try {
                Communicator[] old = new Communicator[n];
                for (int r = 0; r < n; r++) {
                    old[r] = agents[r].communicator(CollectiveGroup.ofWorld(1, 0, r, eps),
                        LocalGroup.collectiveSettings());
                }
                allReduce(agents, old, b);
                Communicator[] next = new Communicator[n];
                for (int r = 0; r < n; r++) {
                    // epoch 2 replaces group 0 and the epoch-1 senders (their publications close)
                    next[r] = agents[r].communicator(CollectiveGroup.ofWorld(2, 0, r, eps),
                        LocalGroup.collectiveSettings());
                }
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                int rounds = 0;
                while (lost.get() < n && System.nanoTime() < deadline) {
                    allReduce(agents, next, b);
                    rounds++;
                }
                assertEquals(n, lost.get(), "the old-epoch images were reported lost");
                allReduce(agents, next, b);
                System.out.println("epoch-2 all-reduces kept working through " + rounds + " rounds while " + lost.get()
                    + " old images went away");
                for (Communicator c : next) {
                    assertNull(c.failure(), "new communicator stays healthy");
                }
            } finally {
                for (CollectiveAgent a : agents) {
                    a.close();
                }
            }
        }
    }

    private static void allReduce(CollectiveAgent[] agents, Communicator[] c, Buffers b) {
        CollectiveHandle[] h = new CollectiveHandle[c.length];
        for (int r = 0; r < c.length; r++) {
            for (int i = 0; i < b.count; i++) {
                b.set(r, i, r + 1);
            }
            h[r] = c[r].allReduceAsync(b.address[r], b.count, ReduceOp.SUM, 0, new CollectiveHandle());
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        for (CollectiveHandle x : h) {
            while (!x.isDone()) {
                for (CollectiveAgent a : agents) {
                    a.doWork();
                }
                assertTrue(System.nanoTime() < deadline, "all-reduce stuck");
            }
            if (x.isFailed()) {
                throw x.failure();
            }
        }
        for (int r = 0; r < c.length; r++) {
            assertEquals(c.length * (c.length + 1) / 2f, b.get(r, 0));
        }
    }
}
