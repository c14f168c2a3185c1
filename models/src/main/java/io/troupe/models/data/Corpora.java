package io.troupe.models.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Train and validation streams from a source: the built-in corpus or a text file. */
public record Corpora(TokenStream train, TokenStream val) {

    /** The built-in Markov corpus (no file needed). */
    public static Corpora builtIn() {
        return new Corpora(MarkovCorpus.defaultTrain(), MarkovCorpus.defaultVal());
    }

    /** A text file as bytes; the last 10% is held out for validation. */
    public static Corpora fromFile(Path path) {
        byte[] all;
        try {
            all = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read data file " + path + ": " + e.getMessage(), e);
        }
        if (all.length < 1024) {
            throw new IllegalArgumentException("data file too small (" + all.length + " bytes, need >= 1024): " + path);
        }
        int split = (int) (all.length * 0.9);
        return new Corpora(
            new TokenStream(java.util.Arrays.copyOfRange(all, 0, split), path + " (train)"),
            new TokenStream(java.util.Arrays.copyOfRange(all, split, all.length), path + " (val)"));
    }
}
