package io.troupe.actors.serve;

import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import org.agrona.CloseHelper;
import org.agrona.ErrorHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The data-plane node of a serving process (a server with pipeline stages, or a stage host), launched again
 * when its Aeron client has closed. The client closes itself when its conductor misses its service interval
 * (Aeron's driver timeout, 10 s): the process was stopped (SIGSTOP, a paused virtual machine) or stalled that
 * long. Every publication and subscription of that client is gone, and a node whose client is closed opens
 * none again, so each wiring takes its node from {@link #node()}, which replaces a closed one (its driver
 * closed and its directory deleted) with a new one on the same settings. Stages and workers opened on the old
 * node are closed by their owners, as after any loss. Thread-safe.
 */
final class DataPlane implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DataPlane.class);
    private final TransportSettings settings;
    private final ErrorHandler errors;
    private final String owner;
    private TransportNode node;
    private boolean closed;

    /**
     * Launches the node of {@code owner} (named in the log) on {@code settings}, its errors to {@code errors}.
     *
     * @throws RuntimeException when the node cannot be launched
     */
    DataPlane(TransportSettings settings, String owner, ErrorHandler errors) {
        this.settings = settings;
        this.errors = errors;
        this.owner = owner;
        this.node = TransportNode.launch(settings, errors);
    }

    /**
     * The node to open workers on: the current one, or, when its Aeron client has closed, a new one launched in
     * its place.
     *
     * @throws IllegalStateException when this data plane is closed
     * @throws RuntimeException      when a new node cannot be launched (the next call tries again)
     */
    synchronized TransportNode node() {
        if (closed) {
            throw new IllegalStateException("the data plane of the " + owner + " is closed");
        }
        if (node != null && node.aeron().isClosed()) {
            LOG.warn("the data plane of the {}: its Aeron client closed (the process was stopped or stalled past"
                + " Aeron's driver timeout); launching it again", owner);
            CloseHelper.quietClose(node);
            node = null;
        }
        if (node == null) {
            node = TransportNode.launch(settings, errors);
        }
        return node;
    }

    /** The node as it is now, whether or not its client is closed (null while a relaunch failed). */
    synchronized TransportNode current() {
        return node;
    }

    @Override
    public synchronized void close() {
        closed = true;
        CloseHelper.quietClose(node);
        node = null;
    }
}
