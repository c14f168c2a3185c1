package io.troupe.collectives.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A child JVM running a main class with this JVM's classpath and its {@code --add-opens} /
 * {@code --add-exports} flags; talks line by line over stdin/stdout, stderr inherited.
 * {@link #close()} kills it if still alive (bounded wait).
 */
final class RankProcess implements AutoCloseable {
    private final Process process;
    private final BufferedReader out;
    private final PrintStream in;

    private RankProcess(Process process) {
        this.process = process;
        this.out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        this.in = new PrintStream(process.getOutputStream(), true, StandardCharsets.UTF_8);
    }

    static RankProcess start(Class<?> mainClass, List<String> jvmExtra, String... args) throws IOException {
        List<String> cmd = io.troupe.runtime.launch.JavaCommand.of(mainClass, jvmExtra, List.of(args));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        return new RankProcess(p);
    }

    /** The next line starting with {@code prefix} (others are echoed); fails if the child ends first. */
    String awaitLine(String prefix) throws IOException {
        String line;
        while ((line = out.readLine()) != null) {
            if (line.startsWith(prefix)) {
                return line.substring(prefix.length()).trim();
            }
            System.err.println("[child " + process.pid() + "] " + line);
        }
        throw new IOException("child " + process.pid() + " ended before printing '" + prefix + "' (exit "
            + (process.isAlive() ? "?" : process.exitValue()) + ")");
    }

    void send(String line) {
        in.println(line);
    }

    int waitFor(long timeoutMs) throws InterruptedException {
        if (!process.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("child " + process.pid() + " still running after " + timeoutMs + " ms");
        }
        return process.exitValue();
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
    }
}
