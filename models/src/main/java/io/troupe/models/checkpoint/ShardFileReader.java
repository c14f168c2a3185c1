package io.troupe.models.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * Reads a whole shard file ({@link ShardCodec}'s layout, version 1 or 2) from start to end through one
 * buffer of a few MiB into the entries' float arrays, so memory stays at the buffer and the block
 * table whatever the file's size. Bytes come in whole checksum blocks ({@link ShardBlockCrcs}) and each
 * block's CRC32C is checked before any of its bytes is parsed, as {@link ShardCodec#decode}, its
 * reference, checks them all first; the whole file's CRC32C (the manifest's) is computed on the way.
 * Refuses what the reference refuses, with the same messages (the file, the offset or the block).
 *
 * <p>Threading: one reader per call.
 */
final class ShardFileReader {
    /** The buffer a shard file comes through. */
    static final int DEFAULT_BUFFER_BYTES = 4 << 20;
    /** The largest checksum block accepted (a block is read whole into the buffer; the writer's are 64 KiB). */
    static final int MAX_BLOCK_BYTES = 64 << 20;
    /** How much a version-1 file (no blocks) is read at a time, at the least. */
    private static final int V1_CHUNK_BYTES = 64 * 1024;
    /** The most bytes one header field is parsed from at once: a name and the rank after it. */
    private static final int MAX_FIELD_BYTES = ShardCodec.MAX_NAME_BYTES + Integer.BYTES;

    /**
     * A whole shard file, read and checked.
     *
     * @param state  the shard
     * @param bytes  the file's length
     * @param crc32c the CRC32C of the whole file, for the manifest's check
     */
    record Result(ShardState state, long bytes, long crc32c) {
    }

    private final FileChannel channel;
    private final String file;
    private final long size;
    /** Where the body ends: the block checksums' start (version 2), or the file's end (version 1). */
    private final long bodyEnd;
    /** The file's block checksums, or null for a version-1 file. */
    private final ShardBlockCrcs blocks;
    /** Reads are whole multiples of this (the checksum block), except the body's last. */
    private final int chunkBytes;
    /** File bytes [bufferStart, bufferStart + limit), checked; its position is the next byte to parse. */
    private final ByteBuffer buffer;
    private long bufferStart;
    /** File bytes before this one are read (and checked): a multiple of {@link #chunkBytes}, or the body's end. */
    private long readEnd;
    private final CRC32C fileCrc = new CRC32C();

    private ShardFileReader(FileChannel channel, Path file, long size, ShardBlockCrcs blocks, int bufferBytes) {
        this.channel = channel;
        this.file = file.toString();
        this.size = size;
        this.blocks = blocks;
        this.bodyEnd = blocks == null ? size : blocks.bodyEnd();
        this.chunkBytes = blocks == null ? V1_CHUNK_BYTES : blocks.blockBytes();
        // After parsing, fewer than MAX_FIELD_BYTES bytes stay unparsed, so one more chunk always fits.
        this.buffer = ByteBuffer.allocateDirect(Math.max(bufferBytes, chunkBytes + MAX_FIELD_BYTES))
            .order(ByteOrder.LITTLE_ENDIAN);
        buffer.limit(0);
    }

