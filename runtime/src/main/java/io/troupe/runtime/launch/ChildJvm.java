package io.troupe.runtime.launch;

import java.io.File;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A child java process running a main class with the current classpath and the current JVM's
 * {@code --add-opens}/{@code --add-exports} flags (which Agrona and Aeron need). Its stdout and
 * stderr go to a temp file ({@link #output()}, {@link #awaitLine}); {@link #send} writes a line to
 * its stdin. {@link #close()} kills it forcibly if still alive; waits are always bounded. The one
 * way Troupe's tests and benchmarks start a JVM.
 */
public final class ChildJvm implements AutoCloseable {
    private final Process process;
    private final Path log;
    private final PrintWriter stdin;

    private ChildJvm(Process process, Path log) {
        this.process = process;
        this.log = log;
        this.stdin = new PrintWriter(new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8), true);
    }

    /** Starts {@code mainClass} with {@code args} and a small heap (512 MiB, serial GC). */
    public static ChildJvm start(Class<?> mainClass, String... args) throws IOException {
        return start(mainClass, List.of("-Xmx512m", "-XX:+UseSerialGC"), List.of(args));
    }

    /** Starts {@code mainClass} with the extra {@code jvmOptions} and {@code args}. */
    public static ChildJvm start(Class<?> mainClass, List<String> jvmOptions, List<String> args) throws IOException {
        Path log = Files.createTempFile("troupe-child-", ".log");
        Process p = new ProcessBuilder(command(mainClass, jvmOptions, args)).redirectErrorStream(true)
            .redirectOutput(log.toFile()).start();
        return new ChildJvm(p, log);
    }

    /**
     * The command line: this JVM's {@code java}, its {@code --add-opens}/{@code --add-exports}
     * flags, {@code jvmOptions}, this JVM's classpath, the main class and {@code args}.
     */
    public static List<String> command(Class<?> mainClass, List<String> jvmOptions, List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse(System.getProperty("java.home") + "/bin/java"));
        List<String> in = ManagementFactory.getRuntimeMXBean().getInputArguments();
        for (int i = 0; i < in.size(); i++) {
            String a = in.get(i);
            if (a.startsWith("--add-opens") || a.startsWith("--add-exports")) {
                cmd.add(a);
                if (!a.contains("=") && i + 1 < in.size()) {
                    cmd.add(in.get(++i));
                }
            }
        }
        cmd.addAll(jvmOptions);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass.getName());
        cmd.addAll(args);
        return cmd;
    }

    /** Writes {@code line} and a newline to the child's stdin, flushed. */
    public void send(String line) {
        stdin.println(line);
        if (stdin.checkError()) {
            throw new IllegalStateException("child " + pid() + " no longer reads its stdin (exited: "
                + !process.isAlive() + "); output:\n" + output());
        }
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

    /**
     * Asks the child to stop (SIGTERM, so its shutdown hooks run), waits at most {@code timeoutMs},
     * then SIGKILLs it if it is still running.
     */
    public void stop(long timeoutMs) throws InterruptedException {
        process.destroy();
        if (!process.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
            kill();
        }
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
        stdin.close();
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
