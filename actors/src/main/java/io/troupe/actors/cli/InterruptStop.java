package io.troupe.actors.cli;

import io.troupe.actors.api.JobHandle;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Ctrl-C (SIGINT) or SIGTERM to a {@code troupe train} that owns its embedded cluster: the user's
 * stop, not a fault. Its JVM shutdown hook stops the job ({@link JobHandle#cancel()}: the workers
 * abort, no recovery, the job record says {@code stopped}) and then waits, at most
 * {@link #CLOSE_WAIT_MS}, until the command has reported the stop and closed its nodes
 * ({@link #close()}): the JVM exits after that, with the signal's status (130 for SIGINT, 143 for SIGTERM). The
 * nodes' own Pekko shutdown hook is off ({@link io.troupe.actors.cluster.EmbeddedNodes}), so
 * they leave the cluster only once the job has stopped.
 *
 * <p>Threading: the hook runs on its own thread, {@link #follow} and {@link #close()} on the command's.
 */
final class InterruptStop implements AutoCloseable {
    /** How long the hook waits for the command to report the stop and close its nodes. */
    static final long CLOSE_WAIT_MS = 60_000;

    private final CountDownLatch closed = new CountDownLatch(1);
    private final Thread hook = new Thread(this::onShutdown, "troupe-train-stop");
    private volatile boolean requested;
    private volatile JobHandle job;
    private volatile Path resumeFrom;

    private InterruptStop() {
    }

    /** Installs the shutdown hook; {@link #close()} removes it. */
    static InterruptStop install() {
        InterruptStop stop = new InterruptStop();
        Runtime.getRuntime().addShutdownHook(stop.hook);
        return stop;
    }

    /**
     * The job a stop ends (stopped at once when the stop came before it was submitted), and its
     * checkpoint directory.
     */
    void follow(JobHandle h, Path checkpointDir) {
        Path abs = checkpointDir.toAbsolutePath().normalize();
        resumeFrom = abs.getFileName() != null && abs.getFileName().toString().equals("checkpoints")
            ? abs.getParent() : abs;
        job = h;
        if (requested) {
            h.cancel();
        }
    }

    /** What {@code --resume} names to continue the job: its run directory (the one holding its checkpoints). */
    Path resumeFrom() {
        return resumeFrom;
    }

    /** Whether the process was asked to stop. */
    boolean requested() {
        return requested;
    }

    private void onShutdown() {
        requested = true;
        JobHandle h = job;
        if (h != null) {
            h.cancel();
        }
        try {
            closed.await(CLOSE_WAIT_MS, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The command is done (its stop reported, its nodes closed): the hook may let the JVM exit. */
    @Override
    public void close() {
        closed.countDown();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running: it returns now that the latch is open
        }
    }
}
