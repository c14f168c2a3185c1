package io.troupe.models.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import java.util.zip.CRC32C;

/**
 * Writes and reads checkpoint directories {@code <root>/step-%08d/}.
 *
 * <p>Write protocol: shard files go into a temporary sibling directory, each fsynced; then
 * {@code manifest.json} (sizes and CRC32C of every shard) is written and fsynced; then the directory
 * is renamed atomically to its final name and the parent fsynced. A crash at any point leaves
 * either a complete checkpoint or none (stale temporaries are ignored and cleaned).
 *
 * <p>Re-committing a step that exists: the existing directory is first renamed aside
 * ({@code step-%08d.old}), the new one renamed into place, the parent fsynced, and only then the
 * aside copy deleted; nothing is ever deleted from under the final name. A crash between the two
 * renames leaves the old checkpoint complete aside: {@link #resolve} takes it while the final name is
 * missing, and the next {@link #discardPartial} or commit of that step puts it back. An aside copy
 * next to its final directory is stale and is ignored, then deleted.
 *
 * <p>Read protocol: the manifest must exist; every file's size and CRC32C must match it; shards
 * must decode completely. Anything else is refused with a {@link CheckpointException} naming the
 * file and the mismatch; nothing is half-loaded.
 */
public final class Checkpoints {
    public static final String MANIFEST = "manifest.json";
    private static final String PREFIX = "step-";
    private static final String TMP_SUFFIX = ".tmp";
    private static final String ASIDE_SUFFIX = ".old";
    /** A stop that never asks a verification or a read ({@link ShardedCheckpointReader}) to end. */
    static final Supplier<String> NEVER = () -> null;
    /** Files of committed checkpoints opened for reading in this JVM: {@link #shardFilesRead()}. */
    private static final AtomicLong SHARD_FILES_READ = new AtomicLong();

    private Checkpoints() {
    }

    /** The final directory name of a step. */
    public static Path dirFor(Path root, long step) {
        return root.resolve(String.format("%s%08d", PREFIX, step));
    }

    /** Writes shards (name → state) and commits them with {@code manifest}. Returns the final directory. */
    public static Path write(Path root, Manifest manifest, Map<String, ShardState> shards) {
        discardPartial(root, manifest.step());
        List<Manifest.FileEntry> files = new ArrayList<>();
        for (Map.Entry<String, ShardState> e : shards.entrySet()) {
            files.add(writeShard(root, manifest.step(), e.getKey(), e.getValue()));
        }
        return commit(root, manifest, files);
    }

    /**
     * Phase 1 (any node, one call per shard): writes one shard durably into the step's temporary
     * directory and returns its manifest entry. Nothing is visible as a checkpoint yet. The file streams
     * through a buffer of a few MiB ({@link ShardFileWriter}), so a shard may be of any size.
     */
    public static Manifest.FileEntry writeShard(Path root, long step, String name, ShardState state) {
        Path tmp = tmpDirFor(root, step);
        try {
            Files.createDirectories(tmp);
            ShardFileWriter.Written w = ShardFileWriter.write(tmp.resolve(name), state);
            return new Manifest.FileEntry(name, w.bytes(), w.crc32c());
        } catch (IOException e) {
            throw new CheckpointException("cannot write shard " + name + " of step " + step + " under " + root + ": "
                + e.getMessage(), e);
        }
    }

