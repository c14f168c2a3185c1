package io.troupe.runtime.testkit;

import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import io.troupe.runtime.transport.WorkerTransport;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.agrona.CloseHelper;

/**
 * An embedded media driver on loopback for tests: a {@link TransportNode} in a fresh directory
 * under /dev/shm, with settings sized for a shared 2-core machine, and every worker opened through
 * it closed with it. Errors reported by the driver, client or agents are collected in
 * {@link #errors()} so a test can assert there were none.
 */
public final class LoopbackDriver implements AutoCloseable {
    private final TransportNode node;
    private final List<Throwable> errors = new CopyOnWriteArrayList<>();
    private final List<WorkerTransport> workers = new ArrayList<>();

    private LoopbackDriver(TransportSettings settings) {
        this.node = TransportNode.launch(settings, errors::add);
    }

    /**
     * Test defaults: the data plane's defaults (16 MiB terms, CRC on, peer lost after 5 s: shorter
     * timeouts report false losses when the shared 2-core machine is overloaded) with a 192 MiB budget.
     */
    public static TransportSettings testSettings() {
        return TransportSettings.defaults()
            .withReceiveBudgetBytes(192L * 1024 * 1024);
    }

    public static LoopbackDriver start() {
        return new LoopbackDriver(testSettings());
    }

    public static LoopbackDriver start(TransportSettings settings) {
        return new LoopbackDriver(settings);
    }

    public TransportNode node() {
        return node;
    }

    /** Errors handed to any error handler of this fixture. */
    public List<Throwable> errors() {
        return errors;
    }

    /** Opens a worker with an assigned rank, closed by {@link #close()}. */
    public WorkerTransport openWorker(String name, int rank, long epoch, TensorReceiverAgent.Listener listener) {
        WorkerTransport w = node.openWorker(name, rank, epoch, listener, errors::add);
        workers.add(w);
        return w;
    }

    @Override
    public void close() {
        CloseHelper.closeAll(workers);
        workers.clear();
        String dir = node.aeronDir();
        node.close();
        if (new File(dir).exists()) {
            throw new IllegalStateException("aeron dir left behind: " + dir);
        }
    }
}
