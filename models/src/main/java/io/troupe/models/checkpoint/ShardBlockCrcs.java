package io.troupe.models.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * The block checksums at the end of a version-2 shard file, so a reader that fetches only some byte
 * ranges (a resharding reader takes the slices its tp member needs) still checks every byte it uses:
 * a CRC32C per {@link #BLOCK_BYTES} of the body (the header and entries), then the table's own CRC and
 * a magic. Little-endian:
 * <pre>
 *   body        bytes [0, bodyEnd)
 *   blockBytes  int32
 *   blockCount  int32
 *   crc         int32[blockCount]   CRC32C of body bytes [k * blockBytes, min((k + 1) * blockBytes, bodyEnd))
 *   bodyEnd     int64
 *   tableCrc    int32               CRC32C of the trailer from blockBytes through bodyEnd
 *   magic       "TRPBLKS2" (8 bytes)
 * </pre>
 *
 * @param blockBytes bytes per checked block
 * @param crcs       each block's CRC32C
 * @param bodyEnd    where the body ends and the trailer begins
 */
record ShardBlockCrcs(int blockBytes, int[] crcs, long bodyEnd) {
    static final int BLOCK_BYTES = 64 * 1024;
    static final byte[] MAGIC = "TRPBLKS2".getBytes(StandardCharsets.US_ASCII);
    /** Trailer bytes besides the CRC table: blockBytes, blockCount, bodyEnd, tableCrc, magic. */
    static final int FIXED = 4 + 4 + 8 + 4 + 8;

    /** The number of blocks of {@code blockBytes} that a body of {@code bodyEnd} bytes has. */
    static long blockCount(long bodyEnd, int blockBytes) {
        return (bodyEnd + blockBytes - 1) / blockBytes;
    }

    /** Bytes of the trailer of a body of {@code bodyEnd} bytes in blocks of {@code blockBytes}. */
    static long trailerBytes(long bodyEnd, int blockBytes) {
        return FIXED + 4 * blockCount(bodyEnd, blockBytes);
    }

    /** The trailer of {@code body}: its blocks' CRCs, in {@link #BLOCK_BYTES} blocks. */
    static byte[] trailer(byte[] body) {
        return trailer(body, BLOCK_BYTES);
    }

    /** The trailer of {@code body} in blocks of {@code blockBytes}: the reference of {@link ShardFileWriter}'s. */
    static byte[] trailer(byte[] body, int blockBytes) {
        int blocks = (int) blockCount(body.length, blockBytes);
        ByteBuffer bb = ByteBuffer.allocate(FIXED + 4 * blocks).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(blockBytes).putInt(blocks);
        CRC32C crc = new CRC32C();
        for (int k = 0; k < blocks; k++) {
            crc.reset();
            int from = k * blockBytes;
            crc.update(body, from, Math.min(blockBytes, body.length - from));
            bb.putInt((int) crc.getValue());
        }
        bb.putLong(body.length);
        crc.reset();
        crc.update(bb.array(), 0, bb.position());
        bb.putInt((int) crc.getValue());
        bb.put(MAGIC);
        return bb.array();
    }

    /** The trailer of a whole file in memory, checked; the body's blocks are not checked here. */
    static ShardBlockCrcs parse(byte[] data, String file) {
        return parse(data.length, file,
            (pos, len) -> ByteBuffer.wrap(data, (int) pos, len).slice().order(ByteOrder.LITTLE_ENDIAN));
    }

    /** The trailer at the end of {@code ch}'s file, checked. */
    static ShardBlockCrcs read(FileChannel ch, Path file) throws IOException {
        long size = ch.size();
        IOException[] failure = new IOException[1];
        ShardBlockCrcs t = parse(size, file.toString(), (pos, len) -> {
            try {
                return ShardFileIndex.read(ch, pos, len, size, file, "block checksums");
            } catch (IOException e) {
                failure[0] = e;
                return ByteBuffer.allocate(len).order(ByteOrder.LITTLE_ENDIAN);
            }
        });
        if (failure[0] != null) {
            throw failure[0];
        }
        return t;
    }

    private interface Reader {
        ByteBuffer read(long pos, int len);
    }

    private static ShardBlockCrcs parse(long size, String file, Reader in) {
        if (size < FIXED) {
            throw new CheckpointException(file + ": too short for its block checksums (" + size + " bytes)");
        }
        ByteBuffer tail = in.read(size - 20, 20);
        long bodyEnd = tail.getLong();
        int tableCrc = tail.getInt();
        byte[] magic = new byte[8];
        tail.get(magic);
        if (!Arrays.equals(magic, MAGIC)) {
            throw new CheckpointException(file + ": its block checksums are missing (bad trailer magic)");
        }
        if (bodyEnd < ShardCodec.HEADER_BYTES || bodyEnd > size - FIXED
            || size - 12 - bodyEnd > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(file + ": impossible body end " + bodyEnd + " in its block checksums");
        }
        int tableLen = (int) (size - 12 - bodyEnd);
        ByteBuffer table = in.read(bodyEnd, tableLen);
        CRC32C crc = new CRC32C();
        crc.update(table.duplicate());
        if ((int) crc.getValue() != tableCrc) {
            throw new CheckpointException(file + ": its block checksum table is corrupt (CRC mismatch)");
        }
        int blockBytes = table.getInt();
        int blocks = table.getInt();
        if (blockBytes <= 0 || blocks != blockCount(bodyEnd, blockBytes)
            || tableLen != 8 + 4L * blocks + 8) {
            throw new CheckpointException(file + ": inconsistent block checksums: block_bytes=" + blockBytes
                + ", blocks=" + blocks + ", body_end=" + bodyEnd);
        }
        int[] crcs = new int[blocks];
        for (int k = 0; k < blocks; k++) {
            crcs[k] = table.getInt();
        }
        return new ShardBlockCrcs(blockBytes, crcs, bodyEnd);
    }

    /**
     * Checks block {@code k} of {@code bytes} (its bytes, read by the caller).
     *
     * @throws CheckpointException naming the file, the block and its byte range on a mismatch
     */
    void check(int k, ByteBuffer bytes, String file) {
        CRC32C crc = new CRC32C();
        crc.update(bytes);
        if ((int) crc.getValue() != crcs[k]) {
            long from = (long) k * blockBytes;
            throw new CheckpointException(file + ": corrupt bytes in block " + k + " [" + from + ", "
                + Math.min(from + blockBytes, bodyEnd) + ") (CRC32C mismatch)");
        }
    }

    /** Byte length of block {@code k}. */
    int blockLength(int k) {
        return (int) Math.min(blockBytes, bodyEnd - (long) k * blockBytes);
    }
}
