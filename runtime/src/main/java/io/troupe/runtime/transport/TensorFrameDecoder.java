package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_BY_REFERENCE;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_BY_RING;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_CRC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_MAC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_LENGTH;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAGIC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAX_DIMS;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAX_TENSOR_BYTES;
import static io.troupe.runtime.transport.TensorFrameDescriptor.VERSION;

import io.troupe.runtime.tensor.DType;
import org.agrona.DirectBuffer;

/**
 * Validates the first (or only) Aeron fragment of a tensor frame before anything is trusted:
 * length, magic, version, CRC, kind, dtype, shape, sizes, offsets, job, epoch and ranks, in that order.
 * On success the decoded fields are held here until the next call; on failure the reason is
 * returned for counting. Never throws, never allocates.
 *
 * <p>Threading: one thread per instance (the receiver agent's).
 */
public final class TensorFrameDecoder {
    private final TensorFrameFlyweight frame = new TensorFrameFlyweight();
    private final boolean crcRequired;
    /** Checks every frame's tag; {@code null} when frames are not authenticated here. */
    private final FrameMac mac;
    private boolean macPending;
    private FrameKind kind;
    private DType dtype;
    private int ndims;
    private long totalBytes;
    private long chunkOffset;
    private int chunkBytes;
    private int payloadBytes;
    private long epoch;
    private int jobId;
    private boolean crcPresent;
    private boolean byReference;
    private boolean byRing;

    /** The {@code expectedJobId} that checks no job id (a long outside the int range of ids). */
    public static final long ANY_JOB = Long.MIN_VALUE;

    /** @param crcRequired frames must carry CRCs and the header CRC must match */
    public TensorFrameDecoder(boolean crcRequired) {
        this(crcRequired, null);
    }

    /**
     * @param crcRequired frames must carry CRCs and the header CRC must match (when {@code authKey} is null)
     * @param authKey     frames must carry a {@link FrameMac} tag under this key instead ({@code null}: none)
     */
    public TensorFrameDecoder(boolean crcRequired, FrameAuthKey authKey) {
        this.crcRequired = crcRequired;
        this.mac = authKey == null ? null : new FrameMac(authKey);
    }

    /**
     * Checks the fragment at {@code buffer[offset, offset+length)}.
     *
     * @param end            the fragment ends its Aeron message (the payload must be the whole chunk)
     * @param minEpoch       frames of older epochs are stale
     * @param ownerRank      the only acceptable destination rank
     * @param expectedSource the rank the publication's session id carries
     * @param budgetBytes    tensors larger than this can never be placed
     * @return {@code null} when valid (fields readable), else why the frame is dropped; the reasons for which
     *         {@link DropReason#wellFormed()} holds are checked last, so with them too every field is readable
     */
    public DropReason decode(DirectBuffer buffer, int offset, int length, boolean end, long minEpoch, int ownerRank,
                             int expectedSource, long budgetBytes) {
        return decode(buffer, offset, length, end, ANY_JOB, minEpoch, ownerRank, expectedSource, budgetBytes);
    }

