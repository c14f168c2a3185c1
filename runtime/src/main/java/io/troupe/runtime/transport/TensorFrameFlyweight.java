package io.troupe.runtime.transport;

import static io.troupe.runtime.transport.TensorFrameDescriptor.CHUNK_BYTES_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.CHUNK_CRC_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.CHUNK_OFFSET_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.DEST_RANK_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.DTYPE_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.EPOCH_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FLAGS_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FRAME_COUNTER_HIGH_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.FRAME_COUNTER_LOW_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.HEADER_CRC_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.JOB_ID_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.KIND_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAGIC;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAGIC_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.MAX_DIMS;
import static io.troupe.runtime.transport.TensorFrameDescriptor.NDIMS_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.REFERENCE_SEQUENCE_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.SOURCE_RANK_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.STEP_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.TENSOR_KEY_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.TOTAL_BYTES_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.VERSION;
import static io.troupe.runtime.transport.TensorFrameDescriptor.VERSION_OFFSET;
import static io.troupe.runtime.transport.TensorFrameDescriptor.dimOffset;

import io.troupe.runtime.tensor.DType;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * A view over one tensor frame in a buffer: header then raw little-endian payload. Wrap it, then
 * read or write fields; it holds no data of its own and never allocates.
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                    magic 'TRPF' (0x46505254)                  |  0
 *  +-------------------------------+---------------+---------------+
 *  |            version            |     kind      |     dtype     |  4
 *  +---------------+---------------+---------------+---------------+
 *  |     flags     |     ndims     | counter 47..32 (tagged) or 0  |  8
 *  +---------------+---------------+-------------------------------+
 *  |                          source rank                          | 12
 *  +---------------------------------------------------------------+
 *  |                         epoch (int64)                         | 16
 *  +---------------------------------------------------------------+
 *  |                          step (int64)                         | 24
 *  +---------------------------------------------------------------+
 *  |                       destination rank                        | 32
 *  +---------------------------------------------------------------+
 *  |                         job id (nonce)                        | 36
 *  +---------------------------------------------------------------+
 *  |   tensor key (int64: microbatch 63..40 | vstage 39..32 | id)  | 40
 *  +---------------------------------------------------------------+
 *  |                  dim 0 | dim 1 | dim 2 | dim 3 (4 x int32)    | 48
 *  +---------------------------------------------------------------+
 *  |                      total bytes (int64)                      | 64
 *  +---------------------------------------------------------------+
 *  |                      chunk offset (int64)                     | 72
 *  +---------------------------------------------------------------+
 *  |                     chunk bytes (int32)                       | 80
 *  +---------------------------------------------------------------+
 *  |                   chunk CRC32C (payload only)                 | 84
 *  +---------------------------------------------------------------+
 *  | reference sequence, ring offset, or counter 31..0 (tagged)    | 88
 *  +---------------------------------------------------------------+
 *  |                 header CRC32C (bytes 0 .. 91)                 | 92
 *  +---------------------------------------------------------------+
 *  |                 payload: chunk bytes, little-endian        ...  | 96
 *  +---------------------------------------------------------------+
 * </pre>
 *
 * <p>Dimensions past {@code ndims} are zero. A frame flagged {@code FLAG_BY_REFERENCE} carries no
 * payload (see {@link LocalCopyLink}), nor does one flagged {@code FLAG_BY_RING} (see {@link IpcRing}). The CRC fields
 * are meaningful only when
 * {@link TensorFrameDescriptor#FLAG_CRC} is set; with {@link TensorFrameDescriptor#FLAG_MAC} instead, the two CRC
 * fields hold the frame's {@link FrameMac} tag (low half at 84, high half at 92), and the frame carries its
 * sender's 48-bit counter (bits 31..0 at 88, bits 47..32 at 10; see {@link FrameSequence}), which the tag covers.
 * Threading: one thread per instance.
 */
public final class TensorFrameFlyweight {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final DType[] DTYPE_BY_CODE = dtypeTable();

    private final Crc32cCalculator crc32c = new Crc32cCalculator();
    private DirectBuffer buffer;
    private MutableDirectBuffer mutableBuffer;
    private int offset;

    /** Wraps for reading; the caller has checked that {@code HEADER_LENGTH} bytes are there. */
    public TensorFrameFlyweight wrap(DirectBuffer buffer, int offset) {
        this.buffer = buffer;
        this.mutableBuffer = null;
        this.offset = offset;
        return this;
    }

    /** Wraps for writing. */
    public TensorFrameFlyweight wrap(MutableDirectBuffer buffer, int offset) {
        this.buffer = buffer;
        this.mutableBuffer = buffer;
        this.offset = offset;
        return this;
    }

    public DirectBuffer buffer() {
        return buffer;
    }

    public int offset() {
        return offset;
    }

    /** Decodes a dtype wire code without allocating; {@code null} when unknown. */
    public static DType dtypeOf(int code) {
        return code >= 0 && code < DTYPE_BY_CODE.length ? DTYPE_BY_CODE[code] : null;
    }

    public int magic() {
        return buffer.getInt(offset + MAGIC_OFFSET, LE);
    }

    public int version() {
        return buffer.getShort(offset + VERSION_OFFSET, LE) & 0xFFFF;
    }

    public int kindCode() {
        return buffer.getByte(offset + KIND_OFFSET) & 0xFF;
    }

    public int dtypeCode() {
        return buffer.getByte(offset + DTYPE_OFFSET) & 0xFF;
    }

    public int flags() {
        return buffer.getByte(offset + FLAGS_OFFSET) & 0xFF;
    }

    public int ndims() {
        return buffer.getByte(offset + NDIMS_OFFSET) & 0xFF;
    }

    public int sourceRank() {
        return buffer.getInt(offset + SOURCE_RANK_OFFSET, LE);
    }

    public long epoch() {
        return buffer.getLong(offset + EPOCH_OFFSET, LE);
    }

    public long step() {
        return buffer.getLong(offset + STEP_OFFSET, LE);
    }

    public int destRank() {
        return buffer.getInt(offset + DEST_RANK_OFFSET, LE);
    }

    /** The job id of the sender's {@link JobIdentity} ({@link JobIdentity#NO_JOB} from tools and tests). */
    public int jobId() {
        return buffer.getInt(offset + JOB_ID_OFFSET, LE);
    }

    public long tensorKey() {
        return buffer.getLong(offset + TENSOR_KEY_OFFSET, LE);
    }

    public int dim(int i) {
        return buffer.getInt(offset + dimOffset(i), LE);
    }

    public long totalBytes() {
        return buffer.getLong(offset + TOTAL_BYTES_OFFSET, LE);
    }

    public long chunkOffset() {
        return buffer.getLong(offset + CHUNK_OFFSET_OFFSET, LE);
    }

    public int chunkBytes() {
        return buffer.getInt(offset + CHUNK_BYTES_OFFSET, LE);
    }

    public int chunkCrc() {
        return buffer.getInt(offset + CHUNK_CRC_OFFSET, LE);
    }

    public int referenceSequence() {
        return buffer.getInt(offset + REFERENCE_SEQUENCE_OFFSET, LE);
    }

    /** Marks a header written by {@link #writeHeader} as by-reference (call before {@link #sealCrc}). */
    public void referenceSequence(int sequence) {
        mutableBuffer.putInt(offset + REFERENCE_SEQUENCE_OFFSET, sequence, LE);
    }

    /** The counter of a {@link TensorFrameDescriptor#FLAG_MAC} frame (48 bits, unsigned). */
    public long frameCounter() {
        return (buffer.getInt(offset + FRAME_COUNTER_LOW_OFFSET, LE) & 0xFFFF_FFFFL)
            | (long) (buffer.getShort(offset + FRAME_COUNTER_HIGH_OFFSET, LE) & 0xFFFF) << 32;
    }

    /**
     * Stamps the counter of a header written by {@link #writeHeader} for a {@link TensorFrameDescriptor#FLAG_MAC}
     * frame (call before the tag is computed); {@code counter} in {@code [0, MAX_FRAME_COUNTER]}.
     */
    public void frameCounter(long counter) {
        mutableBuffer.putInt(offset + FRAME_COUNTER_LOW_OFFSET, (int) counter, LE);
        mutableBuffer.putShort(offset + FRAME_COUNTER_HIGH_OFFSET, (short) (counter >>> 32), LE);
    }

    public int headerCrc() {
        return buffer.getInt(offset + HEADER_CRC_OFFSET, LE);
    }

    /** CRC32C of header bytes {@code [0, HEADER_CRC_OFFSET)} as they are in the buffer now. */
    public int computeHeaderCrc() {
        if (buffer.byteArray() == null) {
            return crc32c.compute(buffer.addressOffset() + offset, HEADER_CRC_OFFSET);
        }
        CRC32C crc = new CRC32C(); // heap buffers only occur in tests and tools, never on the hot path
        crc.update(buffer.byteArray(), (int) (buffer.addressOffset() - org.agrona.BufferUtil.ARRAY_BASE_OFFSET)
            + offset,
            HEADER_CRC_OFFSET);
        return (int) crc.getValue();
    }

    /** CRC32C over native memory, with this flyweight's calculator (same thread). */
    public int crc32c(long address, int length) {
        return crc32c.compute(address, length);
    }

    /**
     * As {@link #writeHeader(FrameKind, DType, int, int, long, long, int, int, long, int[], int, long, long, int)}
     * for no job.
     */
    public TensorFrameFlyweight writeHeader(FrameKind kind, DType dtype, int flags, long epoch, long step,
                                            int sourceRank, int destRank, long tensorKey, int[] shape, int ndims,
                                            long totalBytes, long chunkOffset, int chunkBytes) {
        return writeHeader(kind, dtype, flags, JobIdentity.NO_JOB, epoch, step, sourceRank, destRank, tensorKey, shape,
            ndims, totalBytes, chunkOffset, chunkBytes);
    }

    /**
     * Writes every header field except the CRCs, zeroing the counter, the reference field and unused dims;
     * {@code shape} holds {@code ndims} dimensions; {@code jobId} and {@code epoch} are the sender's
     * {@link JobIdentity}.
     */
    public TensorFrameFlyweight writeHeader(FrameKind kind, DType dtype, int flags, int jobId, long epoch, long step,
                                            int sourceRank, int destRank, long tensorKey, int[] shape, int ndims,
                                            long totalBytes, long chunkOffset, int chunkBytes) {
        MutableDirectBuffer b = mutableBuffer;
        int o = offset;
        b.putInt(o + MAGIC_OFFSET, MAGIC, LE);
        b.putShort(o + VERSION_OFFSET, VERSION, LE);
        b.putByte(o + KIND_OFFSET, (byte) kind.code());
        b.putByte(o + DTYPE_OFFSET, (byte) dtype.wireCode());
        b.putByte(o + FLAGS_OFFSET, (byte) flags);
        b.putByte(o + NDIMS_OFFSET, (byte) ndims);
        b.putShort(o + FRAME_COUNTER_HIGH_OFFSET, (short) 0, LE);
        b.putInt(o + SOURCE_RANK_OFFSET, sourceRank, LE);
        b.putLong(o + EPOCH_OFFSET, epoch, LE);
        b.putLong(o + STEP_OFFSET, step, LE);
        b.putInt(o + DEST_RANK_OFFSET, destRank, LE);
        b.putInt(o + JOB_ID_OFFSET, jobId, LE);
        b.putLong(o + TENSOR_KEY_OFFSET, tensorKey, LE);
        for (int i = 0; i < MAX_DIMS; i++) {
            b.putInt(o + dimOffset(i), i < ndims ? shape[i] : 0, LE);
        }
        b.putLong(o + TOTAL_BYTES_OFFSET, totalBytes, LE);
        b.putLong(o + CHUNK_OFFSET_OFFSET, chunkOffset, LE);
        b.putInt(o + CHUNK_BYTES_OFFSET, chunkBytes, LE);
        b.putInt(o + CHUNK_CRC_OFFSET, 0, LE);
        b.putInt(o + CHUNK_CRC_OFFSET + 4, 0, LE);
        b.putInt(o + HEADER_CRC_OFFSET, 0, LE);
        return this;
    }

    /** Sets the chunk CRC, then seals the header with its own CRC (call last). */
    public void sealCrc(int chunkCrc) {
        mutableBuffer.putInt(offset + CHUNK_CRC_OFFSET, chunkCrc, LE);
        mutableBuffer.putInt(offset + HEADER_CRC_OFFSET, computeHeaderCrc(), LE);
    }

    private static DType[] dtypeTable() {
        int max = 0;
        for (DType t : DType.values()) {
            max = Math.max(max, t.wireCode());
        }
        DType[] table = new DType[max + 1];
        for (DType t : DType.values()) {
            table[t.wireCode()] = t;
        }
        return table;
    }
}
