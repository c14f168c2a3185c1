package io.troupe.collectives;

import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportException;

/**
 * The agent's view of one sender (this worker to one peer), shared by every communicator that
 * talks to that peer: one tensor at a time, and the communicator that sends it ({@link #owner}) is
 * told when a send fails. Agent thread only; allocation-free.
 */
final class PeerLink {
    final int peerRank;
    final TensorSender sender;
    private final int[] shape = new int[1];
    private CollectiveEngine owner;

    PeerLink(int peerRank, TensorSender sender) {
        this.peerRank = peerRank;
        this.sender = sender;
    }

    boolean isIdle() {
        return !sender.isSending();
    }

    /** True when {@code c}'s last tensor on this link is completely handed to Aeron. */
    boolean isDoneFor(CollectiveEngine c) {
        return owner != c || !sender.isSending();
    }

    /** Starts a collective chunk; the link must be idle. Sends what the publication takes now. */
    void begin(CollectiveEngine c, long signature, long key, DType dtype, long address, long count) {
        owner = c;
        shape[0] = (int) count;
        sender.begin(FrameKind.COLLECTIVE_CHUNK, signature, key, dtype, shape, 1, address, count * dtype.sizeBytes());
        pump();
    }

    /**
     * Reserves {@code bytes} where the peer reads them (the sender's shared-memory ring) for a piece
     * {@code c} writes itself; the address, or 0 when the link is busy or has no ring room now.
     */
    long claim(long bytes) {
        return sender.isSending() ? 0 : sender.claimRing(bytes);
    }

    /** Sends the piece written at the address {@link #claim} returned. */
    void beginClaimed(CollectiveEngine c, long signature, long key, DType dtype, long count) {
        owner = c;
        shape[0] = (int) count;
        sender.beginClaimed(FrameKind.COLLECTIVE_CHUNK, signature, key, dtype, shape, 1, count * dtype.sizeBytes());
        pump();
    }

    /** Sends what it can of the tensor in flight; a failure goes to its owner. */
    int pump() {
        if (!sender.isSending()) {
            return 0;
        }
        try {
            return sender.doSend();
        } catch (TransportException e) {
            CollectiveEngine c = owner;
            owner = null;
            if (c != null) {
                c.onSendFailed(peerRank, e);
            }
            return 1;
        }
    }

    void clearOwner(CollectiveEngine c) {
        if (owner == c) {
            owner = null;
        }
    }
}