    /**
     * Phase 2 (the coordinator, once every shard is written): writes {@code manifest.json} with the
     * shards' entries, then renames the temporary directory to its final name: the commit point.
     */
    public static Path commit(Path root, Manifest manifest, List<Manifest.FileEntry> files) {
        Path fin = dirFor(root, manifest.step());
        Path tmp = tmpDirFor(root, manifest.step());
        try {
            Files.createDirectories(tmp);
            for (Manifest.FileEntry f : files) {
                if (!Files.isRegularFile(tmp.resolve(f.name())) || Files.size(tmp.resolve(f.name())) != f.bytes()) {
                    throw new CheckpointException("cannot commit step " + manifest.step() + ": shard " + f.name()
                        + " is missing or has the wrong size in " + tmp);
                }
            }
            writeDurably(tmp.resolve(MANIFEST), manifest.withFiles(files).toJson().getBytes(StandardCharsets.UTF_8));
            fsyncDir(tmp);
            Path aside = asideDirFor(root, manifest.step());
            settleAside(root, fin, aside);
            try {
                if (Files.exists(fin)) {
                    Files.move(fin, aside, StandardCopyOption.ATOMIC_MOVE);
                }
                Files.move(tmp, fin, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                throw new CheckpointException("file system of " + root + " cannot rename atomically", e);
            }
            fsyncDir(root);
            try {
                deleteTree(aside);
            } catch (IOException e) {
                // committed all the same: the new checkpoint is durable under its final name; the stale copy beside
                // it is never read (resolve skips it) and goes the next time this step is written or settled
            }
            return fin;
        } catch (IOException e) {
            throw new CheckpointException("cannot write checkpoint " + fin + ": " + e.getMessage(), e);
        }
    }

    /**
     * Removes a step's temporary directory (a stale one from a crash, before writing afresh) and
     * settles its aside copy (put back when the final directory is missing, else deleted).
     */
    public static void discardPartial(Path root, long step) {
        try {
            deleteTree(tmpDirFor(root, step));
            settleAside(root, dirFor(root, step), asideDirFor(root, step));
        } catch (IOException e) {
            throw new CheckpointException("cannot clear " + tmpDirFor(root, step) + ": " + e.getMessage(), e);
        }
    }

    private static Path tmpDirFor(Path root, long step) {
        return root.resolve(dirFor(root, step).getFileName() + TMP_SUFFIX);
    }

    private static Path asideDirFor(Path root, long step) {
        return root.resolve(dirFor(root, step).getFileName() + ASIDE_SUFFIX);
    }

    /**
     * An aside copy left by a crash during a re-commit: with the final directory missing it is the
     * step's complete checkpoint (renamed aside before the new one came) and is put back; next to
     * the final directory it is stale (the new one is in place) and is deleted.
     */
    private static void settleAside(Path root, Path fin, Path aside) throws IOException {
        if (!Files.exists(aside)) {
            return;
        }
        if (Files.exists(fin)) {
            deleteTree(aside);
            return;
        }
        Files.move(aside, fin, StandardCopyOption.ATOMIC_MOVE);
        fsyncDir(root);
    }

    /** A committed checkpoint, verified. */
    public record Loaded(Path dir, Manifest manifest, Map<String, ShardState> shards) {
    }

    /** Reads a committed checkpoint's manifest alone (its shards are neither read nor verified). */
    public static Manifest readManifest(Path dir) {
        Path manifestPath = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(manifestPath)) {
            throw new CheckpointException("not a committed checkpoint: " + manifestPath + " is missing");
        }
        try {
            return Manifest.parse(Files.readString(manifestPath), manifestPath.toString());
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + manifestPath + ": " + e.getMessage(), e);
        }
    }

    /**
     * Loads and verifies a checkpoint directory: each shard file streams through a buffer of a few MiB
     * ({@link ShardFileReader}) into its tensors, checked against the manifest's size and CRC32C, in one read
     * (what {@link #verify} checks, without reading the files a second time).
     */
    public static Loaded load(Path dir) {
        Manifest m = readManifest(dir);
        Map<String, ShardState> shards = new LinkedHashMap<>();
        for (Manifest.FileEntry f : m.files()) {
            shards.put(f.name(), readShard(dir, f));
        }
        return new Loaded(dir, m, shards);
    }

    /**
     * Loads and verifies one file of a committed checkpoint (a rank's own file: the others are neither read
     * nor decoded); null when the manifest lists no file {@code name}.
     */
    public static ShardState loadShard(Path dir, String name) {
        for (Manifest.FileEntry f : readManifest(dir).files()) {
            if (f.name().equals(name)) {
                return readShard(dir, f);
            }
        }
        return null;
    }

    /**
     * Checks every file of a committed checkpoint against its manifest (present, its size, its CRC32C)
     * without decoding it, reading each through a bounded buffer.
     *
     * @throws CheckpointException naming the file and what does not match
     */
    public static Manifest verify(Path dir) {
        return verify(dir, NEVER);
    }

    /**
     * As {@link #verify(Path)}, asking {@code stop} before each read of at most 4 MiB: null goes on; anything else
     * is why the verification ends there (an abort of the epoch whose restore it precedes, say), named by the
     * exception it throws. So a checkpoint of any size ends its verification within one such read of being told to,
     * as a read of its shards does ({@link ShardedCheckpointReader}). {@code stop} is called on the verifying thread
     * and must be cheap (a volatile read); another thread may change its answer at any time.
     *
     * @throws CheckpointException naming the file and what does not match, or "verification of checkpoint ...
     *                             stopped ...: " and {@code stop}'s reason, naming the file it was reading and the
     *                             bytes of it read by then
     */
    public static Manifest verify(Path dir, Supplier<String> stop) {
        return verify(dir, stop, ShardFileReader.DEFAULT_BUFFER_BYTES);
    }

    /** As {@link #verify(Path, Supplier)}, reading through a buffer of {@code bufferBytes} (a test's small one). */
    static Manifest verify(Path dir, Supplier<String> stop, int bufferBytes) {
        Manifest m = readManifest(dir);
        ByteBuffer bb = ByteBuffer.allocateDirect(bufferBytes);
        for (Manifest.FileEntry f : m.files()) {
            try (FileChannel ch = openListed(dir, f)) {
                long crc = crc32c(ch, bb, dir, f, stop);
                if (crc != f.crc32c()) {
                    throw crcMismatch(dir, f, crc, null);
                }
            } catch (IOException e) {
                throw new CheckpointException("cannot read checkpoint " + dir + ": " + e.getMessage(), e);
            }
        }
        return m;
    }

    /**
     * The shard of the manifest's file {@code f}, checked against its size and CRC32C. A file that does
     * not decode and does not match its CRC32C either is refused for the mismatch, with what the decoder
     * found (the block or the offset).
     */
    private static ShardState readShard(Path dir, Manifest.FileEntry f) {
        Path p = dir.resolve(f.name());
        try (FileChannel ch = openListed(dir, f)) {
            ShardFileReader.Result r;
            try {
                r = ShardFileReader.read(ch, p, ShardFileReader.DEFAULT_BUFFER_BYTES);
            } catch (CheckpointException e) {
                long crc = crc32c(ch, ByteBuffer.allocateDirect(ShardFileReader.DEFAULT_BUFFER_BYTES), dir, f, NEVER);
                if (crc != f.crc32c()) {
                    throw crcMismatch(dir, f, crc, e);
                }
                throw e;
            }
            if (r.crc32c() != f.crc32c()) {
                throw crcMismatch(dir, f, r.crc32c(), null);
            }
            return r.state();
        } catch (IOException e) {
            throw new CheckpointException("cannot read checkpoint " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * How many shard files of committed checkpoints this JVM opened for reading so far, each {@link #load},
     * {@link #loadShard} or {@link #verify} of a file counting one (its manifest not counted): what a resume costs
     * in reads of a checkpoint, which may be many GB.
     */
    public static long shardFilesRead() {
        return SHARD_FILES_READ.get();
    }

    /** The manifest's file {@code f}, opened for reading once it is present with the manifest's size. */
    private static FileChannel openListed(Path dir, Manifest.FileEntry f) throws IOException {
        SHARD_FILES_READ.incrementAndGet();
        Path p = dir.resolve(f.name());
        if (!Files.isRegularFile(p)) {
            throw new CheckpointException("checkpoint " + dir + ": shard " + f.name()
                + " listed in the manifest is missing");
        }
        FileChannel ch = FileChannel.open(p, StandardOpenOption.READ);
        long size = ch.size();
        if (size != f.bytes()) {
            ch.close();
            throw new CheckpointException("checkpoint " + dir + ": shard " + f.name() + " is " + size
                + " bytes, manifest says " + f.bytes() + " (truncated or replaced)");
        }
        return ch;
    }

    private static CheckpointException crcMismatch(Path dir, Manifest.FileEntry f, long crc,
                                                   CheckpointException found) {
        String message = String.format("checkpoint %s: shard %s CRC32C %08x does not match manifest %08x", dir,
            f.name(), crc, f.crc32c());
        return found == null ? new CheckpointException(message)
            : new CheckpointException(message + ": " + found.getMessage(), found);
    }

    /**
     * The CRC32C of {@code ch}'s whole file (the manifest's file {@code f} of {@code dir}), read through {@code bb};
     * {@code stop} is asked before each read, and its reason ends the verification there.
     */
    private static long crc32c(FileChannel ch, ByteBuffer bb, Path dir, Manifest.FileEntry f, Supplier<String> stop)
        throws IOException {
        CRC32C crc = new CRC32C();
        long size = ch.size();
        long pos = 0;
        while (true) {
            String why = stop.get();
            if (why != null) {
                throw new CheckpointException("verification of checkpoint " + dir + " stopped at file '" + f.name()
                    + "' after " + pos + " of its " + size + " bytes: " + why);
            }
            bb.clear();
            int n = ch.read(bb, pos);
            if (n < 0) {
                return crc.getValue();
            }
            pos += n;
            bb.flip();
            crc.update(bb);
        }
    }

    /**
     * Resolves what the user named: a checkpoint directory itself, or a directory holding
     * {@code step-*} checkpoints (a run's {@code checkpoints/} or the run directory), in which case the
     * latest committed step is taken.
     */
    public static Path resolve(Path path) {
        if (Files.isRegularFile(path.resolve(MANIFEST))) {
            return path;
        }
        Path root = Files.isDirectory(path.resolve("checkpoints")) ? path.resolve("checkpoints") : path;
        Path best = null;
        long bestStep = -1;
        if (Files.isDirectory(root)) {
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(root, PREFIX + "*")) {
                for (Path p : ds) {
                    String n = p.getFileName().toString();
                    if (n.endsWith(ASIDE_SUFFIX)) {
                        // the step's checkpoint only while a re-commit's crash left its final name missing
                        n = n.substring(0, n.length() - ASIDE_SUFFIX.length());
                        if (Files.exists(p.resolveSibling(n))) {
                            continue;
                        }
                    }
                    if (n.endsWith(TMP_SUFFIX) || !Files.isRegularFile(p.resolve(MANIFEST))) {
                        continue;
                    }
                    long step = Long.parseLong(n.substring(PREFIX.length()));
                    if (step > bestStep) {
                        bestStep = step;
                        best = p;
                    }
                }
            } catch (IOException | NumberFormatException e) {
                throw new CheckpointException("cannot list checkpoints in " + root + ": " + e.getMessage(), e);
            }
        }
        if (best == null) {
            throw new CheckpointException("no committed checkpoint under " + path);
        }
        return best;
    }

    /**
     * Replaces {@code file} atomically with {@code data}: written to a temporary sibling, fsynced,
     * renamed over the file, the directory fsynced. A reader sees the old content or the new, never
     * a mix; a crash leaves at most a stale temporary file.
     */
    public static void writeAtomically(Path file, byte[] data) {
        Path tmp = file.resolveSibling(file.getFileName() + TMP_SUFFIX);
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            writeDurably(tmp, data);
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new CheckpointException("file system of " + file + " cannot rename atomically", e);
            }
            fsyncDir(file.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new CheckpointException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static void writeDurably(Path p, byte[] data) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
            StandardOpenOption.WRITE)) {
            ByteBuffer bb = ByteBuffer.wrap(data);
            while (bb.hasRemaining()) {
                ch.write(bb);
            }
            ch.force(true);
        }
    }

    private static void fsyncDir(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException ignored) {
            // Some file systems refuse to open directories; the rename is still atomic there.
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (var walk = Files.walk(p)) {
            for (Path q : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }
}
