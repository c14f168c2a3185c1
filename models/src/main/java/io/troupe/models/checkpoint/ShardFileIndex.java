package io.troupe.models.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Where each entry of a shard file ({@link ShardCodec}'s layout) lies, found by reading only the
 * entry headers (the payloads are skipped with positional reads), so a reader can then fetch just
 * the element ranges it needs. Refuses a file whose headers or lengths do not fit, naming the offset.
 */
final class ShardFileIndex {
    /** One entry: its stored shape and the byte offset of its parameter payload (m and v follow). */
    record Location(String name, int[] shape, long numel, long paramOffsetBytes) {
        /** Byte offset of array {@code which} (0 param, 1 m, 2 v). */
        long arrayOffsetBytes(int which) {
            return paramOffsetBytes + which * numel * 4;
        }
    }

    final Path file;
    final long optimizerStep;
    final Map<String, Location> entries;
    /** The file's block checksums, or null for a version-1 file (which has none). */
    final ShardBlockCrcs blocks;

    private ShardFileIndex(Path file, long optimizerStep, Map<String, Location> entries, ShardBlockCrcs blocks) {
        this.file = file;
        this.optimizerStep = optimizerStep;
        this.entries = entries;
        this.blocks = blocks;
    }

    static ShardFileIndex scan(FileChannel ch, Path file) throws IOException {
        long size = ch.size();
        ByteBuffer head = read(ch, 0, ShardCodec.HEADER_BYTES, size, file, "header");
        byte[] magic = new byte[8];
        head.get(magic);
        if (!Arrays.equals(magic, ShardCodec.MAGIC)) {
            throw new CheckpointException(file + ": not a Troupe shard (bad magic)");
        }
        int version = head.getInt();
        if (version != 1 && version != ShardCodec.VERSION) {
            throw new CheckpointException(file + ": unsupported shard version " + version);
        }
        ShardBlockCrcs blocks = version == 1 ? null : ShardBlockCrcs.read(ch, file);
        if (blocks != null) {
            size = blocks.bodyEnd();
        }
        long step = head.getLong();
        int count = head.getInt();
        if (count < 0 || count > ShardCodec.MAX_ENTRIES) {
            throw new CheckpointException(file + ": impossible entry count " + count);
        }
        Map<String, Location> out = new LinkedHashMap<>();
        long pos = ShardCodec.HEADER_BYTES;
        for (int i = 0; i < count; i++) {
            int nameLen = read(ch, pos, 4, size, file, "entry " + i).getInt();
            if (nameLen < 0 || nameLen > ShardCodec.MAX_NAME_BYTES) {
                throw new CheckpointException(file + ": impossible name length " + nameLen + " at byte " + pos);
            }
            pos += 4;
            ByteBuffer nb = read(ch, pos, nameLen + 4, size, file, "entry " + i + " name");
            byte[] name = new byte[nameLen];
            nb.get(name);
            int rank = nb.getInt();
            pos += nameLen + 4;
            if (rank < 1 || rank > ShardCodec.MAX_RANK) {
                throw new CheckpointException(file + ": impossible rank " + rank + " at entry " + i);
            }
            ByteBuffer sb = read(ch, pos, rank * 4, size, file, "entry " + i + " shape");
            int[] shape = new int[rank];
            for (int d = 0; d < rank; d++) {
                shape[d] = sb.getInt();
                if (shape[d] <= 0) {
                    throw new CheckpointException(file + ": impossible dimension " + shape[d] + " at entry " + i);
                }
            }
            pos += rank * 4L;
            String key = new String(name, StandardCharsets.UTF_8);
            long n = ShardCodec.elementCount(shape, file.toString(), key);
            if (pos + n * 12 > size) {
                throw new CheckpointException(file + ": truncated at byte " + size + " inside entry '" + key + "'");
            }
            out.put(key, new Location(key, shape, n, pos));
            pos += n * 12;
        }
        if (pos != size) {
            throw new CheckpointException(file + ": " + (size - pos) + " unexpected trailing bytes");
        }
        return new ShardFileIndex(file, step, out, blocks);
    }

    static ByteBuffer read(FileChannel ch, long pos, int len, long size, Path file, String what) throws IOException {
        if (pos + len > size) {
            throw new CheckpointException(file + ": truncated in " + what + " at byte " + pos);
        }
        ByteBuffer bb = ByteBuffer.allocate(len).order(ByteOrder.LITTLE_ENDIAN);
        while (bb.hasRemaining()) {
            if (ch.read(bb, pos + bb.position()) < 0) {
                throw new CheckpointException(file + ": unexpected end in " + what + " at byte " + pos);
            }
        }
        bb.flip();
        return bb;
    }
}
