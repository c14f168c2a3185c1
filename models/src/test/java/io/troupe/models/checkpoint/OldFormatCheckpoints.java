package io.troupe.models.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * Test fixture: a committed checkpoint rewritten in the older shard format (version 1, no block checksums), as
 * builds before the block checksums wrote it, so that a restore must verify it whole before it reads from it.
 * Public for the other modules' tests (this module's test-jar).
 */
public final class OldFormatCheckpoints {
    private OldFormatCheckpoints() {
    }

    /**
     * Rewrites every shard file of the committed checkpoint {@code dir} as version 1 (the block checksums cut off,
     * the version field set to 1) and its manifest with the files' new sizes and CRC32C.
     */
    public static void rewriteAsVersionOne(Path dir) throws IOException {
        Manifest m = Checkpoints.readManifest(dir);
        List<Manifest.FileEntry> files = new ArrayList<>();
        for (Manifest.FileEntry f : m.files()) {
            Path p = dir.resolve(f.name());
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                ShardBlockCrcs blocks = ShardFileIndex.scan(ch, p).blocks;
                if (blocks != null) {
                    ch.truncate(blocks.bodyEnd());
                    ByteBuffer version = ByteBuffer.allocate(Integer.BYTES).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 1);
                    ch.write(version, ShardCodec.MAGIC.length);
                }
                files.add(new Manifest.FileEntry(f.name(), ch.size(), crc32c(ch)));
            }
        }
        Checkpoints.writeAtomically(dir.resolve(Checkpoints.MANIFEST),
            m.withFiles(files).toJson().getBytes(StandardCharsets.UTF_8));
    }

    private static long crc32c(FileChannel ch) throws IOException {
        CRC32C crc = new CRC32C();
        ByteBuffer bb = ByteBuffer.allocate(1 << 20);
        long pos = 0;
        for (int n = ch.read(bb, pos); n >= 0; n = ch.read(bb.clear(), pos)) {
            pos += n;
            crc.update(bb.flip());
        }
        return crc.getValue();
    }
}
