package io.troupe.models.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shard file's size, known before encoding; the reference codec's one-array limit; the limit that
 * stays for every reader, one tensor's elements in one array.
 */
class ShardCodecTest {
    @TempDir
    Path tmp;

    @Test
    void shouldKnowTheEncodedSizeBeforeEncodingAndDecodeWhatItEncoded() {
        Random rnd = new Random(11);
        for (int trial = 0; trial < 20; trial++) {
            ShardState s = RandomShards.random(rnd, 1 + rnd.nextInt(6), 120_000);
            byte[] data = ShardCodec.encode(s);
            assertEquals(data.length, ShardCodec.encodedBytes(s));
            RandomShards.assertSameShard(s, ShardCodec.decode(data, "shard.bin"));
        }
    }

    /** The reference holds the whole file in one array; the files themselves are streamed and have no such limit. */
    @Test
    void shouldRefuseAShardLargerThanOneArrayInTheReferenceNamingItsSize() {
        ShardState s = RandomShards.random(new Random(5), 3, 120_000);
        long bytes = ShardCodec.encodedBytes(s);
        assertEquals(bytes, ShardCodec.encode(s, bytes).length, "exactly at the limit is encoded");
        CheckpointException e = assertThrows(CheckpointException.class, () -> ShardCodec.encode(s, bytes - 1));
        assertTrue(e.getMessage().contains(bytes + " bytes, more than the " + (bytes - 1)), e.getMessage());
        assertTrue(ShardCodec.MAX_ARRAY_BYTES < Integer.MAX_VALUE, "one array holds the whole file");
    }

    /**
     * A tensor of 2^31 elements does not fit a Java array: every reader refuses the entry that declares
     * one, naming its element count, before it reads or allocates anything for it.
     */
    @Test
    void shouldRefuseATensorLargerThanOneArrayNamingItsElementCount() throws IOException {
        byte[] name = "wte.weight".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        ByteBuffer body = ByteBuffer.allocate(ShardCodec.HEADER_BYTES + 4 + name.length + 4 + 8)
            .order(ByteOrder.LITTLE_ENDIAN);
        body.put(ShardCodec.MAGIC).putInt(ShardCodec.VERSION).putLong(7).putInt(1);
        body.putInt(name.length).put(name).putInt(2).putInt(65536).putInt(32768);
        byte[] trailer = ShardBlockCrcs.trailer(body.array());
        Path file = tmp.resolve("shard-g00.bin");
        Files.write(file, body.array());
        Files.write(file, trailer, StandardOpenOption.APPEND);
        String expected = "entry 'wte.weight' of shape [65536, 32768] has 2147483648 elements, more than the "
            + ShardCodec.MAX_TENSOR_ELEMENTS + " one array holds";

        byte[] data = Files.readAllBytes(file);
        CheckpointException ref = assertThrows(CheckpointException.class, () -> ShardCodec.decode(data, "x"));
        CheckpointException streamed = assertThrows(CheckpointException.class, () -> ShardFileReader.read(file));
        CheckpointException indexed;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            indexed = assertThrows(CheckpointException.class, () -> ShardFileIndex.scan(ch, file));
        }
        for (CheckpointException e : new CheckpointException[] {ref, streamed, indexed}) {
            assertTrue(e.getMessage().contains(expected), e.getMessage());
        }
        assertEquals(file + ": " + expected, streamed.getMessage());
    }
}
