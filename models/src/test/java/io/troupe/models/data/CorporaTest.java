package io.troupe.models.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
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

    private static byte[] filled(int n, char c) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, (byte) c);
        return b;
    }
}
