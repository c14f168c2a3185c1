package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_BY_REFERENCE;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_BY_RING;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_CRC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAG_MAC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_LENGTH;

import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.aeron.logbuffer.BufferClaim;
import io.troupe.runtime.tensor.DType;
import org.agrona.BufferUtil;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The frames of the tensor a {@link TensorSender} has in flight, written into its publication: it
 * owns the tensor's header fields, the claim, header and payload buffers, each chunk's CRC32C or
 * MAC (computed once per chunk and kept while a back-pressured offer is retried), and the copy of
 * a chunk into the {@link IpcRing}. Each offer writes one frame (a chunk claimed in place or
 * offered from the caller's memory, or a header-only frame for a by-reference or ring chunk) and
 * returns the publication's result; progress, retries and deadlines are the sender's. A tagged frame
 * carries the sender's next {@link FrameSequence} counter, taken once the frame is in the publication (a
 * back-pressured offer is retried with the same one). Allocates nothing after construction; used from the
 * sender's thread only.
 */
final class TensorFrameWriter {
    private final ExclusivePublication publication;
    private final IpcRing ring;
    private final int sourceRank;
    private final int destRank;
    private final long epoch;
    private final int jobId;
    private final boolean crcEnabled;
    /** Tags every frame (UDP with an auth key), in place of CRC32C; {@code null} otherwise. */
    private final FrameMac mac;
    private static final int[] HELLO_SHAPE = {1};
    /** The counters tagged frames carry; {@code null} without {@link #mac}. */
    private final FrameSequence sequence;
    private final int claimLimitBytes;
    private final BufferClaim claim = new BufferClaim();
    private final UnsafeBuffer headerBuffer =
        new UnsafeBuffer(BufferUtil.allocateDirectAligned(HEADER_LENGTH, 64));
    private final UnsafeBuffer payloadBuffer = new UnsafeBuffer(0, 0);
    private final TensorFrameFlyweight frame = new TensorFrameFlyweight();
    private final int[] shape = new int[TensorFrameDescriptor.MAX_DIMS];

    private FrameKind kind;
    private long step;
    private long tensorKey;
    private DType dtype;
    private int ndims;
    private long address;
    private long totalBytes;
    private long ringStart = -1;
    private int referenceSequence;
    private long crcOffset = -1;
    private long macOffset = -1;
    private long macCounter;
    private long macTag;
    private int crc;

    /**
     * @param ring the sender's shared-memory ring, or {@code null}
     * @param mac  tags every frame in place of CRC32C, or {@code null}; set only with {@code crcEnabled} false
     */
    TensorFrameWriter(ExclusivePublication publication, IpcRing ring, int sourceRank, int destRank, int jobId,
                      long epoch, boolean crcEnabled, FrameMac mac) {
        this.publication = publication;
        this.ring = ring;
        this.sourceRank = sourceRank;
        this.destRank = destRank;
        this.jobId = jobId;
        this.epoch = epoch;
        this.crcEnabled = crcEnabled;
        this.mac = mac;
        this.sequence = mac == null ? null : new FrameSequence();
        this.claimLimitBytes = publication.maxPayloadLength();
    }

    /** The shape the frames carry: {@link #start} copies into it unless given this very array. */
    int[] shape() {
        return shape;
    }

    /** The key of the tensor in flight. */
    long tensorKey() {
        return tensorKey;
    }

    /** Takes the header fields of a new tensor (validated by the sender); drops the last one's chunk state. */
    void start(FrameKind kind, long step, long tensorKey, DType dtype, int[] shape, int ndims, long address,
               long lengthBytes) {
        this.kind = kind;
        this.step = step;
        this.tensorKey = tensorKey;
        this.dtype = dtype;
        this.ndims = ndims;
        if (shape != this.shape) {
            System.arraycopy(shape, 0, this.shape, 0, ndims);
        }
        this.address = address;
        this.totalBytes = lengthBytes;
        this.crcOffset = -1;
        this.macOffset = -1;
        this.ringStart = -1;
    }

    /** The sequence the in-process link gave the tensor, carried by its header-only frame. */
    void referenceSequence(int sequence) {
        this.referenceSequence = sequence;
    }

    /** The tensor lies in the ring at {@code start} already: its chunk is announced without a copy. */
    void stagedInRing(long start) {
        this.ringStart = start;
    }

    /**
     * The publication's {@link FrameKind#HELLO}: one tagged byte, before any tensor (only with a {@link #mac}). It
     * leaves the tensor in flight as it was and takes the next counter, so the tensors' counters stay above it.
     */
    long offerHello() {
        long result = publication.tryClaim(HEADER_LENGTH + 1, claim);
        if (result > 0) {
            int at = claim.offset();
            frame.wrap(claim.buffer(), at).writeHeader(FrameKind.HELLO, DType.I8, FLAG_MAC, jobId, epoch, 0, sourceRank,
                destRank, 0, HELLO_SHAPE, 1, 1, 0, 1);
            claim.buffer().putByte(at + HEADER_LENGTH, (byte) 0);
            frame.frameCounter(sequence.current());
            mac.seal(claim.buffer(), at, 1);
            claim.commit();
            sequence.advance();
        }
        return result;
    }

