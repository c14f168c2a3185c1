package io.troupe.actors.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Runs the {@code troupe} command line in this JVM, as the CLI tests do, and keeps what it printed. */
public final class CliRun {
    private CliRun() {
    }

    /** A finished command: its exit code, standard output and standard error. */
    public record Result(int code, String out, String err) {
    }

    /** Runs {@code troupe args...} ({@link TroupeCli#run}) and returns its exit code and output. */
    public static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = TroupeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }
}
