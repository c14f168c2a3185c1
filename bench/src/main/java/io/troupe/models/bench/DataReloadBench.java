package io.troupe.models.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.models.data.Corpora;
import io.troupe.models.data.CorpusCache;
import io.troupe.models.data.DataFingerprint;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * {@code scripts/bench data [--mib N] [--rounds N] [--dir D]}: the data part of a cluster epoch's build, on a file of
 * {@code N} MiB (200 by default) of random bytes written under {@code D} ({@code java.io.tmpdir} by default) and
 * deleted at the end. Three ways, each timed {@code rounds} times (3 by default), medians printed:
 * <ul>
 *   <li>{@code map_and_hash}: mapping the file ({@link Corpora#fromFile}) and then hashing it from the path
 *       ({@link DataFingerprint#of}), two reads of the data;</li>
 *   <li>{@code first_load}: a load into an empty {@link CorpusCache}: the file mapped and hashed from the mapped
 *       pages, one read (a worker's first epoch of a job);</li>
 *   <li>{@code reload}: a load of the same, unchanged file into the cache that holds it (every recovery's epoch).</li>
 * </ul>
 * The file is in the page cache throughout (it was just written), so the times are those of mapping and hashing,
 * not of the disk. Last line: {@code map_and_hash_ms=<x> first_load_ms=<x> reload_ms=<x> reload_speedup=<x>}.
 */
public final class DataReloadBench {
    private static final int SEQ_LEN = 128;

    private DataReloadBench() {
    }

    public static void main(String[] args) throws IOException {
        String usage = "usage: scripts/bench data [--mib N] [--rounds N] [--dir D]";
        Options o = BenchOptions.parse(args, "data", usage, Set.of("mib", "rounds", "dir"), Set.of());
        int mib = o.getInt("mib", 200);
        int rounds = o.getInt("rounds", 3);
        Path dir = Path.of(o.get("dir", System.getProperty("java.io.tmpdir")));
        Path file = Files.createTempFile(dir, "troupe-bench-data-", ".txt");
        try {
            write(file, mib);
            System.out.printf(Locale.ROOT, "bench data: %d MiB file in %s, %d rounds%n", mib, dir, rounds);
            CorpusCache cache = CorpusCache.shared();
            double[] before = new double[rounds];
            double[] first = new double[rounds];
            double[] reload = new double[rounds];
            String token = null;
            for (int r = 0; r < rounds; r++) {
                long t0 = System.nanoTime();
                Corpora data = Corpora.fromFile(file);
                data.requireWindows(SEQ_LEN);
                String fp = DataFingerprint.of(file).token();
                before[r] = (System.nanoTime() - t0) / 1e6;
                cache.clear();
                t0 = System.nanoTime();
                CorpusCache.Loaded loaded = cache.load(file, () -> null);
                loaded.corpora().requireWindows(SEQ_LEN);
                String firstFp = loaded.fingerprint().token();
                first[r] = (System.nanoTime() - t0) / 1e6;
                t0 = System.nanoTime();
                CorpusCache.Loaded again = cache.load(file, () -> null);
                again.corpora().requireWindows(SEQ_LEN);
                String againFp = again.fingerprint().token();
                reload[r] = (System.nanoTime() - t0) / 1e6;
                if (!fp.equals(firstFp) || !fp.equals(againFp)) {
                    throw new IllegalStateException("fingerprints differ: " + fp + ", " + firstFp + ", " + againFp);
                }
                token = fp;
                System.out.printf(Locale.ROOT, "round %d: map_and_hash %.1f ms, first_load %.1f ms, reload %.3f ms%n",
                    r + 1, before[r], first[r], reload[r]);
            }
            cache.clear();
            double b = Median.of(before);
            double f = Median.of(first);
            double re = Median.of(reload);
            System.out.printf(Locale.ROOT, "fingerprint %s%n", token);
            System.out.printf(Locale.ROOT,
                "map_and_hash_ms=%.1f first_load_ms=%.1f reload_ms=%.3f reload_speedup=%.0f%n", b, f, re, b / re);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** {@code mib} MiB of seeded random bytes. */
    private static void write(Path file, int mib) throws IOException {
        Random random = new Random(42);
        byte[] block = new byte[1 << 20];
        try (OutputStream out = Files.newOutputStream(file)) {
            for (int i = 0; i < mib; i++) {
                random.nextBytes(block);
                out.write(block);
            }
        }
    }
}
