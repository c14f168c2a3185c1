package io.troupe.models.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(120)
class CorporaTest {
    @TempDir
    Path dir;

    @Test
    void shouldReadAFileLargerThanTwoGibibytesThroughTheMap() throws IOException {
        Path big = dir.resolve("big.bin");
        long size = (5L << 30) / 2 + 12_345;              // 2.5 GiB, sparse: only the marks are written
        long[] marks = {0, (1L << 30) - 1, 1L << 30, Integer.MAX_VALUE, 1L << 31, (1L << 31) + 7, size - 2, size - 1};
        try (RandomAccessFile f = new RandomAccessFile(big.toFile(), "rw")) {
            f.setLength(size);
            for (int i = 0; i < marks.length; i++) {
                f.seek(marks[i]);
                f.write(i + 1);
            }
        }
        Corpora c = Corpora.fromPath(big);
        long split = (long) (size * 0.9);
        assertEquals(split, c.train().length());
        assertEquals(size - split, c.val().length());
        for (int i = 0; i < marks.length; i++) {
            int token = marks[i] < split ? c.train().token(marks[i]) : c.val().token(marks[i] - split);
            assertEquals(i + 1, token, "byte at " + marks[i]);
        }
        assertEquals(0, c.train().token(3L << 29), "a hole reads as zero");
        Batches b = Batches.shuffled(c.train(), 64, 7);
        assertTrue(b.windowsPerEpoch() > Integer.MAX_VALUE / 64, "windows past the int range of offsets");
        long maxStart = 0;
        for (int row = 0; row < 256; row++) {
            maxStart = Math.max(maxStart, b.start(0, 256, row));
        }
        assertTrue(maxStart > Integer.MAX_VALUE, "rows start past 2 GiB: " + maxStart);
        int[] x = new int[256 * 64];
        int[] y = new int[256 * 64];
        b.fill(0, 256, 0, 256, x, y);
    }

    @Test
    void shouldReadADirectoryAsTheConcatenationOfItsFilesInNameOrder() throws IOException {
        Path d = Files.createDirectory(dir.resolve("corpus"));
        byte[] a = filled(700, 'a');
        byte[] b = filled(900, 'b');
        byte[] c = filled(400, 'c');
        Files.write(d.resolve("02-b.txt"), b);
        Files.write(d.resolve("01-a.txt"), a);
        Files.write(d.resolve("03-c.txt"), c);
        Files.write(d.resolve(".hidden"), filled(50, 'h'));
        Corpora corpus = Corpora.fromPath(d);
        assertEquals(List.of(d.resolve("01-a.txt"), d.resolve("02-b.txt"), d.resolve("03-c.txt")), Corpora.files(d));
        assertEquals(1800, corpus.train().length());
        assertEquals(200, corpus.val().length());
        assertEquals('a', corpus.train().token(699));
        assertEquals('b', corpus.train().token(700));
        assertEquals('c', corpus.train().token(1600));
        assertEquals('c', corpus.val().token(199));
        byte[] all = corpus.train().slice(0, 1800);
        assertEquals('b', all[1599]);
    }

    @Test
    void shouldNameAMissingOrTinySource() throws IOException {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
            () -> Corpora.fromPath(dir.resolve("nope")));
        assertTrue(missing.getMessage().contains("nope"), missing.getMessage());
        Path tiny = Files.write(dir.resolve("tiny.txt"), filled(10, 'x'));
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class, () -> Corpora.fromPath(tiny));
        assertTrue(small.getMessage().contains("10 bytes"), small.getMessage());
    }

    /** A split too short for the model's windows is named with what it holds, what it needs, and the size to give. */
    @Test
    void shouldRefuseASplitTooShortForTheWindowsNamingTheSizeItNeeds() throws IOException {
        Path f = Files.write(dir.resolve("k.txt"), filled(1024, 'k'));
        Corpora c = Corpora.fromPath(f);
        c.requireWindows(64);                                   // validation: 103 tokens >= 65
        IllegalArgumentException val = assertThrows(IllegalArgumentException.class, () -> c.requireWindows(128));
        assertEquals("data too short for seq_len=128: " + f + " (val) holds 103 tokens, need >= 129 (one window"
            + " and its next token); a data file or directory needs >= 1281 bytes for seq_len=128", val.getMessage());
        IllegalArgumentException train = assertThrows(IllegalArgumentException.class, () -> c.requireWindows(1024));
        assertTrue(train.getMessage().contains(f + " (train) holds 921 tokens, need >= 2049"), train.getMessage());
        for (int seq : new int[] {1, 16, 64, 128, 1000, 1024}) {
            long min = Corpora.minBytes(seq);
            Corpora.fromPath(Files.write(dir.resolve("min.txt"), filled((int) min, 'm'))).requireWindows(seq);
            if (min > Corpora.MIN_BYTES) {
                Corpora under = Corpora.fromPath(Files.write(dir.resolve("under.txt"), filled((int) min - 1, 'u')));
                assertThrows(IllegalArgumentException.class, () -> under.requireWindows(seq), "seq " + seq);
            }
        }
    }

    /** A directory with nothing to read says what it does hold; an entry that is not a file is named, not skipped. */
    @Test
    void shouldNameWhatADirectoryHoldsInsteadOfSkippingItSilently() throws IOException {
        Path d = Files.createDirectory(dir.resolve("shards"));
        Files.createDirectory(d.resolve("part-1"));
        Files.write(d.resolve(".index"), filled(2000, 'i'));
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> Corpora.fromPath(d));
        assertTrue(none.getMessage().contains("holds no files to read") && none.getMessage().contains(
            "its 1 subdirectory is not read") && none.getMessage().endsWith(d.toString()), none.getMessage());
        Files.write(d.resolve("a.txt"), filled(2000, 'a'));
        Files.createSymbolicLink(d.resolve("b.txt"), dir.resolve("unmounted/b.txt"));
        IllegalArgumentException broken = assertThrows(IllegalArgumentException.class, () -> Corpora.fromPath(d));
        assertTrue(broken.getMessage().contains("holds b.txt, neither a regular file nor a directory (a link to"
            + " nothing readable"), broken.getMessage());
        Files.delete(d.resolve("b.txt"));
        assertEquals(List.of(d.resolve("a.txt")), Corpora.files(d));
    }

    /** A named pipe is not a missing path: the message says what it is. */
    @Test
    void shouldNameAPipeAsNeitherAFileNorADirectory() throws Exception {
        Path fifo = dir.resolve("pipe");
        Assumptions.assumeTrue(mkfifo(fifo), "mkfifo available");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Corpora.fromPath(fifo));
        assertEquals("data " + fifo + " is neither a regular file nor a directory (a named pipe); expected a text"
            + " file or a directory of them", e.getMessage());
    }

    /** Makes a named pipe with mkfifo(1); false where there is none. */
    static boolean mkfifo(Path p) throws InterruptedException {
        try {
            Process pr = new ProcessBuilder("mkfifo", p.toString()).redirectErrorStream(true).start();
            return pr.waitFor(30, java.util.concurrent.TimeUnit.SECONDS) && pr.exitValue() == 0;
        } catch (IOException e) {
            return false;
        }
    }

    private static byte[] filled(int n, char c) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, (byte) c);
        return b;
    }
}
