package io.troupe.models.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.data.Corpora;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.optim.AdamWConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(120)
class TrainerCheckpointTest {
    private static final Corpora DATA = Corpora.builtIn();

    @TempDir
    Path tmp;
    private CpuDevice dev;

    @BeforeEach
    void open() {
        dev = new CpuDevice(2);
    }

    @AfterEach
    void close() {
        dev.close();
    }

    private static TrainConfig config(int steps) {
        // Warm-up and cosine make lr depend on the step, so a resume that got the step wrong diverges.
        return new TrainConfig(GptConfig.tiny(), 4, 2, steps, 3e-3f, 3e-4f,
            3, 1.0f, 7, 0, 2, 0, AdamWConfig.defaults());
    }

    @Test
    void shouldProduceBitwiseIdenticalWeightsWhenResumedFromACheckpoint() {
        float[] straight;
        try (Trainer a = new Trainer(config(20), dev, DATA)) {
            for (int i = 0; i < 20; i++) {
                a.trainStep();
            }
            straight = a.model().params().toFloatArray();
        }
        Path dir;
        try (Trainer b = new Trainer(config(20), dev, DATA)) {
            for (int i = 0; i < 10; i++) {
                b.trainStep();
            }
            dir = b.checkpoint(tmp.resolve("ckpt"));
        }
        try (Trainer c = new Trainer(config(20), dev, DATA)) {
            c.restore(Checkpoints.load(Checkpoints.resolve(tmp.resolve("ckpt"))));
            assertEquals(10, c.step());
            for (int i = 0; i < 10; i++) {
                c.trainStep();
            }
            assertArrayEquals(straight, c.model().params().toFloatArray(), 0f,
                "10 + restart + 10 must equal 20 bit for bit");
        }
        assertTrue(Files.isRegularFile(dir.resolve("manifest.json")));
    }

    @Test
    void shouldLowerTheLossWhenTraining() {
        List<Double> losses = new ArrayList<>();
        try (Trainer t = new Trainer(config(60), dev, DATA)) {
            for (int i = 0; i < 60; i++) {
                losses.add(t.trainStep().loss());
            }
        }
        double head = losses.subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double tail = losses.subList(55, 60).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        System.out.printf("tiny model, 60 steps: mean loss of first 5 steps %.4f, last 5 steps %.4f%n", head, tail);
        assertTrue(tail < head - 1.0, "loss should fall by more than 1 nat: " + head + " -> " + tail);
    }

    @Test
    void shouldRefuseATruncatedShard() throws IOException {
        Path dir = writeOne();
        Path shard = dir.resolve("shard-00.bin");
        try (RandomAccessFile f = new RandomAccessFile(shard.toFile(), "rw")) {
            f.setLength(f.length() - 100);
        }
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void shouldRefuseACorruptShard() throws IOException {
        Path dir = writeOne();
        Path shard = dir.resolve("shard-00.bin");
        byte[] data = Files.readAllBytes(shard);
        data[data.length / 2] ^= 0x10;
        Files.write(shard, data);
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir));
        assertTrue(e.getMessage().contains("CRC32C"), e.getMessage());
    }

    @Test
    void shouldTreatADirectoryWithoutManifestAsNoCheckpoint() throws IOException {
        Path dir = writeOne();
        Files.delete(dir.resolve("manifest.json"));
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir));
        assertTrue(e.getMessage().contains("manifest.json is missing"), e.getMessage());
        assertThrows(CheckpointException.class, () -> Checkpoints.resolve(tmp.resolve("ckpt")));
    }

    /**
     * A manifest value damaged to another valid value (one digit of ln_eps, of the step) is refused by the manifest's
     * own CRC32C, not read as another checkpoint; the manifest as written reads back; one without the field (written
     * before it existed) reads unchecked.
     */
    @Test
    void shouldRefuseAManifestWhoseValuesDoNotMatchItsChecksum() throws IOException {
        Path dir = writeOne();
        Path manifest = dir.resolve("manifest.json");
        String json = Files.readString(manifest);
        assertTrue(json.contains("\"crc32c_of_values\""), json);
        long step = Checkpoints.load(dir).manifest().step();
        for (String[] damage : new String[][] {{"e-06", "e-07"}, {"\"step\": " + step, "\"step\": " + (step + 1)}}) {
            assertTrue(json.contains(damage[0]), damage[0] + " in " + json);
            Files.writeString(manifest, json.replace(damage[0], damage[1]));
            CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir), damage[1]);
            assertTrue(e.getMessage().contains("does not match its own CRC32C") && e.getMessage().contains(
                manifest.toString()), e.getMessage());
        }
        Files.writeString(manifest, json.replaceFirst("\\s*\"crc32c_of_values\": \"[0-9a-f]{8}\",", ""));
        assertEquals(step, Checkpoints.load(dir).manifest().step(), "a manifest without its checksum reads");
        Files.writeString(manifest, json);
        assertEquals(step, Checkpoints.load(dir).manifest().step());
        // a layout that does not parse makes the manifest unreadable, wherever it is read (one without its checksum,
        // so that this check is what refuses it)
        String badLayout = json.replaceFirst("\\s*\"crc32c_of_values\": \"[0-9a-f]{8}\",", "")
            .replace("\"layout\": \"1x1x1\"", "\"layout\": \"1x1x1 (v=two)\"");
        assertTrue(badLayout.contains("(v=two)"), badLayout);
        Files.writeString(manifest, badLayout);
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.load(dir));
        assertTrue(e.getMessage().contains("unreadable manifest") && e.getMessage().contains("1x1x1 (v=two)"),
            e.getMessage());
    }

    @Test
    void shouldRefuseACheckpointOfAnotherModel() {
        writeOne();
        TrainConfig other = new TrainConfig(GptConfig.small(), 4, 2, 20, 3e-3f, 3e-4f,
            3, 1.0f, 7, 0, 2, 0, AdamWConfig.defaults());
        try (Trainer t = new Trainer(other, dev, DATA)) {
            CheckpointException e = assertThrows(CheckpointException.class,
                () -> t.restore(Checkpoints.load(Checkpoints.resolve(tmp.resolve("ckpt")))));
            assertTrue(e.getMessage().contains("d_model") || e.getMessage().contains("dModel=32"), e.getMessage());
        }
    }

    private Path writeOne() {
        try (Trainer t = new Trainer(config(20), dev, DATA)) {
            t.trainStep();
            return t.checkpoint(tmp.resolve("ckpt"));
        }
    }
}
