package io.troupe.runtime.transport;

/**
 * Static layout of a tensor frame: field offsets, lengths and constants. The picture is on
 * {@link TensorFrameFlyweight}. All multi-byte fields are little-endian.
 */
public final class TensorFrameDescriptor {
    /** {@code "TRPF"} read as a little-endian int. */
    public static final int MAGIC = 0x46505254;
    /**
     * Raised on any incompatible layout change; receivers drop other versions. 2: the job id at 36. 3: the frame
     * counter of {@link #FLAG_MAC} frames at {@link #FRAME_COUNTER_LOW_OFFSET} and {@link #FRAME_COUNTER_HIGH_OFFSET}.
     */
    public static final short VERSION = 3;

    public static final int MAGIC_OFFSET = 0;
    public static final int VERSION_OFFSET = 4;
    public static final int KIND_OFFSET = 6;
    public static final int DTYPE_OFFSET = 7;
    public static final int FLAGS_OFFSET = 8;
    public static final int NDIMS_OFFSET = 9;
    /**
     * Bits 47..32 of a {@link #FLAG_MAC} frame's counter (16 bits); zero in other frames. The counter is
     * the sender's {@link FrameSequence}: it rises with every frame that enters the publication, and a receiver
     * refuses a tagged frame whose counter is not above the last it accepted from the same source rank in the
     * same epoch ({@link DropReason#REPLAYED}).
     */
    public static final int FRAME_COUNTER_HIGH_OFFSET = 10;
    public static final int SOURCE_RANK_OFFSET = 12;
    public static final int EPOCH_OFFSET = 16;
    public static final int STEP_OFFSET = 24;
    public static final int DEST_RANK_OFFSET = 32;
    /** The job's id ({@link JobIdentity#jobId()}); with the epoch, the frame's job identity. */
    public static final int JOB_ID_OFFSET = 36;
    public static final int TENSOR_KEY_OFFSET = 40;
    public static final int DIMS_OFFSET = 48;
    public static final int TOTAL_BYTES_OFFSET = 64;
    public static final int CHUNK_OFFSET_OFFSET = 72;
    public static final int CHUNK_BYTES_OFFSET = 80;
    public static final int CHUNK_CRC_OFFSET = 84;
    /**
     * Sequence of a by-reference frame (see {@link LocalCopyLink}), ring offset of a by-ring frame ({@link IpcRing}),
     * bits 31..0 of a {@link #FLAG_MAC} frame's counter (which is neither: tags are sent on UDP only); zero otherwise.
     */
    public static final int REFERENCE_SEQUENCE_OFFSET = 88;
    /** Where a {@link #FLAG_MAC} frame keeps bits 31..0 of its counter (the reference field). */
    public static final int FRAME_COUNTER_LOW_OFFSET = REFERENCE_SEQUENCE_OFFSET;
    /** The largest frame counter: 48 bits. */
    public static final long MAX_FRAME_COUNTER = (1L << 48) - 1;
    public static final int HEADER_CRC_OFFSET = 92;
    /**
     * Header length; the payload starts here. With Aeron's 32-byte frame header the payload is 128-byte aligned in the
     * term.
     */
    public static final int HEADER_LENGTH = 96;

    /** The most dimensions a frame's shape carries. */
    public static final int MAX_DIMS = 4;
    /** Flag bit: the CRC32C fields are filled in. */
    public static final int FLAG_CRC = 1;
    /**
     * Flag bit: no payload follows; the chunk is copied in-process from the sender's memory through a
     * {@link LocalCopyLink} (same-JVM peers only; rejected for any image without a registered link).
     */
    public static final int FLAG_BY_REFERENCE = 2;
    /**
     * Flag bit: no payload follows; the chunk lies in the sender's {@link IpcRing} at the ring offset
     * carried in the reference field (IPC from another process on the host; rejected on UDP and for
     * any image without a ring).
     */
    public static final int FLAG_BY_RING = 4;
    /**
     * Flag bit: the frame carries a {@link FrameMac} tag (SipHash-2-4 under the cluster's
     * {@link FrameAuthKey}) in place of the CRC32C fields: its low 32 bits at {@link #MAC_LOW_OFFSET},
     * its high 32 bits at {@link #MAC_HIGH_OFFSET}. Set only on UDP, never together with {@link #FLAG_CRC}
     * (the tag detects corruption too).
     */
    public static final int FLAG_MAC = 8;
    /** Where a {@link #FLAG_MAC} frame keeps the tag's low 32 bits (the chunk CRC field). */
    public static final int MAC_LOW_OFFSET = CHUNK_CRC_OFFSET;
    /** Where a {@link #FLAG_MAC} frame keeps the tag's high 32 bits (the header CRC field). */
    public static final int MAC_HIGH_OFFSET = HEADER_CRC_OFFSET;
    /** Largest tensor a frame may describe (1 TiB): a bound that keeps size arithmetic far from overflow. */
    public static final long MAX_TENSOR_BYTES = 1L << 40;

    private TensorFrameDescriptor() {
    }

    /** Offset of dimension {@code i} ({@code 0 <= i < MAX_DIMS}). */
    public static int dimOffset(int i) {
        return DIMS_OFFSET + 4 * i;
    }
}
