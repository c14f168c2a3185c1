package io.troupe.runtime.launch;

import io.troupe.runtime.transport.DriverDirectory;
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
import java.util.function.Predicate;
import java.util.regex.MatchResult;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A child java process running a main class with the current classpath and the current JVM's
 * {@code --add-opens}/{@code --add-exports} flags (which Agrona and Aeron need). Its stdout and
 * stderr go to a temp file ({@link #output()}, {@link #awaitLine}, {@link #awaitMatch}); {@link #send}
 * writes a line to its stdin. {@link #close()} kills it forcibly if still alive; waits are always
 * bounded. The one way Troupe's tests and benchmarks start a JVM.
 *
 * <p>Once the child is gone, {@link #kill()} and {@link #close()} delete the Aeron directories its
 * embedded media drivers generated and could not delete themselves (a SIGKILLed driver leaves its
 * directory in {@code /dev/shm}): only those named for the child's pid that hold
 * {@link DriverDirectory#MARKER} ({@link DriverDirectory#deleteGenerated}).
 *
 * <p>Threading: one thread starts, drives and closes a child; {@link #output()} from any thread.
 */
public final class ChildJvm implements AutoCloseable {
    /**
     * System property holding JVM options for every child, separated by whitespace, placed before the
     * caller's {@code jvmOptions} (so those win where both set one); unset or blank: none. The test builds
     * set it to options that start a child quickly where its peak speed does not matter (surefire's
     * {@code troupe.launch.child-jvm-options}); a benchmark's JVM leaves it unset.
     */
    public static final String OPTIONS_PROPERTY = "troupe.launch.child-jvm-options";
    private static final long KILL_WAIT_MS = 10_000;
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
     * flags, the options of {@link #OPTIONS_PROPERTY}, {@code jvmOptions}, this JVM's classpath, the
     * main class and {@code args}.
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
        cmd.addAll(propertyOptions());
        cmd.addAll(jvmOptions);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass.getName());
        cmd.addAll(args);
        return cmd;
    }

    /** The options {@link #OPTIONS_PROPERTY} holds in this JVM, in order; empty when it is unset or blank. */
    public static List<String> propertyOptions() {
        String value = System.getProperty(OPTIONS_PROPERTY, "").trim();
        return value.isEmpty() ? List.of() : List.of(value.split("\\s+"));
    }

    /**
     * Whether the child ignores signal {@code signo} (Linux numbering), as {@code /proc/PID/status}
     * says: a process started in the background of a non-interactive shell ignores SIGINT, one under
     * {@code nohup} SIGHUP, and a JVM leaves an ignored SIGINT or SIGHUP ignored, so a test that sends
     * one must know. False where {@code /proc} does not say.
     */
    public boolean ignoresSignal(int signo) {
        if (signo < 1 || signo > 64) {
            throw new IllegalArgumentException("a signal number is in [1, 64]: signo=" + signo);
        }
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc", Long.toString(pid()),
                "status"))) {
                if (line.startsWith("SigIgn:")) {
                    long mask = Long.parseUnsignedLong(line.substring("SigIgn:".length()).trim(), 16);
                    return (mask >>> (signo - 1) & 1) != 0;
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            return false;
        }
        return false;
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

    /**
     * SIGKILLs the child, waits (at most 10 s) for it to be gone, and deletes the Aeron directories its
     * embedded drivers left.
     *
     * @throws IllegalStateException when the child is still running 10 s after the SIGKILL
     */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(KILL_WAIT_MS, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("child " + pid() + " still running " + KILL_WAIT_MS + " ms after SIGKILL");
        }
        DriverDirectory.deleteGenerated(pid());
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
        return awaitWholeLine(line -> line.startsWith(prefix), "'" + prefix + "'", timeoutMs).trim();
    }

    /**
     * Waits (bounded, polling the output file) until the child printed a line that contains a match of
     * {@code pattern} ({@link Matcher#find()}), and returns that match: its groups are the line's.
     */
    public MatchResult awaitMatch(Pattern pattern, long timeoutMs) throws InterruptedException {
        String line = awaitWholeLine(l -> pattern.matcher(l).find(), "a match of '" + pattern + "'", timeoutMs);
        Matcher m = pattern.matcher(line);
        m.find();
        return m.toMatchResult();
    }

    /** The first whole line of output that {@code matches}; {@code what} names it in the failure. */
    private String awaitWholeLine(Predicate<String> matches, String what, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (System.nanoTime() < deadline) {
            String out = output();
            // Only whole lines: the child may be half-way through writing the last one.
            int end = out.lastIndexOf('\n');
            for (String line : (end < 0 ? "" : out.substring(0, end)).split("\n")) {
                if (matches.test(line)) {
                    return line;
                }
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("child exited with " + process.exitValue() + " before printing "
                    + what + "; output:\n" + output());
            }
            Thread.sleep(10); // polling a file the child writes; there is no event to wait on
        }
        throw new IllegalStateException("child did not print " + what + " within " + timeoutMs + " ms; output:\n"
            + output());
    }

    /**
     * Closes the child's stdin, SIGKILLs it if still alive and waits (at most 10 s) for it to be gone,
     * deletes the Aeron directories its embedded drivers left (also after an exit of its own: a
     * {@code System.exit} or an outside SIGKILL), and deletes the output file.
     *
     * @throws IllegalStateException when the child is still running 10 s after the SIGKILL, or a
     *                               directory it left cannot be deleted
     */
    @Override
    public void close() {
        stdin.close();
        try {
            if (process.isAlive()) {
                kill();
            } else {
                DriverDirectory.deleteGenerated(pid());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            new File(log.toString()).delete();
        }
    }
}
