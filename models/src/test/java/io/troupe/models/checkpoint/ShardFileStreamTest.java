package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The streaming shard writer and reader held to their reference ({@link ShardCodec#encode} and
 * {@link ShardCodec#decode}) on random shards through buffers of many sizes: the same bytes, the same
 * shard, the same refusals; and memory bounded by the buffer, not the file.
 */
@Timeout(120)
class ShardFileStreamTest {
    /** Buffers smaller than a field, odd, one block and a bit, and the default. */
    private static final int[] BUFFERS = {8, 13, 1000, 4099, 64 * 1024 + 7, ShardFileWriter.DEFAULT_BUFFER_BYTES};

    @TempDir
    Path tmp;

    private static ShardFileWriter.Written write(Path file, ShardState s, int bufferBytes, int blockBytes)
        throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
            StandardOpenOption.WRITE)) {
            return ShardFileWriter.write(ch, s, bufferBytes, blockBytes);
        }
    }

    private static ShardFileReader.Result read(Path file, int bufferBytes) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return ShardFileReader.read(ch, file, bufferBytes);
        }
    }

    /** The reference file of {@code s} with blocks of {@code blockBytes}: its body and block checksums. */
    private static byte[] reference(ShardState s, int blockBytes) {
        byte[] body = Arrays.copyOf(ShardCodec.encode(s), (int) ShardCodec.bodyBytes(s));
        byte[] trailer = ShardBlockCrcs.trailer(body, blockBytes);
        byte[] all = Arrays.copyOf(body, body.length + trailer.length);
        System.arraycopy(trailer, 0, all, body.length, trailer.length);
        return all;
    }

    private static long crc32c(byte[] data) {
        CRC32C crc = new CRC32C();
        crc.update(data);
        return crc.getValue();
    }

    @Test
    void shouldWriteTheReferenceBytesThroughAnyBuffer() throws IOException {
        Random rnd = new Random(23);
        Path file = tmp.resolve("shard.bin");
        long largest = 0;
        int files = 0;
        for (int trial = 0; trial < 12; trial++) {
            ShardState s = RandomShards.random(rnd, rnd.nextInt(5), trial < 6 ? 300 : 60_000);
            for (int blockBytes : new int[] {ShardBlockCrcs.BLOCK_BYTES, 1 + rnd.nextInt(5000)}) {
                byte[] expected = blockBytes == ShardBlockCrcs.BLOCK_BYTES ? ShardCodec.encode(s)
                    : reference(s, blockBytes);
                for (int buffer : BUFFERS) {
                    ShardFileWriter.Written w = write(file, s, buffer, blockBytes);
                    byte[] got = Files.readAllBytes(file);
                    assertArrayEquals(expected, got, "blockBytes=" + blockBytes + ", bufferBytes=" + buffer);
                    assertEquals(expected.length, w.bytes());
                    assertEquals(crc32c(expected), w.crc32c());
                    largest = Math.max(largest, got.length);
                    files++;
                }
            }
        }
        System.out.printf("streamed writer: %d files byte-identical to the reference (largest %d bytes)%n", files,
            largest);
    }

    @Test
    void shouldReadWhatTheReferenceWroteThroughAnyBuffer() throws IOException {
        Random rnd = new Random(29);
        Path file = tmp.resolve("shard.bin");
        for (int trial = 0; trial < 12; trial++) {
            ShardState s = RandomShards.random(rnd, rnd.nextInt(5), trial < 6 ? 300 : 60_000);
            for (int blockBytes : new int[] {ShardBlockCrcs.BLOCK_BYTES, 1 + rnd.nextInt(5000)}) {
                byte[] data = reference(s, blockBytes);
                Files.write(file, data);
                ShardState ref = ShardCodec.decode(data, file.toString());
                RandomShards.assertSameShard(s, ref);
                for (int buffer : BUFFERS) {
                    ShardFileReader.Result r = read(file, buffer);
                    RandomShards.assertSameShard(ref, r.state());
                    assertEquals(data.length, r.bytes());
                    assertEquals(crc32c(data), r.crc32c(), "blockBytes=" + blockBytes + ", bufferBytes=" + buffer);
                }
            }
        }
    }

    /** A version-1 file (no block checksums) still reads, through either reader. */
    @Test
    void shouldReadVersionOneFiles() throws IOException {
        Random rnd = new Random(31);
        Path file = tmp.resolve("shard-v1.bin");
        for (int trial = 0; trial < 6; trial++) {
            ShardState s = RandomShards.random(rnd, 1 + rnd.nextInt(4), 40_000);
            byte[] v1 = versionOne(s);
            Files.write(file, v1);
            RandomShards.assertSameShard(s, ShardCodec.decode(v1, file.toString()));
            for (int buffer : BUFFERS) {
                ShardFileReader.Result r = read(file, buffer);
                RandomShards.assertSameShard(s, r.state());
                assertEquals(crc32c(v1), r.crc32c());
            }
        }
    }

    private static byte[] versionOne(ShardState s) {
        byte[] v1 = Arrays.copyOf(ShardCodec.encode(s), (int) ShardCodec.bodyBytes(s));
        ByteBuffer.wrap(v1).order(ByteOrder.LITTLE_ENDIAN).putInt(ShardCodec.MAGIC.length, 1);
        return v1;
    }

    /**
     * A file cut anywhere, or with any byte flipped, is refused by the streaming reader exactly as by the
     * reference: the same message, naming the file and the offset or the block.
     */
    @Test
    void shouldRefuseTruncatedAndCorruptFilesAsTheReferenceDoes() throws IOException {
        Random rnd = new Random(37);
        ShardState s = RandomShards.random(rnd, 4, 60_000);
        Path file = tmp.resolve("shard-g00.bin");
        int corruptBlocks = 0;
        java.util.Set<String> kinds = new java.util.TreeSet<>();
        for (boolean v2 : new boolean[] {true, false}) {
            byte[] good = v2 ? ShardCodec.encode(s) : versionOne(s);
            for (int trial = 0; trial < 60; trial++) {
                byte[] bad;
                // the headers are a few bytes among the payload: a third of the cuts and flips land in them
                int near = trial % 3 == 0 ? 200 : good.length;
                if (trial % 2 == 0) {
                    bad = Arrays.copyOf(good, rnd.nextInt(near));
                } else {
                    if (!v2) {
                        continue; // a version-1 file has no checksums of its own: only the manifest's find a flip
                    }
                    bad = good.clone();
                    int at = trial % 5 == 0 ? good.length - 1 - rnd.nextInt(100) : rnd.nextInt(near);
                    bad[at] ^= (byte) (1 << rnd.nextInt(8));
                }
                Files.write(file, bad);
                CheckpointException ref = assertThrows(CheckpointException.class,
                    () -> ShardCodec.decode(bad, file.toString()));
                for (int buffer : new int[] {8, 4099, ShardFileReader.DEFAULT_BUFFER_BYTES}) {
                    CheckpointException e = assertThrows(CheckpointException.class, () -> read(file, buffer));
                    assertEquals(ref.getMessage(), e.getMessage(), "v2=" + v2 + ", " + bad.length + " bytes");
                    assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
                }
                corruptBlocks += ref.getMessage().contains("corrupt bytes in block") ? 1 : 0;
                kinds.add(ref.getMessage().substring(file.toString().length()).replaceAll("'[^']*'", "'.'")
                    .replaceAll("[0-9]+", "#"));
            }
        }
        System.out.println("refused as the reference does: " + String.join(" | ", kinds));
        assertTrue(corruptBlocks > 5, "flips found by their block: " + corruptBlocks);
    }

    /**
     * Through a committed checkpoint: a cut file is refused by its size, a flipped byte by the manifest's
     * CRC32C, with the block that holds it.
     */
    @Test
    void shouldRefuseACutOrFlippedShardOfACheckpointNamingTheBlock() throws IOException {
        ShardState s = RandomShards.random(new Random(41), 3, 60_000);
        GptConfig cfg = new GptConfig("t", 64, 32, 2, 4, 8, 1e-5f);
        Manifest m = new Manifest(Manifest.FORMAT, 5, 5, 1, 1, "1x1x1", cfg, "test", List.of());
        Path dir = Checkpoints.write(tmp, m, Map.of("shard-g00.bin", s));
        RandomShards.assertSameShard(s, Checkpoints.load(dir).shards().get("shard-g00.bin"));
        Path shard = dir.resolve("shard-g00.bin");
        byte[] good = Files.readAllBytes(shard);
        assertArrayEquals(ShardCodec.encode(s), good);

        Files.write(shard, Arrays.copyOf(good, good.length - 100));
        CheckpointException cut = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir));
        assertTrue(cut.getMessage().contains("is " + (good.length - 100) + " bytes, manifest says " + good.length
            + " (truncated or replaced)"), cut.getMessage());

        byte[] bad = good.clone();
        int at = good.length / 2;
        bad[at] ^= 0x10;
        Files.write(shard, bad);
        CheckpointException flip = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir));
        String block = "corrupt bytes in block " + at / ShardBlockCrcs.BLOCK_BYTES;
        assertTrue(flip.getMessage().contains("does not match manifest") && flip.getMessage().contains(block),
            flip.getMessage());
        CheckpointException verified = assertThrows(CheckpointException.class, () -> Checkpoints.verify(dir));
        assertTrue(verified.getMessage().contains("does not match manifest"), verified.getMessage());
    }

    /**
     * Writing and reading a shard of 96 MB allocates about nothing besides the tensors read: the file
     * goes through one buffer, not one array (the reference allocates the file several times over).
     */
    @Test
    void shouldWriteAndReadInMemoryBoundedByTheBufferNotTheFile() throws IOException {
        ShardState s = new ShardState(3);
        float[] values = new float[2_000_000];
        Random rnd = new Random(43);
        for (int i = 0; i < values.length; i++) {
            values[i] = rnd.nextFloat();
        }
        for (int i = 0; i < 4; i++) {
            s.put(new ShardState.Entry("w" + i, new int[] {1000, 2000}, values, values, values));
        }
        long payload = 4 * 3 * 4L * values.length;
        Path file = tmp.resolve("big.bin");
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().getId();

        long t0 = System.nanoTime();
        long a0 = mx.getThreadAllocatedBytes(tid);
        ShardFileWriter.Written w = write(file, s, 1 << 20, ShardBlockCrcs.BLOCK_BYTES);
        long wrote = mx.getThreadAllocatedBytes(tid) - a0;
        long t1 = System.nanoTime();
        long a1 = mx.getThreadAllocatedBytes(tid);
        ShardFileReader.Result r = read(file, 1 << 20);
        long read = mx.getThreadAllocatedBytes(tid) - a1 - payload;
        long t2 = System.nanoTime();

        assertEquals(ShardCodec.encodedBytes(s), w.bytes());
        RandomShards.assertSameShard(s, r.state());
        System.out.printf("shard of %d bytes through a 1 MiB buffer: write allocated %d bytes (%.0f ms), read %d"
            + " bytes besides its %d of tensors (%.0f ms)%n", w.bytes(), wrote, (t1 - t0) / 1e6, read, payload,
            (t2 - t1) / 1e6);
        assertTrue(wrote < 1 << 20, "the writer allocated " + wrote + " bytes for a file of " + w.bytes());
        assertTrue(read < 1 << 20, "the reader allocated " + read + " bytes besides the tensors");
    }
}
