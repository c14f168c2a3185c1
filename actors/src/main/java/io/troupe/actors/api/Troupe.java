package io.troupe.actors.api;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.actors.cluster.EmbeddedNodes;
import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.runtime.transport.TransportNode;
import java.util.List;

/**
 * The programmatic entry point. {@link #local(int)} starts an embedded cluster in this JVM (one node
 * per worker on 127.0.0.1, sharing one media driver); {@link #join(Config)} makes this JVM a client
 * node of an existing cluster. Then {@link #submit(TrainingJob)} a job and follow or await it.
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

    private Troupe(List<TroupeNode> nodes, TransportNode sharedTransport, boolean ownsNodes) {
        this.nodes = nodes;
        this.sharedTransport = sharedTransport;
        this.ownsNodes = ownsNodes;
    }

    /**
     * Submits through a node this JVM already runs (one started with {@link TroupeNode#start});
     * {@link #close()} leaves the node running: its starter closes it.
     */
    public static Troupe using(TroupeNode node) {
        return new Troupe(List.of(node), null, false);
    }

    /** Starts {@code workers} nodes of one worker each in this JVM; the first also hosts the coordinator. */
    public static Troupe local(int workers) {
        return local(workers, Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, workers)));
    }

    /** As {@link #local(int)}, each worker's device using {@code threadsPerWorker} CPU threads. */
    public static Troupe local(int workers, int threadsPerWorker) {
        // Pekko's JVM shutdown hooks stay on: a program's own exit leaves the cluster in order
        EmbeddedNodes embedded = EmbeddedNodes.start(workers, threadsPerWorker, ConfigFactory.load());
        return new Troupe(embedded.nodes(), embedded.transport(), true);
    }

    /** Joins the cluster named by {@code troupe.cluster.seeds} in {@code config} as a client (no workers). */
    public static Troupe join(Config config) {
        Config resolved = config.withFallback(ConfigFactory.load()).resolve();
        NodeSettings s = NodeSettings.from(resolved).withPort(0).withRoles(List.of(), 0);
        if (s.seeds().isEmpty()) {
            throw new IllegalArgumentException("Troupe.join needs troupe.cluster.seeds (host:port of a running node)");
        }
        return new Troupe(List.of(TroupeNode.start(s, resolved, null)), null, true);
    }

    /** Submits a job to the cluster's coordinator. */
    public JobHandle submit(TrainingJob job) {
        return submit(job.request());
    }

    /** Submits a job given as the wire request. */
    public JobHandle submit(JobRequest job) {
        return JobHandle.submit(nodes.get(0), job);
    }

    @Override
    public void close() {
        if (!ownsNodes) {
            return;
        }
        for (int i = nodes.size() - 1; i >= 0; i--) {
            nodes.get(i).close();
        }
        if (sharedTransport != null) {
            sharedTransport.close();
        }
    }
}
