package io.troupe.actors.cluster;

import com.typesafe.config.ConfigFactory;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Test fixture: a cluster of real Pekko nodes on 127.0.0.1 in this JVM, sharing one media driver.
 * The first node has the worker and coordinator roles and starts the cluster; every other node is a
 * worker that joins it. Each node hosts one worker. {@link #close()} stops every node (those a test
 * already closed included), newest first, then the driver.
 */
final class EmbeddedCluster implements AutoCloseable {
    private final TransportNode transport;
    private final List<TroupeNode> nodes = new ArrayList<>();

    private EmbeddedCluster(TransportNode transport) {
        this.transport = transport;
    }

    /** Starts {@code nodes} nodes, the first with the coordinator role. */
    static EmbeddedCluster start(int nodes) {
        return start(nodes, TransportSettings.defaults());
    }

    /** Starts {@code nodes} nodes on a media driver and data plane of {@code settings}. */
    static EmbeddedCluster start(int nodes, TransportSettings settings) {
        return start(nodes, settings, UnaryOperator.identity());
    }

    /**
     * Starts {@code nodes} nodes whose workers all read a job's data at {@code dataView} applied to its data path (as
     * the cluster's hosts' copies of it, which may differ from this process's).
     */
    static EmbeddedCluster start(int nodes, UnaryOperator<Path> dataView) {
        return start(nodes, TransportSettings.defaults(), dataView);
    }

    private static EmbeddedCluster start(int nodes, TransportSettings settings, UnaryOperator<Path> dataView) {
        if (nodes < 1) {
            throw new IllegalArgumentException("an embedded cluster needs at least one node: nodes=" + nodes);
        }
        EmbeddedCluster c = new EmbeddedCluster(TransportNode.launch(settings, Throwable::printStackTrace));
        try {
            NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
            c.nodes.add(TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1).withSeeds(List.of()),
                ConfigFactory.load(), c.transport, dataView));
            for (int i = 1; i < nodes; i++) {
                c.addWorker(dataView);
            }
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** Starts one more worker node that joins through the first node; returns it. */
    TroupeNode addWorker() {
        return addWorker(UnaryOperator.identity());
    }

    /**
     * Starts one more worker node that joins through the first node, its worker reading a job's data at
     * {@code dataView} applied to the job's data path (as another host's copy of it); returns it.
     */
    TroupeNode addWorker(UnaryOperator<Path> dataView) {
        NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
        TroupeNode n = TroupeNode.start(base.withRoles(List.of("worker"), 1)
            .withSeeds(List.of(nodes.get(0).hostPort())), ConfigFactory.load(), transport, dataView);
        nodes.add(n);
        return n;
    }

    /** The nodes started so far, the first hosting the coordinator. */
    List<TroupeNode> nodes() {
        return List.copyOf(nodes);
    }

    TroupeNode get(int i) {
        return nodes.get(i);
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (int i = nodes.size() - 1; i >= 0; i--) {
            try {
                nodes.get(i).close(); // a node a test closed already stops again at once
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
        }
        transport.close();
        if (first != null) {
            throw first;
        }
    }
}
