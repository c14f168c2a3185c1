package io.troupe.actors.api;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.EmbeddedNodes;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.runtime.transport.TransportNode;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeoutException;

/**
 * The programmatic entry point. {@link #local(int)} starts an embedded cluster in this JVM (one node
 * per worker on 127.0.0.1, sharing one media driver); {@link #join(Config)} makes this JVM a client
 * node of an existing cluster; {@link #using(TroupeNode)} submits through a node this JVM already runs. Then
 * {@link #submit(TrainingJob)} a job and follow or await it. {@link #close()} ends the jobs still running
 * (cancelled, as {@link JobHandle#cancel()} does) before it stops the nodes it started.
 *
 * <pre>{@code
 * try (Troupe troupe = Troupe.local(2)) {
 *     JobHandle job = troupe.submit(TrainingJob.builder().model("tiny").layout("1x2").schedule("1f1b")
 *         .microbatches(2).batchSize(4).steps(20).build());
 *     job.onEvent(e -> System.out.println(e));
 *     JobEvent end = job.await(Duration.ofMinutes(5));
 * }
 * }</pre>
 */
public final class Troupe implements AutoCloseable {
    private final List<TroupeNode> nodes;
    private final TransportNode sharedTransport;
    private final boolean ownsNodes;
    /** The jobs submitted here that have not ended. */
    private final Set<JobHandle> running = ConcurrentHashMap.newKeySet();
    /** Guards {@link #closed} against a submission racing {@link #close()}. */
    private final Object lock = new Object();
    private boolean closed;

    /** How long {@link #close()} waits for the cluster to end its running jobs before it stops the nodes. */
    static final Duration CLOSE_WAIT = Duration.ofSeconds(10);

    private Troupe(List<TroupeNode> nodes, TransportNode sharedTransport, boolean ownsNodes) {
        this.nodes = nodes;
        this.sharedTransport = sharedTransport;
        this.ownsNodes = ownsNodes;
    }

    /**
     * Submits through a node this JVM already runs (one started with {@link TroupeNode#start});
     * {@link #close()} leaves the node and the jobs submitted through it running: its starter closes it. A client
     * node used this way can leave a job running on the cluster after this JVM is gone.
     */
    public static Troupe using(TroupeNode node) {
        return new Troupe(List.of(node), null, false);
    }

    /**
     * Starts {@code workers} nodes of one worker each in this JVM (each worker's device with this JVM's cores
     * shared out among them); the first also hosts the coordinator.
     *
     * @throws IllegalArgumentException when {@code workers < 1}
     */
    public static Troupe local(int workers) {
        return local(workers, Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, workers)));
    }

    /**
     * As {@link #local(int)}, each worker's device using {@code threadsPerWorker} CPU threads.
     *
     * @throws IllegalArgumentException when {@code workers < 1} or {@code threadsPerWorker < 1}
     */
    public static Troupe local(int workers, int threadsPerWorker) {
        // Pekko's JVM shutdown hooks stay on: a program's own exit leaves the cluster in order
        EmbeddedNodes embedded = EmbeddedNodes.start(workers, threadsPerWorker, ConfigFactory.load());
        return new Troupe(embedded.nodes(), embedded.transport(), true);
    }

    /**
     * Joins the cluster named by {@code troupe.cluster.seeds} in {@code config} as a client (no workers): jobs go
     * to the first seed whose job gateway answers. While a job runs, the client sends its submission to the seeds
     * again every 5 s, so should every node be lost (the cluster stopped or killed, then started again at the seeds),
     * the new cluster carries the job on from its record and last disk checkpoint, and its handle goes on with it.
     * {@link #close()} cancels the jobs still running before the client stops; {@link #using(TroupeNode)} a client
     * node instead keeps them running.
     *
     * @throws IllegalArgumentException when {@code config} names no seed
     */
    public static Troupe join(Config config) {
        Config resolved = config.withFallback(ConfigFactory.load()).resolve();
        NodeSettings s = NodeSettings.from(resolved).withPort(0).withRoles(List.of(), 0);
        if (s.seeds().isEmpty()) {
            throw new IllegalArgumentException("Troupe.join needs troupe.cluster.seeds (host:port of a running node)");
        }
        return new Troupe(List.of(TroupeNode.start(s, resolved, null)), null, true);
    }

    /**
     * Submits a job to the cluster's coordinator and returns at once. The coordinator runs one job at a time: a job
     * submitted while another runs ends as {@link JobEvent.Failed} ({@code a job is already running (...)}), as
     * does one the coordinator refuses (reason starting {@code job refused before any work}).
     *
     * @throws IllegalStateException when this Troupe is closed (nothing is submitted)
     */
    public JobHandle submit(TrainingJob job) {
        return submit(job.request());
    }

    /** As {@link #submit(TrainingJob)}, the job given as the wire request. */
    public JobHandle submit(JobRequest job) {
        synchronized (lock) {
            if (closed) {
                throw new IllegalStateException("this Troupe is closed: the job was not submitted");
            }
            JobHandle handle = JobHandle.submit(nodes.get(0), job);
            running.add(handle);
            handle.outcome().whenComplete((e, x) -> running.remove(handle));
            return handle;
        }
    }

    /**
     * Stops what {@link #local} or {@link #join} started: cancels the jobs submitted here that are still running
     * and waits (up to 10 s) for the cluster to end them, then stops the nodes (and the media driver of
     * {@link #local}). A job the cluster did not end by then ends here as {@link JobEvent.Failed}, so every
     * handle's {@link JobHandle#outcome()} completes. From {@link #using}: submits nothing more, and leaves the
     * node and its jobs running. A second call does nothing.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (!ownsNodes) {
            return;
        }
        List<JobHandle> left = List.copyOf(running);
        try {
            for (JobHandle h : left) {
                h.cancel();
            }
            long end = System.nanoTime() + CLOSE_WAIT.toNanos();
            for (JobHandle h : left) {
                h.await(Duration.ofNanos(Math.max(0, end - System.nanoTime())));
            }
        } catch (TimeoutException e) {
            // the nodes stop anyway; the handles still open end below
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            for (int i = nodes.size() - 1; i >= 0; i--) {
                nodes.get(i).close();
            }
            if (sharedTransport != null) {
                sharedTransport.close();
            }
        } finally {
            for (JobHandle h : left) {
                h.endHere("the Troupe closed before the cluster ended the job");
            }
        }
    }
}