    /**
     * As {@link #decode(DirectBuffer, int, int, boolean, long, int, int, long)}, refusing with
     * {@link DropReason#WRONG_JOB} a frame whose job id is not {@code expectedJobId} (its
     * {@link JobIdentity}: the job id and, as {@code minEpoch}, the epoch).
     *
     * @param expectedJobId the receiver's job id; {@link #ANY_JOB} checks none (tools)
     */
    public DropReason decode(DirectBuffer buffer, int offset, int length, boolean end, long expectedJobId,
                             long minEpoch, int ownerRank, int expectedSource, long budgetBytes) {
        if (length < HEADER_LENGTH) {
            return DropReason.SHORT_FRAME;
        }
        TensorFrameFlyweight f = frame.wrap(buffer, offset);
        if (f.magic() != MAGIC) {
            return DropReason.BAD_MAGIC;
        }
        if (f.version() != VERSION) {
            return DropReason.BAD_VERSION;
        }
        macPending = false;
        if (mac != null) {
            if ((f.flags() & FLAG_MAC) == 0) {
                return DropReason.MISSING_MAC;
            }
            crcPresent = false; // the CRC fields hold the tag
        } else if ((f.flags() & FLAG_MAC) != 0) {
            return DropReason.UNEXPECTED_MAC; // the sender has a key this node lacks: a misconfigured cluster
        } else if (crcRequired) {
            crcPresent = (f.flags() & FLAG_CRC) != 0;
            if (!crcPresent) {
                return DropReason.MISSING_CRC;
            }
            if (f.headerCrc() != f.computeHeaderCrc()) {
                return DropReason.BAD_HEADER_CRC;
            }
        } else {
            crcPresent = (f.flags() & FLAG_CRC) != 0;
        }
        kind = FrameKind.fromCode(f.kindCode());
        if (kind == null) {
            return DropReason.UNKNOWN_KIND;
        }
        dtype = TensorFrameFlyweight.dtypeOf(f.dtypeCode());
        if (dtype == null) {
            return DropReason.BAD_DTYPE;
        }
        ndims = f.ndims();
        if (ndims < 1 || ndims > MAX_DIMS) {
            return DropReason.BAD_SHAPE;
        }
        long numel = 1;
        for (int i = 0; i < ndims; i++) {
            int d = f.dim(i);
            if (d <= 0) {
                return DropReason.BAD_SHAPE;
            }
            if (numel > MAX_TENSOR_BYTES / d) {
                return DropReason.BAD_LENGTH;
            }
            numel *= d;
        }
        totalBytes = f.totalBytes();
        chunkBytes = f.chunkBytes();
        if (totalBytes != numel * dtype.sizeBytes() || totalBytes > MAX_TENSOR_BYTES || chunkBytes <= 0) {
            return DropReason.BAD_LENGTH;
        }
        chunkOffset = f.chunkOffset();
        if (chunkOffset < 0 || chunkOffset > totalBytes - chunkBytes) {
            return DropReason.OFFSET_PAST_END;
        }
        payloadBytes = length - HEADER_LENGTH;
        byReference = (f.flags() & FLAG_BY_REFERENCE) != 0;
        byRing = (f.flags() & FLAG_BY_RING) != 0;
        boolean headerOnly = byReference || byRing;
        if (headerOnly ? !end || payloadBytes != 0 : end ? payloadBytes != chunkBytes : payloadBytes >= chunkBytes) {
            return DropReason.CHUNK_LENGTH_MISMATCH;
        }
        if (mac != null) {
            if (end) { // the whole frame is here: checked before anything it says is acted on
                if (mac.tagOf(buffer, offset, payloadBytes) != FrameMac.tagIn(f)) {
                    return DropReason.BAD_MAC;
                }
            } else { // the chunk is checked once whole in its slot, from the header's state kept now
                mac.absorbHeader(buffer, offset);
                macPending = true;
            }
        }
        jobId = f.jobId();
        if (expectedJobId != ANY_JOB && jobId != (int) expectedJobId) {
            return DropReason.WRONG_JOB;
        }
        epoch = f.epoch();
        if (epoch < minEpoch) {
            return DropReason.STALE_EPOCH;
        }
        if (f.destRank() != ownerRank) {
            return DropReason.WRONG_DESTINATION;
        }
        if (f.sourceRank() != expectedSource) {
            return DropReason.SOURCE_MISMATCH;
        }
        if (totalBytes > budgetBytes) {
            return DropReason.LARGER_THAN_BUDGET;
        }
        return null;
    }

    /** Whether this decoder checks {@link FrameMac} tags (an auth key, on a UDP subscription). */
    public boolean checksTags() {
        return mac != null;
    }

    /**
     * True when the last frame decoded is the first fragment of an authenticated chunk whose tag is still to be
     * checked: its header is absorbed in {@link #mac()}, and the chunk must pass {@link FrameMac#finish} before use.
     */
    public boolean macPending() {
        return macPending;
    }

    /** The tag checker of this decoder, or {@code null} when frames are not authenticated here. */
    public FrameMac mac() {
        return mac;
    }

    /** The flyweight over the last decoded frame (for the key, step, dims and CRC). */
    public TensorFrameFlyweight frame() {
        return frame;
    }

    public FrameKind kind() {
        return kind;
    }

    public DType dtype() {
        return dtype;
    }

    public int ndims() {
        return ndims;
    }

    public long totalBytes() {
        return totalBytes;
    }

    public long chunkOffset() {
        return chunkOffset;
    }

    public int chunkBytes() {
        return chunkBytes;
    }

    /** Payload bytes in this fragment. */
    public int payloadBytes() {
        return payloadBytes;
    }

    public long epoch() {
        return epoch;
    }

    /** The job id of the last frame decoded as far as its job (see {@link DropReason#wellFormed()}). */
    public int jobId() {
        return jobId;
    }

    public boolean crcPresent() {
        return crcPresent;
    }

    /** The chunk is to be copied through a {@link LocalCopyLink}, not from the frame. */
    public boolean byReference() {
        return byReference;
    }

    /** The chunk lies in the sender's {@link IpcRing} at the offset the frame carries, not in the frame. */
    public boolean byRing() {
        return byRing;
    }
}
