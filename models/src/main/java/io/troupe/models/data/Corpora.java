package io.troupe.models.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Train and validation streams from a source: the built-in corpus, a text file or a directory of
 * files. A file's bytes are its tokens; a directory reads as the concatenation of its regular,
 * non-hidden files in name order (not recursive). The last {@link #VALIDATION_FRACTION} of the bytes
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
        long split = (long) (total * (1 - VALIDATION_FRACTION));
        String name = path.toString();
        return new Corpora(TokenStream.mapped(files, 0, split, name + " (train)"),
            TokenStream.mapped(files, split, total, name + " (val)"));
    }

    /** The files a data path stands for, in reading order. */
    public static List<Path> files(Path path) {
        if (Files.isRegularFile(path)) {
            return List.of(path);
        }
        if (!Files.isDirectory(path)) {
            throw new IllegalArgumentException("data: no such file or directory: " + path);
        }
        try (Stream<Path> s = Files.list(path)) {
            List<Path> files = s.filter(Files::isRegularFile)
                .filter(p -> !p.getFileName().toString().startsWith("."))
                .sorted()
                .collect(Collectors.toList());
            if (files.isEmpty()) {
                throw new IllegalArgumentException("data directory holds no files: " + path);
            }
            return files;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list data directory " + path + ": " + e.getMessage(), e);
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
