package io.troupe.actors.cluster.snapshot;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A worker told to abort while it builds an epoch that restores from memory stops waiting for the
 * buddy's copy at once (its answer to the abort would otherwise wait out the copy's 15 s), and only
 * an abort of a newer epoch of the same job ends the wait.
 */
@Timeout(60)
class SnapshotExchangeAbortTest {
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(30);

    @Test
    void shouldEndACopyWaitWhenANewerEpochOfTheJobAborts() throws Exception {
        try (TransportNode node = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
             SnapshotExchange ex = new SnapshotExchange(node, "abort-test", s -> { })) {
            JobIdentity building = new JobIdentity(7, 3);
            // neither another job's abort nor one of the epoch being built ends the wait
            ex.abortWaits(new JobIdentity(8, 9));
            SnapshotException other = assertThrows(SnapshotException.class,
                () -> ex.awaitCopy(building, 1, 10, TimeUnit.MILLISECONDS.toNanos(200)));
            assertTrue(other.getMessage().contains("arrived within 200 ms"), other.getMessage());
            ex.abortWaits(building);
            assertThrows(SnapshotException.class, () -> ex.awaitCopy(building, 1, 10, TimeUnit.MILLISECONDS.toNanos(200)));

            long t0 = System.nanoTime();
            CompletableFuture<Void> waiting = CompletableFuture.runAsync(() -> ex.awaitCopy(building, 1, 10, WAIT_NS));
            ex.abortWaits(new JobIdentity(7, 4));
            ExecutionException e = assertThrows(ExecutionException.class, () -> waiting.get(20, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof SnapshotException, String.valueOf(e.getCause()));
            assertTrue(e.getCause().getMessage().contains("ended by the abort of"), e.getCause().getMessage());
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            assertTrue(ms < TimeUnit.NANOSECONDS.toMillis(WAIT_NS) / 2, "ended by the abort, not the timeout: " + ms + " ms");
        }
    }
}
