package io.troupe.actors.cluster.snapshot;

import java.util.concurrent.atomic.LongAdder;

/**
 * What the snapshots of every worker in this process cost, summed since start: how many were taken,
 * the time the device threads spent taking them (the copy into the store and its CRC, the only
 * part on a step's path), the time they waited for a commit before one (the retention rule), and
 * the copies sent and the time the send threads spent on them.
 * Process-wide statistics (a bench reads them around a job); no behaviour depends on them.
 *
 * <p>Threading: any thread.
 */
public final class SnapshotCounters {
    private static final LongAdder TAKEN = new LongAdder();
    private static final LongAdder CAPTURE_NS = new LongAdder();
    private static final LongAdder COMMIT_WAITS = new LongAdder();
    private static final LongAdder COMMIT_WAIT_NS = new LongAdder();
    private static final LongAdder SENT = new LongAdder();
    private static final LongAdder SENT_BYTES = new LongAdder();
    private static final LongAdder SEND_NS = new LongAdder();

    /** A reading of the counters. */
    public record Totals(long taken, long captureNs, long commitWaits, long commitWaitNs, long sent, long sentBytes,
                         long sendNs) {
        /** The counts from {@code earlier} to this reading. */
        public Totals since(Totals earlier) {
            return new Totals(taken - earlier.taken, captureNs - earlier.captureNs, commitWaits - earlier.commitWaits,
                commitWaitNs - earlier.commitWaitNs, sent - earlier.sent, sentBytes - earlier.sentBytes,
                sendNs - earlier.sendNs);
        }
    }

    private SnapshotCounters() {
    }

    public static Totals read() {
        return new Totals(TAKEN.sum(), CAPTURE_NS.sum(), COMMIT_WAITS.sum(), COMMIT_WAIT_NS.sum(), SENT.sum(),
            SENT_BYTES.sum(), SEND_NS.sum());
    }

    /** A snapshot taken in {@code captureNs}, after waiting {@code waitNs} for a slot (0: none). */
    static void taken(long captureNs, long waitNs) {
        TAKEN.increment();
        CAPTURE_NS.add(captureNs);
        if (waitNs > 0) {
            COMMIT_WAITS.increment();
            COMMIT_WAIT_NS.add(waitNs);
        }
    }

    static void sent(long bytes, long sendNs) {
        SENT.increment();
        SENT_BYTES.add(bytes);
        SEND_NS.add(sendNs);
    }
}
