package io.troupe.actors.cluster.snapshot;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A {@link SnapshotExchange}'s send thread: sends pinned snapshots to other ranks piece by piece
 * ({@link SnapshotPieces#send}) in the background, one at a time in the order given, so a snapshot's send
 * overlaps the next step's compute. A snapshot is unpinned ({@link SnapshotExchange#release}) once its send
 * ended, sent or not; a failed send is logged unless the binding it was made for has ended.
 */
final class SnapshotSender implements AutoCloseable {
    private final SnapshotExchange exchange;
    private final SnapshotPieces pieces;
    private final Consumer<String> log;
    private final ExecutorService sendThread;
    /** Sends that failed. */
    private volatile long sendFailures;

    /** Starts the send thread, {@code name + "-send"} (a daemon). */
    SnapshotSender(SnapshotExchange exchange, SnapshotPieces pieces, String name, Consumer<String> log) {
        this.exchange = exchange;
        this.pieces = pieces;
        this.log = log;
        this.sendThread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, name + "-send");
            t.setDaemon(true);
            return t;
        });
    }

    /** Sends {@code snap} (pinned; {@code null}: nothing) to rank {@code toRank} of binding {@code b}. */
    void send(SnapshotExchange.Binding b, SnapshotBuffer snap, int toRank) {
        if (snap == null) {
            return;
        }
        sendThread.execute(() -> {
            try {
                pieces.send(b, snap, toRank);
            } catch (RuntimeException e) {
                sendFailures++;
                if (exchange.binding() == b) {
                    log.accept("snapshot " + snap.describe() + " not sent to rank " + toRank + ": " + e.getMessage());
                }
            } finally {
                exchange.release(snap);
            }
        });
    }

    /**
     * Stops the send thread: sends not yet begun are dropped, the one in flight is interrupted and waited for
     * up to 5 s.
     */
    @Override
    public void close() {
        sendThread.shutdownNow();
        try {
            sendThread.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
