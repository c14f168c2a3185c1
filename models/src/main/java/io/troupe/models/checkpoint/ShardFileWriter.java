package io.troupe.models.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * Writes a shard file ({@link ShardCodec}'s layout, version 2) by streaming it through one buffer of
 * {@code bufferBytes}: each flush of the buffer feeds the block checksums ({@link ShardBlockCrcs}) and
 * the whole file's CRC32C (the manifest's) before it goes to the channel, so memory stays at the
 * buffer and the block table (4 bytes per 64 KiB) whatever the shard's size. The bytes are those of
 * {@link ShardCodec#encode}, its reference.
 *
 * <p>Threading: one writer per call; the shard's arrays must not change while it is written.
 */
final class ShardFileWriter {
    /** The buffer a shard file goes through on its way to disk. */
    static final int DEFAULT_BUFFER_BYTES = 4 << 20;
    /** The smallest buffer: it holds the widest field (an int64) whole. */
    static final int MIN_BUFFER_BYTES = 8;

    /**
     * What was written.
     *
     * @param bytes  the file's length
     * @param crc32c the CRC32C of the whole file, as the manifest records it
     */
    record Written(long bytes, long crc32c) {
    }

    private final FileChannel channel;
    private final ByteBuffer buffer;
    private final int blockBytes;
    private final long bodyEnd;
    private final int[] blockCrcs;
    private final CRC32C fileCrc = new CRC32C();
    private final CRC32C blockCrc = new CRC32C();
    /** The CRC of the trailer's table while it is written, else null. */
    private CRC32C tableCrc;
    private int blocksDone;
    private int blockFill;
    /** Bytes handed to the channel so far. */
    private long flushedBytes;

    private ShardFileWriter(FileChannel channel, int bufferBytes, int blockBytes, long bodyEnd, int blocks) {
        this.channel = channel;
        this.buffer = ByteBuffer.allocateDirect(bufferBytes).order(ByteOrder.LITTLE_ENDIAN);
        this.blockBytes = blockBytes;
        this.bodyEnd = bodyEnd;
        this.blockCrcs = new int[blocks];
    }

    /** Writes {@code s} to {@code file} (created or replaced), fsynced. */
    static Written write(Path file, ShardState s) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
            StandardOpenOption.WRITE)) {
            Written w = write(ch, s, DEFAULT_BUFFER_BYTES, ShardBlockCrcs.BLOCK_BYTES);
            ch.force(true);
            return w;
        }
    }

    /**
     * Writes {@code s} at {@code ch}'s position through a buffer of {@code bufferBytes}, with block
     * checksums over blocks of {@code blockBytes} (the format's {@link ShardBlockCrcs#BLOCK_BYTES}
     * unless a test asks for others; a reader takes the size from the file).
     */
    static Written write(FileChannel ch, ShardState s, int bufferBytes, int blockBytes) throws IOException {
        if (bufferBytes < MIN_BUFFER_BYTES || blockBytes <= 0) {
            throw new IllegalArgumentException("a shard writer needs a buffer of at least " + MIN_BUFFER_BYTES
                + " bytes and blocks of at least 1: bufferBytes=" + bufferBytes + ", blockBytes=" + blockBytes);
        }
        long body = ShardCodec.bodyBytes(s);
        long blocks = ShardBlockCrcs.blockCount(body, blockBytes);
        if (blocks > Integer.MAX_VALUE - 8) {
            throw new CheckpointException("a shard of " + body + " bytes has " + blocks + " checksum blocks of "
                + blockBytes + " bytes, more than a file's block table holds");
        }
        ShardFileWriter w = new ShardFileWriter(ch, bufferBytes, blockBytes, body, (int) blocks);
        w.writeBody(s);
        w.writeTrailer();
        return new Written(w.flushedBytes, w.fileCrc.getValue());
    }

    private void writeBody(ShardState s) throws IOException {
        putBytes(ShardCodec.MAGIC);
        putInt(ShardCodec.VERSION);
        putLong(s.optimizerStep());
        putInt(s.entries().size());
        for (ShardState.Entry e : s.entries().values()) {
            byte[] name = e.name().getBytes(StandardCharsets.UTF_8);
            putInt(name.length);
            putBytes(name);
            putInt(e.shape().length);
            for (int d : e.shape()) {
                putInt(d);
            }
            putFloats(e.param());
            putFloats(e.m());
            putFloats(e.v());
        }
        flush();
        if (flushedBytes != bodyEnd) {
            throw new IllegalStateException("wrote a shard body of " + flushedBytes + " bytes, expected " + bodyEnd);
        }
        if (blockFill > 0) {
            endBlock();
        }
    }

    /** The block checksums: table (blockBytes, blockCount, CRCs, bodyEnd), the table's CRC, the magic. */
    private void writeTrailer() throws IOException {
        tableCrc = new CRC32C();
        putInt(blockBytes);
        putInt(blockCrcs.length);
        for (int crc : blockCrcs) {
            putInt(crc);
        }
        putLong(bodyEnd);
        flush();
        int table = (int) tableCrc.getValue();
        tableCrc = null;
        putInt(table);
        putBytes(ShardBlockCrcs.MAGIC);
        flush();
    }

    private void putInt(int v) throws IOException {
        if (buffer.remaining() < Integer.BYTES) {
            flush();
        }
        buffer.putInt(v);
    }

    private void putLong(long v) throws IOException {
        if (buffer.remaining() < Long.BYTES) {
            flush();
        }
        buffer.putLong(v);
    }

    private void putBytes(byte[] bytes) throws IOException {
        int off = 0;
        while (off < bytes.length) {
            if (!buffer.hasRemaining()) {
                flush();
            }
            int k = Math.min(bytes.length - off, buffer.remaining());
            buffer.put(bytes, off, k);
            off += k;
        }
    }

    private void putFloats(float[] values) throws IOException {
        int off = 0;
        while (off < values.length) {
            if (buffer.remaining() < Float.BYTES) {
                flush();
            }
            int k = Math.min(values.length - off, buffer.remaining() / Float.BYTES);
            buffer.asFloatBuffer().put(values, off, k);
            buffer.position(buffer.position() + k * Float.BYTES);
            off += k;
        }
    }

    /** Hands the buffer's bytes to the checksums, then to the channel. */
    private void flush() throws IOException {
        buffer.flip();
        fileCrc.update(buffer.duplicate());
        if (tableCrc != null) {
            tableCrc.update(buffer.duplicate());
        } else if (flushedBytes < bodyEnd) {
            updateBlocks(buffer.duplicate());
        }
        flushedBytes += buffer.remaining();
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
        buffer.clear();
    }

    /** Feeds body bytes to the block checksums, closing each block as it fills. */
    private void updateBlocks(ByteBuffer bytes) {
        while (bytes.hasRemaining()) {
            int k = Math.min(blockBytes - blockFill, bytes.remaining());
            int end = bytes.position() + k;
            int limit = bytes.limit();
            bytes.limit(end);
            blockCrc.update(bytes);
            bytes.limit(limit);
            blockFill += k;
            if (blockFill == blockBytes) {
                endBlock();
            }
        }
    }

    private void endBlock() {
        blockCrcs[blocksDone++] = (int) blockCrc.getValue();
        blockCrc.reset();
        blockFill = 0;
    }
}
