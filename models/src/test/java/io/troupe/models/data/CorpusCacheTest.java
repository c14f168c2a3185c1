package io.troupe.models.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class CorpusCacheTest {
    @TempDir
    Path dir;

    private static byte[] bytes(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static String sha256(byte[]... parts) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (byte[] p : parts) {
            sha.update(p);
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    @Test
    void shouldTakeUnchangedDataAsItIsWithoutReadingItAgain() throws Exception {
        byte[] b = bytes(5000, 1);
        Path f = Files.write(dir.resolve("a.txt"), b);
        CorpusCache cache = new CorpusCache();
        CorpusCache.Loaded first = cache.load(f, () -> null);
        CorpusCache.Loaded second = cache.load(f, () -> null);
        assertEquals(1, cache.reads(), "the second load of unchanged data reads nothing");
        assertSame(first.corpora(), second.corpora());
        assertEquals(DataFingerprint.of(f), second.fingerprint());
        assertEquals(sha256(b), second.fingerprint().hash());
        // the same file named through a link to its directory is the same data
        Path link = Files.createSymbolicLink(dir.resolve("link"), dir);
        assertSame(first, cache.load(link.resolve("a.txt"), () -> null));
        assertEquals(1, cache.reads());
    }

    @Test
    void shouldReadAFileModifiedInPlaceAgainAndReportItsNewFingerprint() throws Exception {
        Path f = Files.write(dir.resolve("a.txt"), bytes(5000, 1));
        CorpusCache cache = new CorpusCache();
        FileTime was = Files.getLastModifiedTime(f);
        DataFingerprint before = cache.load(f, () -> null).fingerprint();
        byte[] now = bytes(5000, 2);
        Files.write(f, now); // the same size, the same inode
        Files.setLastModifiedTime(f, FileTime.fromMillis(was.toMillis() + 10_000));
        CorpusCache.Loaded after = cache.load(f, () -> null);
        assertEquals(2, cache.reads(), "a file written in place is read again");
        assertEquals(sha256(now), after.fingerprint().hash());
        assertNotEquals(before.hash(), after.fingerprint().hash());
        assertEquals(DataFingerprint.of(f), after.fingerprint());
        assertEquals(5000, after.corpora().train().length() + after.corpora().val().length());
    }

    @Test
    void shouldReadAFileReplacedByOneOfTheSameSizeAndTimesAgain() throws Exception {
        Path f = Files.write(dir.resolve("a.txt"), bytes(5000, 1));
        FileTime was = Files.getLastModifiedTime(f);
        CorpusCache cache = new CorpusCache();
        CorpusCache.Loaded before = cache.load(f, () -> null);
        Path next = Files.write(dir.resolve(".next"), bytes(5000, 2));
        Files.setLastModifiedTime(next, was);
        Files.move(next, f, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        CorpusCache.Loaded after = cache.load(f, () -> null);
        assertEquals(2, cache.reads(), "another inode at the path is read again");
        assertNotEquals(before.fingerprint().hash(), after.fingerprint().hash());
        assertEquals(DataFingerprint.of(f), after.fingerprint());
        // the corpus read first still holds, and still describes, the bytes it mapped
        assertEquals(before.fingerprint(), DataFingerprint.of(f, before.corpora()));
    }

    @Test
    void shouldReadADirectoryAgainWhenAFileIsAddedOrRemoved() throws Exception {
        Path data = Files.createDirectories(dir.resolve("data"));
        byte[] a = bytes(3000, 1);
        byte[] b = bytes(2000, 2);
        Files.write(data.resolve("a.txt"), a);
        Files.write(data.resolve("b.txt"), b);
        CorpusCache cache = new CorpusCache();
        assertEquals(sha256(a, b), cache.load(data, () -> null).fingerprint().hash());
        Files.write(data.resolve(".hidden"), bytes(100, 9)); // not read, so no change
        assertEquals(sha256(a, b), cache.load(data, () -> null).fingerprint().hash());
        assertEquals(1, cache.reads());
        byte[] c = bytes(1500, 3);
        Files.write(data.resolve("c.txt"), c);
        CorpusCache.Loaded added = cache.load(data, () -> null);
        assertEquals(2, cache.reads(), "a file added is read");
        assertEquals(sha256(a, b, c), added.fingerprint().hash());
        assertEquals(DataFingerprint.of(data), added.fingerprint());
        Files.delete(data.resolve("b.txt"));
        CorpusCache.Loaded removed = cache.load(data, () -> null);
        assertEquals(3, cache.reads(), "a file removed is read without it");
        assertEquals(sha256(a, c), removed.fingerprint().hash());
    }

    @Test
    void shouldKeepOnlyTheLastDataPathLoaded() throws Exception {
        Path x = Files.write(dir.resolve("x.txt"), bytes(2000, 1));
        Path y = Files.write(dir.resolve("y.txt"), bytes(2000, 2));
        CorpusCache cache = new CorpusCache();
        cache.load(x, () -> null);
        cache.load(y, () -> null);
        cache.load(y, () -> null);
        assertEquals(2, cache.reads());
        cache.load(x, () -> null);
        assertEquals(3, cache.reads(), "loading y dropped x");
    }

    @Test
    void shouldKeepNothingOfAReadThatFailedAndReadTheFixedDataAgain() throws Exception {
        Path f = Files.write(dir.resolve("a.txt"), bytes(100, 1));
        CorpusCache cache = new CorpusCache();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cache.load(f, () -> null));
        assertEquals("data file too small (100 bytes, need >= 1024): " + f, e.getMessage());
        byte[] b = bytes(2000, 2);
        Files.write(f, b);
        assertEquals(sha256(b), cache.load(f, () -> null).fingerprint().hash());
        assertEquals(2, cache.reads());
        assertThrows(IllegalArgumentException.class, () -> cache.load(dir.resolve("missing"), () -> null));
    }

    @Test
    void shouldGiveWorkersOfOneProcessOneSharedLoadOfTheSameData() throws Exception {
        Path f = Files.write(dir.resolve("a.txt"), bytes(3 << 20, 1));
        CorpusCache cache = new CorpusCache();
        int workers = 4;
        CyclicBarrier start = new CyclicBarrier(workers);
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        try {
            List<Future<CorpusCache.Loaded>> loads = new ArrayList<>();
            for (int i = 0; i < workers; i++) {
                loads.add(pool.submit(() -> {
                    start.await(10, TimeUnit.SECONDS);
                    return cache.load(f, () -> null);
                }));
            }
            CorpusCache.Loaded first = loads.get(0).get(30, TimeUnit.SECONDS);
            for (Future<CorpusCache.Loaded> l : loads) {
                assertSame(first, l.get(30, TimeUnit.SECONDS));
            }
            assertEquals(1, cache.reads(), "one read for all of them");
            assertEquals(DataFingerprint.of(f), first.fingerprint());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void shouldTakeAReadEntryEvenWhenAskedToStop() throws IOException {
        Path f = Files.write(dir.resolve("a.txt"), bytes(2000, 1));
        CorpusCache cache = new CorpusCache();
        cache.load(f, () -> null);
        // a completed entry is taken at once, whatever stop says: nothing is waited for
        assertEquals(DataFingerprint.of(f), cache.load(f, () -> "superseded").fingerprint());
    }
}
