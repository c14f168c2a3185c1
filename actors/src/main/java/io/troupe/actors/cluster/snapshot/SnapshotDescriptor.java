package io.troupe.actors.cluster.snapshot;

/**
 * The layout of one rank's snapshot in memory and on the wire (little-endian): a fixed header, a
 * table of the rank's model chunks, then the payload. The CRC32C covers the chunk table and the
 * payload; the header's version fields are checked by value.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                     magic 'TSNP' (0x504E5354)                  |  0
 * |                           version                              |  4
 * |                            job id                              |  8
 * |                  rank (whose shard this is)                    | 12
 * |                     epoch (when taken), long                   | 16
 * |              step (steps committed before it), long            | 24
 * |                            chunks                              | 32
 * |                reserved (0)                                    | 36
 * |                  length after the header, long                 | 40
 * |           CRC32C of everything after the header                | 48
 * |                reserved (0)                                    | 52
 * |                reserved (0), long                              | 56
 * +---------------------------------------------------------------+
 * | per chunk: optimizer step (long), parameter count (long),      | 64
 * |            optimizer state count (long)                        |
 * +---------------------------------------------------------------+
 * | per chunk: parameters (f32 x count), first moment, second      |
 * |            moment (f32 x state count each)                     |
 * +---------------------------------------------------------------+
 * </pre>
 */
public final class SnapshotDescriptor {
    public static final int MAGIC = 0x504E5354;
    public static final int VERSION = 1;
    public static final int MAGIC_OFFSET = 0;
    public static final int VERSION_OFFSET = 4;
    public static final int JOB_ID_OFFSET = 8;
    public static final int RANK_OFFSET = 12;
    public static final int EPOCH_OFFSET = 16;
    public static final int STEP_OFFSET = 24;
    public static final int CHUNKS_OFFSET = 32;
    public static final int BODY_LENGTH_OFFSET = 40;
    public static final int CRC_OFFSET = 48;
    public static final int HEADER_LENGTH = 64;
    public static final int CHUNK_ENTRY_LENGTH = 24;
    /** Most chunks (virtual stages) a rank holds. */
    public static final int MAX_CHUNKS = 256;

    private SnapshotDescriptor() {
    }

    /** Bytes of a snapshot of {@code chunks} chunks holding {@code floats} floats in all. */
    public static long lengthBytes(int chunks, long floats) {
        return HEADER_LENGTH + (long) chunks * CHUNK_ENTRY_LENGTH + floats * Float.BYTES;
    }

    /** Offset of chunk {@code c}'s entry in the chunk table. */
    public static int chunkEntryOffset(int c) {
        return HEADER_LENGTH + c * CHUNK_ENTRY_LENGTH;
    }
}
