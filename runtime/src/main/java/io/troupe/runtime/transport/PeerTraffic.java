package io.troupe.runtime.transport;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Tensor bytes one node's workers sent to and received from each peer, by (this worker's rank, the
 * peer's rank): the payload of every chunk handed to a publication, and of every chunk accepted whole
 * by a receiver (dropped ones are counted by {@link DropReason} instead). Counters are found once, when a
 * sender connects or an image's first fragment comes, and kept for the node's life (over jobs and epochs);
 * adding to one never allocates.
 *
 * <p>Threading: any thread. A counter's writers are the senders and receiver agents that hold it.
 */
public final class PeerTraffic {
    /** The bytes one worker moved to or from one peer. */
    public static final class Counter {
        private final int rank;
        private final int peer;
        private final AtomicLong bytes = new AtomicLong();

        Counter(int rank, int peer) {
            this.rank = rank;
            this.peer = peer;
        }

        /** This node's worker's rank. */
        public int rank() {
            return rank;
        }

        /** The peer worker's rank. */
        public int peer() {
            return peer;
        }

        /** Bytes so far (never decreases). */
        public long bytes() {
            return bytes.get();
        }

        void add(long n) {
            bytes.getAndAdd(n);
        }
    }

    private final ConcurrentHashMap<Long, Counter> sent = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<Long, Counter> received = new ConcurrentHashMap<>();

    /** The counter of bytes worker {@code rank} sends to {@code peer} (created on first use). */
    public Counter sentTo(int rank, int peer) {
        return sent.computeIfAbsent(key(rank, peer), k -> new Counter(rank, peer));
    }

    /** The counter of bytes worker {@code rank} receives from {@code peer} (created on first use). */
    public Counter receivedFrom(int rank, int peer) {
        return received.computeIfAbsent(key(rank, peer), k -> new Counter(rank, peer));
    }

    /** Every send counter so far (a snapshot list). */
    public List<Counter> sent() {
        return new ArrayList<>(sent.values());
    }

    /** Every receive counter so far (a snapshot list). */
    public List<Counter> received() {
        return new ArrayList<>(received.values());
    }

    private static long key(int rank, int peer) {
        return ((long) rank << 32) | (peer & 0xFFFF_FFFFL);
    }
}
