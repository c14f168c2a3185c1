package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.runtime.transport.TransportNode;
import java.util.ArrayList;
import java.util.List;

/**
 * The nodes of a cluster in this JVM whose owner stops them (one node per worker on 127.0.0.1,
 * sharing one media driver; the first also hosts the coordinator), as {@code troupe train} runs
 * them. Pekko's JVM shutdown hooks are off for these nodes: on SIGINT or SIGTERM (or a JVM shutdown)
 * the owner's own stop runs alone, so it can stop the job first (a user's stop, no recovery) and then
 * {@link #close()} the nodes, which leave the cluster with no job left to fault. A node of a
 * multi-process cluster ({@code troupe node}) keeps the hook: its leaving is a fault for the job.
 */
public final class EmbeddedNodes implements AutoCloseable {
    private final List<TroupeNode> nodes;
    private final TransportNode transport;

    private EmbeddedNodes(List<TroupeNode> nodes, TransportNode transport) {
        this.nodes = nodes;
        this.transport = transport;
    }

    /**
     * Starts {@code workers} nodes of one worker each, each worker's device using {@code threadsPerWorker} threads,
     * without Pekko's JVM shutdown hooks (CoordinatedShutdown's, which leaves the cluster, and Artery's, which closes
     * the remoting transport): the owner's hook stops the job before the nodes go.
     */
    public static EmbeddedNodes start(int workers, int threadsPerWorker) {
        return start(workers, threadsPerWorker,
            ConfigFactory.parseString("pekko.jvm-shutdown-hooks = off").withFallback(ConfigFactory.load()));
    }

    /** As {@link #start(int, int)}, the nodes configured by {@code base} (hooks as it says). */
    public static EmbeddedNodes start(int workers, int threadsPerWorker, Config base) {
        if (workers < 1) {
            throw new IllegalArgumentException("an embedded cluster needs at least one worker: workers=" + workers);
        }
        if (threadsPerWorker < 1) {
            throw new IllegalArgumentException("threads per worker must be >= 1: threadsPerWorker=" + threadsPerWorker);
        }
        TransportNode transport = TransportNode.launch(TransportConfig.from(base), Throwable::printStackTrace);
        List<TroupeNode> nodes = new ArrayList<>();
        try {
            NodeSettings s = NodeSettings.from(base).withPort(0);
            s = new NodeSettings(s.systemName(), "127.0.0.1", 0, List.of(), List.of("worker", "coordinator"), 1,
                threadsPerWorker, s.acceptableHeartbeatPause(), s.failureDetectorThreshold(), s.sbrStableAfter());
            TroupeNode first = TroupeNode.start(s, base, transport);
            nodes.add(first);
            for (int i = 1; i < workers; i++) {
                nodes.add(TroupeNode.start(s.withRoles(List.of("worker"), 1).withSeeds(List.of(first.hostPort())),
                    base, transport));
            }
            return new EmbeddedNodes(List.copyOf(nodes), transport);
        } catch (RuntimeException e) {
            for (TroupeNode n : nodes) {
                n.close();
            }
            transport.close();
            throw e;
        }
    }

    /** The nodes, in the order they started. */
    public List<TroupeNode> nodes() {
        return nodes;
    }

    /** The media driver the nodes share. */
    public TransportNode transport() {
        return transport;
    }

    /** The first node: it hosts the coordinator, and jobs are submitted through it. */
    public TroupeNode first() {
        return nodes.get(0);
    }

    /** Closes the nodes, the last started first (each leaves the cluster), then the shared media driver. */
    @Override
    public void close() {
        for (int i = nodes.size() - 1; i >= 0; i--) {
            nodes.get(i).close();
        }
        transport.close();
    }
}