    /** Reads and checks the shard file {@code file}. */
    static Result read(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return read(ch, file, DEFAULT_BUFFER_BYTES);
        }
    }

    /**
     * Reads and checks the shard file open in {@code ch} (named {@code file} in errors) through a
     * buffer of {@code bufferBytes} (raised to one checksum block and a header field when smaller).
     *
     * @throws CheckpointException when the file is not a shard, is truncated or corrupt, naming the file and
     *                             the offset or block
     */
    static Result read(FileChannel ch, Path file, int bufferBytes) throws IOException {
        long size = ch.size();
        ByteBuffer head = ShardFileIndex.read(ch, 0, ShardCodec.HEADER_BYTES, size, file, "header");
        byte[] magic = new byte[ShardCodec.MAGIC.length];
        head.get(magic);
        if (!Arrays.equals(magic, ShardCodec.MAGIC)) {
            throw new CheckpointException(file + ": not a Troupe shard (bad magic)");
        }
        int version = head.getInt();
        if (version != 1 && version != ShardCodec.VERSION) {
            throw new CheckpointException(file + ": unsupported shard version " + version + " (this build reads 1 to "
                + ShardCodec.VERSION + ")");
        }
        ShardBlockCrcs blocks = version == 1 ? null : ShardBlockCrcs.read(ch, file);
        if (blocks != null && blocks.blockBytes() > MAX_BLOCK_BYTES) {
            throw new CheckpointException(file + ": checksum blocks of " + blocks.blockBytes()
                + " bytes, more than the " + MAX_BLOCK_BYTES + " this reader takes");
        }
        ShardFileReader r = new ShardFileReader(ch, file, size, blocks, bufferBytes);
        ShardState s = r.readBody();
        r.readTrailer();
        return new Result(s, size, r.fileCrc.getValue());
    }

    private ShardState readBody() throws IOException {
        need(ShardCodec.HEADER_BYTES, "header");
        buffer.position(buffer.position() + ShardCodec.MAGIC.length + Integer.BYTES); // checked in read
        ShardState s = new ShardState(buffer.getLong());
        int count = buffer.getInt();
        if (count < 0 || count > ShardCodec.MAX_ENTRIES) {
            throw new CheckpointException(file + ": impossible entry count " + count);
        }
        for (int i = 0; i < count; i++) {
            need(Integer.BYTES, "entry " + i + " name length");
            int nameLen = buffer.getInt();
            if (nameLen < 0 || nameLen > ShardCodec.MAX_NAME_BYTES) {
                throw new CheckpointException(file + ": impossible name length " + nameLen + " at entry " + i);
            }
            need(nameLen + Integer.BYTES, "entry " + i + " name");
            byte[] nameBytes = new byte[nameLen];
            buffer.get(nameBytes);
            String name = new String(nameBytes, StandardCharsets.UTF_8);
            int rank = buffer.getInt();
            if (rank < 1 || rank > ShardCodec.MAX_RANK) {
                throw new CheckpointException(file + ": impossible rank " + rank + " at entry " + i);
            }
            need(rank * Integer.BYTES, "entry " + i + " shape");
            int[] shape = new int[rank];
            for (int d = 0; d < rank; d++) {
                shape[d] = buffer.getInt();
                if (shape[d] <= 0) {
                    throw new CheckpointException(file + ": impossible dimension " + shape[d] + " at entry " + i);
                }
            }
            long n = ShardCodec.elementCount(shape, file, name);
            long left = bodyEnd - position();
            if (n * 12 > left) {
                throw new CheckpointException(file + ": truncated at byte " + size + " inside entry '" + name
                    + "' (needs " + n * 12 + " more bytes, has " + left + ")");
            }
            float[] param = floats((int) n);
            float[] m = floats((int) n);
            float[] v = floats((int) n);
            s.put(new ShardState.Entry(name, shape, param, m, v));
        }
        if (position() != bodyEnd) {
            throw new CheckpointException(file + ": " + (bodyEnd - position()) + " unexpected trailing bytes");
        }
        return s;
    }

    /** The next {@code n} floats (present: the caller checked the length). */
    private float[] floats(int n) throws IOException {
        float[] out = new float[n];
        int off = 0;
        while (off < n) {
            if (buffer.remaining() < Float.BYTES) {
                fill(Float.BYTES);
            }
            int k = Math.min(n - off, buffer.remaining() / Float.BYTES);
            buffer.asFloatBuffer().get(out, off, k);
            buffer.position(buffer.position() + k * Float.BYTES);
            off += k;
        }
        return out;
    }

    /** File offset of the next byte to parse. */
    private long position() {
        return bufferStart + buffer.position();
    }

    /** Makes the next {@code n} bytes ({@code n <= MAX_FIELD_BYTES}) parseable, refusing a body that ends first. */
    private void need(int n, String what) throws IOException {
        if (buffer.remaining() >= n) {
            return;
        }
        long at = position();
        if (at + n > bodyEnd) {
            throw new CheckpointException(file + ": truncated in " + what + " at byte " + at);
        }
        fill(n);
    }

    /** Keeps the unparsed bytes and reads whole chunks after them until {@code n} bytes are there. */
    private void fill(int n) throws IOException {
        bufferStart = position();
        buffer.compact();
        while (buffer.position() < n) {
            readChunks();
        }
        buffer.flip();
    }

    /** Reads as many whole chunks as fit (up to the body's end) and checks their blocks. */
    private void readChunks() throws IOException {
        int from = buffer.position();
        long to = Math.min(bodyEnd, (readEnd + buffer.remaining()) / chunkBytes * chunkBytes);
        if (to <= readEnd) {
            throw new IllegalStateException("no room to read: readEnd=" + readEnd + ", free=" + buffer.remaining());
        }
        int len = (int) (to - readEnd);
        ByteBuffer dst = buffer.duplicate();
        dst.limit(from + len);
        while (dst.hasRemaining()) {
            if (channel.read(dst, readEnd + dst.position() - from) < 0) {
                throw new CheckpointException(file + ": unexpected end at byte " + (readEnd + dst.position() - from)
                    + " (the file shrank while it was read)");
            }
        }
        ByteBuffer got = buffer.duplicate();
        got.position(from).limit(from + len);
        fileCrc.update(got.duplicate());
        if (blocks != null) {
            for (long p = readEnd; p < to; p += chunkBytes) {
                int k = (int) (p / chunkBytes);
                int at = from + (int) (p - readEnd);
                blocks.check(k, got.duplicate().position(at).limit(at + blocks.blockLength(k)), file);
            }
        }
        buffer.position(from + len);
        readEnd = to;
    }

    /** Feeds the bytes after the body (the block checksums, already checked) to the file's CRC32C. */
    private void readTrailer() throws IOException {
        long p = bodyEnd;
        while (p < size) {
            buffer.clear();
            buffer.limit((int) Math.min(buffer.capacity(), size - p));
            while (buffer.hasRemaining()) {
                if (channel.read(buffer, p + buffer.position()) < 0) {
                    throw new CheckpointException(file + ": unexpected end at byte " + (p + buffer.position())
                        + " (the file shrank while it was read)");
                }
            }
            buffer.flip();
            p += buffer.remaining();
            fileCrc.update(buffer);
        }
    }
}
