package io.troupe.actors.bench;

import io.troupe.actors.cli.TroupeCli;
import io.troupe.runtime.launch.ChildJvm;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The serve bench's stage hosts: {@code troupe serve-stage} processes on 127.0.0.1, each a JVM of its own
 * ({@link ChildJvm}: this JVM's classpath and module flags) reading its stages from the same checkpoint
 * as the server, on a free port it reports when up. {@link #close} stops them (SIGTERM, so each closes
 * its data-plane node, then SIGKILL after 10 s); so does a stop of this JVM (SIGTERM to each) before then.
 *
 * <p>Threading: the bench's main thread starts, reads and closes them.
 */
final class StageHostProcesses implements AutoCloseable {
    private static final Pattern UP = Pattern.compile("troupe serve-stage: up at (\\S+), serving stages of ");
    private static final long START_TIMEOUT_MS = 120_000;
    private static final long STOP_TIMEOUT_MS = 10_000;

    private final List<ChildJvm> hosts;
    private final List<String> hostPorts;
    private final Thread onExit;

    private StageHostProcesses(List<ChildJvm> hosts, List<String> hostPorts) {
        this.hosts = hosts;
        this.hostPorts = hostPorts;
        this.onExit = new Thread(() -> hosts.forEach(h -> h.process().destroy()), "serve-bench-stage-hosts-stop");
        Runtime.getRuntime().addShutdownHook(onExit);
    }

    /**
     * Starts {@code count} stage hosts serving stages of {@code checkpoint}, each JVM with
     * {@code jvmOptions} besides this JVM's module flags; returns once every one says it is up.
     *
     * @throws IllegalStateException with a host's output when it exits or is not up within 120 s
     */
    static StageHostProcesses start(Path checkpoint, int count, List<String> jvmOptions) throws Exception {
        List<ChildJvm> started = new ArrayList<>();
        List<String> hostPorts = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                started.add(ChildJvm.start(TroupeCli.class, jvmOptions, List.of("serve-stage", "--checkpoint",
                    checkpoint.toString(), "--host", "127.0.0.1", "--port", "0")));
            }
            for (ChildJvm h : started) {
                hostPorts.add(h.awaitMatch(UP, START_TIMEOUT_MS).group(1));
            }
        } catch (Exception | Error e) {
            new StageHostProcesses(started, hostPorts).close();
            throw e;
        }
        return new StageHostProcesses(started, hostPorts);
    }

    /** {@code host:port} of each, in start order: what a server names in {@code --stage-hosts}. */
    List<String> hostPorts() {
        return List.copyOf(hostPorts);
    }

    /** The CPU time the host processes have used so far, ns, summed (-1 where the OS does not say). */
    long cpuNs() {
        long sum = 0;
        for (ChildJvm h : hosts) {
            Duration d = h.process().info().totalCpuDuration().orElse(null);
            if (d == null) {
                return -1;
            }
            sum += d.toNanos();
        }
        return sum;
    }

    /** Everything the hosts printed so far, each under a header naming its pid. */
    String output() {
        StringBuilder sb = new StringBuilder();
        for (ChildJvm h : hosts) {
            sb.append("--- stage host ").append(h.pid()).append(" ---\n").append(h.output());
        }
        return sb.toString();
    }

    @Override
    public void close() {
        try {
            Runtime.getRuntime().removeShutdownHook(onExit);
        } catch (IllegalStateException stopping) {
            // this JVM is stopping: the hook stops them too
        }
        for (ChildJvm h : hosts) {
            try {
                h.stop(STOP_TIMEOUT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (RuntimeException e) {
                System.out.println("stopping stage host " + h.pid() + ": " + e);
            }
            h.close();
        }
    }
}
