package io.troupe.runtime.transport;

/** Why a receiver dropped a frame (or a fragment of one). Each has its own counter in {@link FrameDropCounters}. */
public enum DropReason {
    /** Shorter than the frame header. */
    SHORT_FRAME,
    /** Magic number is not {@link TensorFrameDescriptor#MAGIC}. */
    BAD_MAGIC,
    /** Version is not {@link TensorFrameDescriptor#VERSION}. */
    BAD_VERSION,
    /** Header CRC32C does not match. */
    BAD_HEADER_CRC,
    /** The receiver verifies CRCs and the frame carries none. */
    MISSING_CRC,
    /** Kind code is not a {@link FrameKind}. */
    UNKNOWN_KIND,
    /** Dtype code is not a known {@code DType}. */
    BAD_DTYPE,
    /** ndims outside [1, 4] or a dimension not positive. */
    BAD_SHAPE,
    /** Total bytes do not equal shape x dtype size, or exceed the limit; chunk bytes not positive. */
    BAD_LENGTH,
    /** Chunk offset negative or offset + chunk bytes past total bytes. */
    OFFSET_PAST_END,
    /** The payload length differs from the declared chunk bytes. */
    CHUNK_LENGTH_MISMATCH,
    /** Chunk CRC32C does not match the payload. */
    BAD_CHUNK_CRC,
    /** Epoch older than the receiver's current epoch. */
    STALE_EPOCH,
    /** Job id other than the receiver's job ({@link JobIdentity}): another job's, or no job's. */
    WRONG_JOB,
    /** Destination rank is not this receiver's rank. */
    WRONG_DESTINATION,
    /** Source rank differs from the rank the publication's session id carries. */
    SOURCE_MISMATCH,
    /** A chunk that does not continue its tensor (gap, duplicate or no first chunk). */
    OUT_OF_ORDER,
    /** dtype, shape or total bytes differ from the earlier chunks of the same tensor. */
    TENSOR_MISMATCH,
    /** The tensor is larger than the whole receive budget: it can never be placed. */
    LARGER_THAN_BUDGET,
    /** A continuation fragment with no message in progress on its image. */
    ORPHAN_FRAGMENT,
    /**
     * A by-reference frame without a registered in-process link, or with a stale sequence or range; a
     * by-ring frame on UDP, without a ring, or with an offset and length outside the ring.
     */
    BAD_REFERENCE,
    /** The receiver authenticates UDP frames ({@link TransportSettings#authKey()}) and the frame carries no tag. */
    MISSING_MAC,
    /**
     * The frame's {@link FrameMac} tag does not match its header and payload: sent without the cluster's key,
     * or altered on the way. A chunk is checked once whole; a failed one is dropped with the tensor it was
     * filling. The listener is told the tensor is corrupt only when an earlier chunk of the same publication
     * passed (a key holder's frame damaged in transit); a stranger's frames say nothing of the real sender.
     */
    BAD_MAC,
    /**
     * The frame carries a {@link FrameMac} tag and this receiver has no auth key (or the frame came over IPC,
     * where tags are never sent): the sender and receiver are configured differently, and the frame is
     * refused rather than taken unchecked.
     */
    UNEXPECTED_MAC,
    /**
     * A tagged frame whose {@link FrameSequence} counter is not above the highest this receiver took from its source
     * rank in its epoch ({@link ReplayGuard}): a frame captured and sent again, or one forged with a counter
     * already used. A frame in one UDP datagram is judged after its tag passed; a chunk in many on its first
     * fragment (before its tag is checked) and again once it is whole, before it is delivered. Nobody is told of a
     * corrupt tensor.
     */
    REPLAYED;

    /**
     * True for the reasons a frame is refused for what it says, after every field was read and found
     * consistent (job, epoch, destination, source, size against the budget): its chunk and ring fields can be
     * used, for instance to release the ring bytes it names.
     */
    public boolean wellFormed() {
        return this == STALE_EPOCH || this == WRONG_JOB || this == WRONG_DESTINATION || this == SOURCE_MISMATCH
            || this == LARGER_THAN_BUDGET;
    }

    /**
     * True for the reasons a frame's bytes are wrong in themselves (its magic, version, kind, type, shape,
     * lengths or tag), as damage on the way leaves them: on a publication that has passed a tag before, such a
     * frame is a key holder's, damaged in transit, and whoever waits for it is told at once.
     */
    public boolean damaged() {
        return this == SHORT_FRAME || this == BAD_MAGIC || this == BAD_VERSION || this == UNKNOWN_KIND
            || this == BAD_DTYPE || this == BAD_SHAPE || this == BAD_LENGTH || this == OFFSET_PAST_END
            || this == CHUNK_LENGTH_MISMATCH || this == MISSING_MAC || this == BAD_MAC;
    }
}
