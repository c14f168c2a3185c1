package io.troupe.runtime.testkit;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A child java process running a main class with the current classpath and the current JVM's
 * {@code --add-opens}/{@code --add-exports} flags. Output goes to a temp file ({@link #output()}).
 * {@link #close()} kills it forcibly if still alive; waits are always bounded.
 */
public final class ChildJvm implements AutoCloseable {
    private final Process process;
    private final Path log;

    private ChildJvm(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /** Starts {@code mainClass} with {@code args} and a small heap. */
    public static ChildJvm start(Class<?> mainClass, String... args) throws IOException {
        List<String> cmd = io.troupe.runtime.launch.JavaCommand.of(mainClass, List.of("-Xmx512m", "-XX:+UseSerialGC"),
            List.of(args));
        Path log = Files.createTempFile("troupe-child-", ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new ChildJvm(p, log);
    }

    public Process process() {
        return process;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Waits at most {@code timeoutMs} for exit; returns the exit code, or throws if still running. */
    public int waitFor(long timeoutMs) throws InterruptedException {
        if (!process.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("child " + pid() + " still running after " + timeoutMs + " ms; output:\n"
                + output());
        }
        return process.exitValue();
    }

    /** SIGKILLs the child and waits (bounded) for it to be gone. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    /** Everything the child printed so far. */
    public String output() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "<unreadable: " + e + ">";
        }
    }

    /**
     * Waits (bounded, polling the output file) until the child printed a line starting with
     * {@code prefix}, and returns that line.
     */
    public String awaitLine(String prefix, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (System.nanoTime() < deadline) {
            String out = output();
            // Only whole lines: the child may be half-way through writing the last one.
            int end = out.lastIndexOf('\n');
            for (String line : (end < 0 ? "" : out.substring(0, end)).split("\n")) {
                if (line.startsWith(prefix)) {
                    return line.trim();
                }
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("child exited with " + process.exitValue() + " before printing '"
                    + prefix + "'; output:\n" + output());
            }
            Thread.sleep(10); // polling a file the child writes; there is no event to wait on
        }
        throw new IllegalStateException("child did not print '" + prefix + "' within " + timeoutMs + " ms; output:\n"
            + output());
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        new File(log.toString()).delete();
    }
}
