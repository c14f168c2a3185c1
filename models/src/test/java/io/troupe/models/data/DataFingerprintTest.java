package io.troupe.models.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.checkpoint.Checkpoints;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class DataFingerprintTest {
    @TempDir
    Path dir;

    @Test
    void shouldHashSmallDataFullyAndRoundTripThroughDataJson() throws Exception {
        byte[] bytes = "the quick brown fox\n".repeat(100).getBytes();
        Path f = Files.write(dir.resolve("a.txt"), bytes);
        DataFingerprint fp = DataFingerprint.of(f);
        assertEquals(bytes.length, fp.sizeBytes());
        assertEquals("sha256", fp.hashKind());
        assertEquals(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)), fp.hash(),
            "the same digest as sha256sum");
        Path run = dir.resolve("run");
        fp.write(run);
        assertEquals(fp, DataFingerprint.read(run.resolve(DataFingerprint.FILE_NAME)));
        fp.requireSameAs(run.resolve("checkpoints").resolve("step-00000002"));
    }

    @Test
    void shouldWriteValidJsonForAPathWithQuotesBackslashesAndControlCharacters() throws Exception {
        Path odd = Files.createDirectories(dir.resolve("a \"quoted\" \\ dir\nwith\ta newline\001\r"));
        Path f = Files.writeString(odd.resolve("data.txt"), "x".repeat(100));
        DataFingerprint fp = DataFingerprint.of(f);
        String json = fp.toJson();
        assertTrue(json.endsWith(System.lineSeparator()), json);
        String body = json.substring(0, json.length() - System.lineSeparator().length());
        assertTrue(body.chars().allMatch(c -> c >= 0x20), "no raw control character in the JSON: " + json);
        assertTrue(body.contains("\\\"quoted\\\" \\\\ dir\\nwith\\u0009a newline\\u0001\\u000d"), body);
        Path run = dir.resolve("run");
        fp.write(run);
        DataFingerprint back = DataFingerprint.read(run.resolve(DataFingerprint.FILE_NAME));
        assertEquals(fp, back);
        assertEquals(f.toString(), back.source());
    }

    @Test
    void shouldRoundTripItsTokenAndRefuseAMalformedOneByItsText() throws IOException {
        DataFingerprint fp = DataFingerprint.of(Files.writeString(dir.resolve("a.txt"), "x".repeat(2000)));
        assertEquals(fp, DataFingerprint.fromToken(fp.source(), fp.token()));
        for (String bad : new String[] {"", "sha256", "sha256:12", "sha256:-1:ab", "sha256:x:ab", ":12:ab",
            "sha256:12:"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DataFingerprint.fromToken("a", bad));
            assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
        }
    }

    @Test
    void shouldRefuseOtherBytesNamingBothSources() throws IOException {
        Path a = Files.writeString(dir.resolve("a.txt"), "x".repeat(2000));
        Path b = Files.writeString(dir.resolve("b.txt"), "x".repeat(1999) + "y");
        Path run = dir.resolve("run");
        DataFingerprint.of(a).write(run);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> DataFingerprint.of(b).requireSameAs(run));
        assertTrue(e.getMessage().contains("a.txt") && e.getMessage().contains("b.txt"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
        DataFingerprint.of(Files.copy(a, dir.resolve("renamed.txt"))).requireSameAs(run);
    }

    /**
     * A cluster job keeps its data.json beside its job record in {@code checkpoints/}: a resume that names the run
     * directory finds it there too, and a run's own data.json comes first.
     */
    @Test
    void shouldFindTheRecordInTheRunDirectoryItsCheckpointsOrAbove() throws IOException {
        Path a = Files.writeString(dir.resolve("a.txt"), "x".repeat(2000));
        Path b = Files.writeString(dir.resolve("b.txt"), "x".repeat(1999) + "y");
        Path run = dir.resolve("cluster-run");
        Path checkpoints = run.resolve("checkpoints");
        assertNull(DataFingerprint.recordIn(run), "nothing recorded");
        DataFingerprint.of(a).write(checkpoints);
        Path json = checkpoints.resolve(DataFingerprint.FILE_NAME).toAbsolutePath();
        assertEquals(json, DataFingerprint.recordIn(run));
        assertEquals(json, DataFingerprint.recordIn(checkpoints));
        Path step = Files.createDirectories(checkpoints.resolve("step-00000002"));
        Files.writeString(step.resolve(Checkpoints.MANIFEST), "{}");
        assertEquals(json, DataFingerprint.recordIn(step));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> DataFingerprint.of(b).requireSameAs(run));
        assertTrue(e.getMessage().contains("a.txt") && e.getMessage().contains("b.txt"), e.getMessage());
        DataFingerprint.of(b).write(run);
        assertEquals(run.resolve(DataFingerprint.FILE_NAME).toAbsolutePath(), DataFingerprint.recordIn(run));
    }

    /**
     * Only the run's own places are looked in: a data.json above a run directory, above a checkpoint copied out of
     * its run, or beside a directory that is not a checkpoint, is someone else's file, not the run's record.
     */
    @Test
    void shouldNotTakeADataJsonOutsideTheRunForItsRecord() throws IOException {
        DataFingerprint other = DataFingerprint.of(Files.writeString(dir.resolve("other.txt"), "y".repeat(100)));
        Path runs = dir.resolve("runs");
        Path run = runs.resolve("r1");
        Path step = Files.createDirectories(run.resolve("checkpoints").resolve("step-00000004"));
        Files.writeString(step.resolve(Checkpoints.MANIFEST), "{}");
        other.write(runs);                               // runs/data.json: a user's file one level above the run
        assertNull(DataFingerprint.recordIn(run), "above the run directory");
        assertNull(DataFingerprint.recordIn(run.resolve("checkpoints")), "two levels above its checkpoints/");
        assertNull(DataFingerprint.recordIn(step), "three levels above a checkpoint");
        Path copied = Files.createDirectories(dir.resolve("backups").resolve("step-00000004"));
        Files.writeString(copied.resolve(Checkpoints.MANIFEST), "{}");
        other.write(dir.resolve("backups"));
        assertNull(DataFingerprint.recordIn(copied), "beside a checkpoint copied out of its run");
        Path plain = Files.createDirectories(run.resolve("checkpoints").resolve("notes"));
        other.write(run);
        assertEquals(run.resolve(DataFingerprint.FILE_NAME).toAbsolutePath(), DataFingerprint.recordIn(step),
            "the run directory's own, from one of its checkpoints");
        assertNull(DataFingerprint.recordIn(plain), "a directory in checkpoints/ that is not a checkpoint");
    }

    @Test
    void shouldSampleALargeCorpusAndSeeAChangedBlock() throws IOException {
        Path big = dir.resolve("big.bin");
        long size = DataFingerprint.FULL_HASH_BYTES + 12_345;
        try (RandomAccessFile f = new RandomAccessFile(big.toFile(), "rw")) {
            f.setLength(size);
        }
        DataFingerprint before = DataFingerprint.of(big);
        assertEquals("sha256-sampled", before.hashKind());
        try (RandomAccessFile f = new RandomAccessFile(big.toFile(), "rw")) {
            f.seek(size - 1);
            f.write(7);
        }
        assertFalse(before.sameData(DataFingerprint.of(big)), "the last block is sampled");
    }

    private static byte[] randomBytes(int n, long seed) {
        byte[] b = new byte[n];
        new java.util.Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void shouldGiveALoadedFileTheFingerprintOfItsPath() throws Exception {
        // past one 1 MiB read buffer, the train / validation split inside it
        byte[] bytes = randomBytes((3 << 20) + 12_345, 7);
        Path f = Files.write(dir.resolve("a.txt"), bytes);
        DataFingerprint loaded = DataFingerprint.of(f, Corpora.fromPath(f));
        assertEquals(DataFingerprint.of(f), loaded);
        assertEquals("sha256", loaded.hashKind());
        assertEquals(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)), loaded.hash());
    }

    @Test
    void shouldGiveALoadedDirectoryOfSeveralFilesTheFingerprintOfItsPath() throws Exception {
        Path data = Files.createDirectories(dir.resolve("data"));
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        int[] sizes = {700_000, 1, 1 << 20, 333_333, 5};
        for (int i = 0; i < sizes.length; i++) {
            byte[] b = randomBytes(sizes[i], i);
            Files.write(data.resolve("part-" + i), b);
            sha.update(b);
        }
        Files.write(data.resolve(".skipped"), randomBytes(1000, 99));
        Files.createDirectories(data.resolve("sub"));
        DataFingerprint loaded = DataFingerprint.of(data, Corpora.fromPath(data));
        assertEquals(DataFingerprint.of(data), loaded);
        assertEquals(HexFormat.of().formatHex(sha.digest()), loaded.hash(), "the files' concatenation, in name order");
    }

    @Test
    void shouldGiveALoadedCorpusTheSampledFingerprintOfItsPathAboveTheFullHashSize() throws Exception {
        // 256 samples of 1 MiB per fingerprint: a directory only, whose samples cross its files and the split
        long fullHashBytes = DataFingerprint.SAMPLE_BYTES;
        Path data = Files.createDirectories(dir.resolve("data"));
        for (int i = 0; i < 4; i++) {
            Files.write(data.resolve("part-" + i), randomBytes(900_000 + 77_777 * i, 10 + i));
        }
        DataFingerprint directory = DataFingerprint.of(data, Corpora.fromPath(data), fullHashBytes);
        assertEquals("sha256-sampled", directory.hashKind());
        assertEquals(DataFingerprint.of(data, fullHashBytes), directory, "samples across files and the split");
    }
}
