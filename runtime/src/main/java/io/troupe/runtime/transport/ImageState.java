package io.troupe.runtime.transport;

import io.aeron.logbuffer.ControlledFragmentHandler.Action;

/**
 * What a {@link TensorReceiverAgent} knows of one Aeron image (one sender's publication): the
 * message in progress on it (a chunk being reassembled into a slot, or a tensor going in place to a
 * sink), and the sender's same-host sources once found. Agent thread only.
 */
final class ImageState {
    final long correlationId;
    /** The sender's rank, from the image's session id. */
    final int rank;

    /** A message's first fragment was taken and its last has not come yet. */
    boolean inMessage;
    /** The rest of a dropped message is being skipped (its fragments are not orphans). */
    boolean skipping;

    /**
     * The slot the chunk in progress fills, valid while {@link ReceiveSlot#generation} equals {@link #slotGeneration}.
     */
    ReceiveSlot slot;
    int slotGeneration;
    /** Tensor offset the next fragment's payload goes to. */
    long writeOffset;
    /** The chunk in progress: tensor offsets {@code [chunkStart, chunkEnd)} and its CRC32C, if it carries one. */
    long chunkStart;
    long chunkEnd;
    int chunkCrc;
    boolean crcPresent;
    /**
     * A chunk or a whole frame from this image has passed its {@link FrameMac} check: the image is a key holder's
     * publication, so a later chunk or frame failing its check was damaged in transit, and the tensor it fills is
     * reported corrupt.
     */
    boolean macProven;
    /** The chunk in progress carries a {@link FrameMac} tag still to be checked, and its header's state. */
    boolean macPending;
    long macTag;
    final long[] macState = new long[4];
    /** The job, epoch and {@link FrameSequence} counter of the tagged chunk in progress ({@link ReplayGuard}). */
    int macJobId;
    long macEpoch;
    long macCounter;

    /** Where the bytes of chunks accepted from this image are counted, or null. */
    PeerTraffic.Counter receivedBytes;

    /** The sink taking the tensor in progress in place, or null. */
    InPlaceConsumer.Sink sink;

    /** The same-JVM sender's link, once found. */
    LocalCopyLink link;
    /** The same-host sender's ring, once mapped; {@link #ringMissing} once looked for in vain. */
    IpcRing ring;
    boolean ringMissing;

    ImageState(long correlationId, int rank) {
        this.correlationId = correlationId;
        this.rank = rank;
    }

    /** Unmaps the sender's ring, if mapped. */
    void closeRing() {
        IpcRing r = ring;
        if (r != null) {
            ring = null;
            r.close();
        }
    }

    /** Counts the message that starts here as dropped for {@code reason} and skips the rest of it. */
    Action drop(FrameDropCounters drops, DropReason reason, boolean end) {
        drops.increment(reason);
        skipping = !end;
        return Action.CONTINUE;
    }
}
