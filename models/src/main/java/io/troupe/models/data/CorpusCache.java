package io.troupe.models.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * The data a process read last, kept so that the next epoch of a job that names the same data takes it as it is
 * instead of mapping and hashing its files again: a cluster worker's first epoch reads the job's data, and every
 * recovery after a fault builds a new epoch over the same data.
 *
 * <p>One entry: the last data path loaded ({@link Corpora#fromPath}) and its fingerprint, taken from the bytes the
 * corpus holds ({@link DataFingerprint}). Loading another path replaces it. The entry is taken again only when the
 * path's real path is the same and so is every file it reads: the same files (a directory's file added or removed
 * reads again), each with the same size, modification and change times and file key (the inode: a file replaced by
 * a rename reads again). The check costs one directory listing and one {@code stat} per file.
 *
 * <p>Thread-safe: the workers of one process ({@link #shared()}) share the entry. While one of them reads the data,
 * another asking for the same data waits for that read instead of making one of its own. A loaded corpus is
 * immutable ({@link TokenStream}), so the epochs of several workers read the same one at once.
 */
public final class CorpusCache {
    /** How often a load waiting for another's read asks whether it should stop (milliseconds). */
    private static final long STOP_POLL_MS = 100;
    private static final CorpusCache SHARED = new CorpusCache();

    /** The last load (or the one under way): guarded by {@code this}. */
    private Entry current;
    /** Loads that read the data (mapped and hashed its files) rather than taking the entry. */
    private final AtomicLong reads = new AtomicLong();

    /**
     * A corpus and the fingerprint of the bytes it holds.
     *
     * @param corpora     the data as {@link Corpora#fromPath} read it; shared, never changed
     * @param fingerprint the fingerprint {@link DataFingerprint#of(Path)} gives for those bytes
     */
    public record Loaded(Corpora corpora, DataFingerprint fingerprint) {
    }

    /** A file read, as it was when read. */
    private record Stamp(String name, long size, FileTime modified, Object changed, Object key) {
    }

    /** A data path's real path, what it reads, and its load. */
    private record Entry(Path real, List<Stamp> stamps, CompletableFuture<Loaded> load) {
    }

    CorpusCache() {
    }

    /** The cache the workers of this process share. */
    public static CorpusCache shared() {
        return SHARED;
    }

    /**
     * The data at {@code path} (a file or a directory, as {@link Corpora#fromPath} reads it) and its fingerprint:
     * the entry when it is of the same files, unchanged, else read now and kept in its place.
     *
     * @param stop asked while this load waits for another's read of the same data: null waits on, anything else is
     *             why the wait ends there
     * @throws IllegalArgumentException      naming the path when it is missing, not a file or directory, or too small
     * @throws UncheckedIOException          naming the file that could not be read
     * @throws IllegalStateException         naming {@code stop}'s reason, when it ended the wait
     */
    public Loaded load(Path path, Supplier<String> stop) {
        Path real;
        List<Stamp> before = stamps(path);
        try {
            real = path.toRealPath();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot resolve data path " + path + ": " + e.getMessage(), e);
        }
        Entry entry;
        boolean reader;
        synchronized (this) {
            if (current != null && current.real().equals(real) && current.stamps().equals(before)) {
                entry = current;
                reader = false;
            } else {
                entry = new Entry(real, before, new CompletableFuture<>());
                current = entry;
                reader = true;
            }
        }
        return reader ? read(path, entry) : await(path, entry, stop);
    }

    /** Reads the data into {@code entry}, which stays only when its files did not change during the read. */
    private Loaded read(Path path, Entry entry) {
        reads.incrementAndGet();
        try {
            Corpora corpora = Corpora.fromPath(path);
            Loaded loaded = new Loaded(corpora, DataFingerprint.of(path, corpora));
            if (!stamps(path).equals(entry.stamps())) {
                drop(entry);
            }
            entry.load().complete(loaded);
            return loaded;
        } catch (RuntimeException | Error e) {
            drop(entry);
            entry.load().completeExceptionally(e);
            throw e;
        }
    }

    /** Waits for another's read of {@code entry}, asking {@code stop} every {@link #STOP_POLL_MS} it is not done. */
    private static Loaded await(Path path, Entry entry, Supplier<String> stop) {
        while (true) {
            try {
                return entry.load().get(STOP_POLL_MS, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                String stopped = stop.get();
                if (stopped != null) {
                    throw new IllegalStateException("stopped waiting for data " + path + " to be read: " + stopped, e);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for data " + path + " to be read", e);
            } catch (ExecutionException e) {
                // The reader's own exception stays with the reader; this thread throws one of the same kind.
                Throwable cause = e.getCause();
                if (cause instanceof IllegalArgumentException) {
                    throw new IllegalArgumentException(cause.getMessage(), cause);
                }
                if (cause instanceof UncheckedIOException u) {
                    throw new UncheckedIOException(u.getMessage(), u.getCause());
                }
                throw new IllegalStateException("data " + path + " could not be read: " + cause, cause);
            }
        }
    }

    private synchronized void drop(Entry entry) {
        if (current == entry) {
            current = null;
        }
    }

    /** The real path of the data the entry holds, or null when it holds none. */
    public synchronized Path held() {
        return current == null ? null : current.real();
    }

    /** Drops the entry: the next load reads its data. */
    public synchronized void clear() {
        current = null;
    }

    /** Loads that read their data rather than take the entry, since this cache was made. */
    long reads() {
        return reads.get();
    }

    /** Every file {@code path} reads, in reading order, as it is now. */
    private static List<Stamp> stamps(Path path) {
        List<Stamp> stamps = new ArrayList<>();
        for (Path f : Corpora.files(path)) {
            try {
                BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class);
                stamps.add(new Stamp(f.getFileName().toString(), a.size(), a.lastModifiedTime(), changeTime(f),
                    a.fileKey()));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read data file " + f + ": " + e.getMessage(), e);
            }
        }
        return stamps;
    }

    /** The file's change time where the file system keeps one ({@code unix:ctime}), else null. */
    private static Object changeTime(Path f) throws IOException {
        try {
            Map<String, Object> m = Files.readAttributes(f, "unix:ctime");
            return m.get("ctime");
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return null;
        }
    }
}
