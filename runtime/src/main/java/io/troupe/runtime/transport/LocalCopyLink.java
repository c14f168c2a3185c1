package io.troupe.runtime.transport;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * The in-process side channel of a sender and a receiver that live in the same JVM (same
 * {@link TransportNode}): the sender publishes the region of the tensor it is sending here, sends
 * a header-only frame flagged {@link TensorFrameDescriptor#FLAG_BY_REFERENCE} over its Aeron IPC
 * publication (ordering, liveness and back-pressure stay Aeron's), and the receiver copies straight
 * from the sender's memory into its slot: one copy instead of two (into and out of the log).
 *
 * <p>The address never travels on the wire: the receiver finds the link by its image's stream and
 * session id in the node's registry, and only honours a frame whose sequence matches the one
 * published here, so a forged frame cannot point the receiver at arbitrary memory.
 *
 * <p>Hand-over: {@code PUBLISHED -> COPYING -> COPIED} (receiver), {@code PUBLISHED -> COPIED}
 * (receiver refusing a well-formed frame unread) or {@code PUBLISHED -> REVOKED} (sender giving up or
 * closing). The CAS decides who wins, so once a sender has revoked, the receiver never reads the
 * memory, and a sender never abandons memory the receiver is reading.
 *
 * <p>Threading: one sender thread, one receiver agent thread.
 */
public final class LocalCopyLink {
    private static final int IDLE = 0;
    private static final int PUBLISHED = 1;
    private static final int COPYING = 2;
    private static final int COPIED = 3;
    private static final int REVOKED = 4;

    private final AtomicInteger phase = new AtomicInteger(IDLE);
    private long address;
    private long lengthBytes;
    private volatile int sequence;

    /** Sender: makes {@code [address, address+lengthBytes)} readable under a new sequence, returned. */
    int publish(long address, long lengthBytes) {
        this.address = address;
        this.lengthBytes = lengthBytes;
        int next = sequence + 1;
        sequence = next;
        phase.set(PUBLISHED); // volatile write publishes address, length and sequence
        return next;
    }

    /** Receiver: true when {@code seq} is published and describes exactly {@code lengthBytes}. */
    boolean isPublished(int seq, long lengthBytes) {
        return phase.get() == PUBLISHED && sequence == seq && this.lengthBytes == lengthBytes;
    }

    /** Receiver: claims the region for copying; false when revoked or superseded. */
    boolean beginCopy(int seq) {
        return sequence == seq && phase.compareAndSet(PUBLISHED, COPYING);
    }

    /**
     * Receiver: refuses the region of {@code seq} without reading it (its frame was well formed but
     * refused, a stale epoch say): the sender is done with it, as with a frame dropped on the wire.
     * False when revoked or superseded meanwhile.
     */
    boolean decline(int seq) {
        return sequence == seq && phase.compareAndSet(PUBLISHED, COPIED);
    }

    /** Receiver: the published address (valid between {@link #beginCopy} and {@link #endCopy}). */
    long address() {
        return address;
    }

    /** Receiver: the copy is done; the sender may reuse its memory. */
    void endCopy() {
        phase.set(COPIED);
    }

    /** Sender: true once the receiver copied the current sequence. */
    boolean isCopied() {
        return phase.get() == COPIED;
    }

    /**
     * Sender: withdraws the region. Returns true if the receiver will never read it; false if a copy
     * is in progress (call again: it ends soon) or already done.
     */
    boolean revoke() {
        return phase.compareAndSet(PUBLISHED, REVOKED) || phase.get() == REVOKED || phase.get() == IDLE;
    }

    /** Sender: true while the receiver is copying. */
    boolean isCopying() {
        return phase.get() == COPYING;
    }
}
