package io.troupe.models.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Train and validation streams from a source: the built-in corpus, a text file or a directory of
 * files. A file's bytes are its tokens; a directory reads as the concatenation of its regular,
 * non-hidden files in name order (not recursive; an entry that is neither a file nor a directory is
 * refused). The last {@link #VALIDATION_FRACTION} of the bytes
 * (of the concatenation, for a directory) is the validation split, the rest the training split.
 * Files are memory-mapped, so a corpus may be larger than the heap.
 */
public record Corpora(TokenStream train, TokenStream val) {
    /** Share of a file corpus held out for validation: its last 10%. */
    public static final double VALIDATION_FRACTION = 0.1;
    /** Smallest file corpus accepted (bytes). */
    public static final long MIN_BYTES = 1024;

    /** The built-in Markov corpus (no file needed). */
    public static Corpora builtIn() {
        return new Corpora(MarkovCorpus.defaultTrain(), MarkovCorpus.defaultVal());
    }

    /** A text file or a directory of files (see the class comment); same as {@link #fromPath}. */
    public static Corpora fromFile(Path path) {
        return fromPath(path);
    }

    /**
     * A file or a directory of files as one corpus, split train / validation at
     * {@code floor(0.9 * bytes)}.
     *
     * @throws IllegalArgumentException naming the path when it is missing, empty or under 1024 bytes
     */
    public static Corpora fromPath(Path path) {
        List<Path> files = files(path);
        long total = 0;
        for (Path f : files) {
            total += size(f);
        }
        if (total < MIN_BYTES) {
            throw new IllegalArgumentException("data "
                + (files.size() == 1 && files.get(0).equals(path) ? "file" : "directory")
                + " too small (" + total + " bytes, need >= " + MIN_BYTES + "): " + path);
        }
        long split = splitAt(total);
        String name = path.toString();
        return new Corpora(TokenStream.mapped(files, 0, split, name + " (train)"),
            TokenStream.mapped(files, split, total, name + " (val)"));
    }

    /** Where a file corpus of {@code total} bytes splits: training is {@code [0, split)}, validation the rest. */
    static long splitAt(long total) {
        return (long) (total * (1 - VALIDATION_FRACTION));
    }

    /**
     * Refuses a corpus too short for windows of {@code seqLen} tokens: training reads windows of
     * {@code seqLen} tokens and the next one at up to {@code seqLen} offsets, so its split needs
     * {@code 2 * seqLen + 1} tokens ({@link Batches}); validation needs one window and its next token,
     * {@code seqLen + 1} ({@link ValidationPlan}). Checked before a run starts, so that no engine trains
     * up to its first validation and fails there.
     *
     * @throws IllegalArgumentException naming the split, its size, {@code seqLen} and the size a file or
     *     directory needs
     */
    public void requireWindows(int seqLen) {
        if (seqLen < 1) {
            throw new IllegalArgumentException("seq_len must be >= 1: seq_len=" + seqLen);
        }
        TokenStream shortOne = train.length() < 2L * seqLen + 1 ? train : val.length() < seqLen + 1L ? val : null;
        if (shortOne == null) {
            return;
        }
        long need = shortOne == train ? 2L * seqLen + 1 : seqLen + 1L;
        throw new IllegalArgumentException("data too short for seq_len=" + seqLen + ": " + shortOne.description()
            + " holds " + shortOne.length() + " tokens, need >= " + need + " (" + (shortOne == train
                ? "two windows" : "one window and its next token") + "); a data file or directory needs >= "
            + minBytes(seqLen) + " bytes for seq_len=" + seqLen);
    }

    /** The smallest file corpus whose splits both hold windows of {@code seqLen} (see {@link #requireWindows}). */
    public static long minBytes(int seqLen) {
        long total = Math.max(MIN_BYTES, (long) ((seqLen + 1L) / VALIDATION_FRACTION) - 16);
        while (splitAt(total) < 2L * seqLen + 1 || total - splitAt(total) < seqLen + 1L) {
            total++;
        }
        return total;
    }

    /**
     * The files a data path stands for, in reading order: the path itself when it is a regular file; for a
     * directory, its regular, non-hidden files sorted by name (byte order, the same on every host). A
     * directory's subdirectories and hidden entries are not read.
     *
     * @throws IllegalArgumentException naming the path when it is missing or neither a regular file nor a
     *     directory (a pipe, a device), when a directory holds no file to read, or names an entry that is
     *     neither (a broken link, a pipe), whose bytes would otherwise be silently left out
     */
    public static List<Path> files(Path path) {
        if (Files.isRegularFile(path)) {
            return List.of(path);
        }
        if (!Files.isDirectory(path)) {
            if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
                throw new IllegalArgumentException("data " + path + " is neither a regular file nor a directory ("
                    + kind(path) + "); expected a text file or a directory of them");
            }
            throw new IllegalArgumentException("data: no such file or directory: " + path);
        }
        List<Path> entries;
        try (Stream<Path> s = Files.list(path)) {
            entries = s.filter(p -> !p.getFileName().toString().startsWith(".")).sorted().collect(Collectors.toList());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list data directory " + path + ": " + e.getMessage(), e);
        }
        List<Path> files = new ArrayList<>();
        int subdirectories = 0;
        for (Path p : entries) {
            if (Files.isRegularFile(p)) {
                files.add(p);
            } else if (Files.isDirectory(p)) {
                subdirectories++;
            } else {
                throw new IllegalArgumentException("data directory " + path + " holds " + p.getFileName()
                    + ", neither a regular file nor a directory (" + kind(p) + "); remove it, or give --data"
                    + " the files to read");
            }
        }
        if (files.isEmpty()) {
            throw new IllegalArgumentException("data directory holds no files to read (its regular, non-hidden"
                + " files; " + (subdirectories == 0 ? "it has none"
                : "its " + subdirectories + (subdirectories == 1 ? " subdirectory is" : " subdirectories are")
                + " not read") + "): " + path);
        }
        return files;
    }

    /** What a path that is neither a regular file nor a directory is, for messages. */
    private static String kind(Path p) {
        if (Files.isSymbolicLink(p)) {
            return "a link to nothing readable: a missing target or a loop";
        }
        try {
            Object type = Files.readAttributes(p, "unix:mode", LinkOption.NOFOLLOW_LINKS).get("mode");
            int fmt = type instanceof Integer m ? m & 0xF000 : 0;
            return switch (fmt) {
                case 0x1000 -> "a named pipe";
                case 0x2000 -> "a character device";
                case 0x6000 -> "a block device";
                case 0xC000 -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return "a special file";
        }
    }

    private static long size(Path f) {
        try {
            return Files.size(f);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read data file " + f + ": " + e.getMessage(), e);
        }
    }
}
