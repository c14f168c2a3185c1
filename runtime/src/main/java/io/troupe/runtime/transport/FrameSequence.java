package io.troupe.runtime.transport;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The counters one sender stamps on its {@link TensorFrameDescriptor#FLAG_MAC} frames, which the tag covers and a
 * receiver checks ({@link ReplayGuard}): each frame that enters the publication carries a counter above every
 * earlier one of the same sender, so a frame captured and sent again carries one the receiver has seen.
 *
 * <p>Counters are taken from the process in blocks of {@link #BLOCK} ({@link #current()} is stamped, and
 * {@link #advance()} called once the frame is in the publication, on the sender's own thread: the only thread
 * that offers to its exclusive publication, so counters rise in the order the frames enter it). Every block lies
 * above all blocks handed out before it, to any sender of this process: a sender that replaces a closed one to
 * the same peer in the same epoch (same source rank, a new publication) starts above every counter the closed
 * one sent, and its frames are not taken for replays. A new process only sends in a new epoch (every fault
 * starts one), where receivers keep no counters of the old one.
 *
 * <p>48 bits of counter ({@link TensorFrameDescriptor#MAX_FRAME_COUNTER}) last a process 2^48 tagged frames.
 * Threading: one thread per instance; blocks come from any thread. Allocates nothing after construction.
 */
final class FrameSequence {
    /** Counters a sender takes from the process at a time. */
    static final long BLOCK = 1L << 16;
    /** The start of the next block of this process; counter 0 is never used (receivers start from it). */
    private static final AtomicLong PROCESS_BLOCKS = new AtomicLong(1);

    private final AtomicLong blocks;
    private long next;
    private long limit;

    /** A sender's counters, from this process's blocks. */
    FrameSequence() {
        this(PROCESS_BLOCKS);
    }

    /** Counters from {@code blocks} (the start of the next block; tests). */
    FrameSequence(AtomicLong blocks) {
        this.blocks = blocks;
        refill();
    }

    /** The counter the next frame carries. */
    long current() {
        return next;
    }

    /**
     * The frame stamped with {@link #current()} is in the publication: the next one carries a higher counter.
     *
     * @throws TransportException when the process has used up every counter (2^48 tagged frames)
     */
    void advance() {
        if (++next == limit) {
            refill();
        }
    }

    private void refill() {
        long start = blocks.getAndAdd(BLOCK);
        if (start < 1 || start > TensorFrameDescriptor.MAX_FRAME_COUNTER - BLOCK + 1) {
            throw new TransportException("no frame counters left in this process (2^48 tagged frames sent): "
                + "restart it; next block start=" + start);
        }
        next = start;
        limit = start + BLOCK;
    }
}