    /** A header-only frame telling a same-JVM receiver to copy {@code [offset, offset+length)} through the link. */
    long offerReference(long offset, int length) {
        int flags = (crcEnabled ? FLAG_CRC : 0) | (mac != null ? FLAG_MAC : 0) | FLAG_BY_REFERENCE;
        long result = publication.tryClaim(HEADER_LENGTH, claim);
        if (result > 0) {
            frame.wrap(claim.buffer(), claim.offset()).writeHeader(kind, dtype, flags, jobId, epoch, step, sourceRank,
                destRank, tensorKey, shape, ndims, totalBytes, offset, length);
            frame.referenceSequence(referenceSequence);
            if (crcEnabled) {
                frame.sealCrc(0);
            } else if (mac != null) {
                mac.seal(claim.buffer(), claim.offset(), 0);
            }
            claim.commit();
        }
        return result;
    }

    /**
     * Copies the chunk into the ring (once, when the ring has room) and announces it with a
     * header-only frame; {@code BACK_PRESSURED} while the receiver still holds the ring's room.
     */
    long offerRingChunk(long offset, int length) {
        if (ringStart < 0) {
            long start = ring.claim(length);
            if (start < 0) {
                return Publication.BACK_PRESSURED;
            }
            UnsafeApi.copyMemory(address + offset, ring.address(start), length);
            ringStart = start;
        }
        int flags = (crcEnabled ? FLAG_CRC : 0) | FLAG_BY_RING;
        computeChunkCrc(offset, length);
        long result = publication.tryClaim(HEADER_LENGTH, claim);
        if (result > 0) {
            frame.wrap(claim.buffer(), claim.offset()).writeHeader(kind, dtype, flags, jobId, epoch, step, sourceRank,
                destRank, tensorKey, shape, ndims, totalBytes, offset, length);
            frame.referenceSequence(ring.offsetOf(ringStart));
            if (crcEnabled) {
                frame.sealCrc(crc);
            }
            claim.commit();
            ring.commit(ringStart, length);
            ringStart = -1;
        }
        return result;
    }

    /** The chunk's CRC32C into {@code crc}, once per chunk (a back-pressured offer is retried without it). */
    private void computeChunkCrc(long offset, int length) {
        if (crcEnabled && crcOffset != offset) {
            crc = frame.crc32c(address + offset, length);
            crcOffset = offset;
        }
    }

    long offerChunk(long offset, int length) {
        int flags = crcEnabled ? FLAG_CRC : mac != null ? FLAG_MAC : 0;
        computeChunkCrc(offset, length);
        if (HEADER_LENGTH + length <= claimLimitBytes) {
            long result = publication.tryClaim(HEADER_LENGTH + length, claim);
            if (result > 0) {
                int at = claim.offset();
                frame.wrap(claim.buffer(), at).writeHeader(kind, dtype, flags, jobId, epoch, step, sourceRank, destRank,
                    tensorKey, shape, ndims, totalBytes, offset, length);
                payloadBuffer.wrap(address + offset, length);
                claim.buffer().putBytes(at + HEADER_LENGTH, payloadBuffer, 0, length);
                if (crcEnabled) {
                    frame.sealCrc(crc);
                } else if (mac != null) {
                    frame.frameCounter(sequence.current());
                    mac.seal(claim.buffer(), at, length);
                }
                claim.commit();
                if (mac != null) {
                    sequence.advance();
                }
            }
            return result;
        }
        frame.wrap(headerBuffer, 0).writeHeader(kind, dtype, flags, jobId, epoch, step, sourceRank, destRank, tensorKey,
            shape, ndims, totalBytes, offset, length);
        if (crcEnabled) {
            frame.sealCrc(crc);
        } else if (mac != null) {
            frame.frameCounter(sequence.current());
            sealSplit(offset, length);
        }
        payloadBuffer.wrap(address + offset, length);
        long result = publication.offer(headerBuffer, 0, HEADER_LENGTH, payloadBuffer, 0, length);
        if (result > 0 && mac != null) {
            sequence.advance();
        }
        return result;
    }

    /**
     * Tags a chunk whose header and payload lie apart (header buffer, caller's memory), once per chunk: a
     * back-pressured offer is retried with the same header.
     */
    private void sealSplit(long offset, int length) {
        long counter = sequence.current();
        if (macOffset != offset || macCounter != counter) {
            mac.absorbHeader(headerBuffer, 0);
            macTag = mac.finish(null, address + offset, length);
            macOffset = offset;
            macCounter = counter;
        }
        headerBuffer.putInt(TensorFrameDescriptor.MAC_LOW_OFFSET, (int) macTag, java.nio.ByteOrder.LITTLE_ENDIAN);
        headerBuffer.putInt(TensorFrameDescriptor.MAC_HIGH_OFFSET, (int) (macTag >>> 32),
            java.nio.ByteOrder.LITTLE_ENDIAN);
    }
}
