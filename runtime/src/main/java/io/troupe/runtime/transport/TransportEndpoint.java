package io.troupe.runtime.transport;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Where a worker receives tensors: the node (media driver) it lives on, its UDP address for remote
 * peers, and its stream id (the same on IPC and UDP). The control plane carries it as a string,
 * {@code nodeId@host:port/streamId}; a peer with the same {@code nodeId} is reached over
 * {@code aeron:ipc}, any other over {@code aeron:udp?endpoint=host:port}.
 */
public record TransportEndpoint(String nodeId, String host, int port, int streamId) {
    private static final Pattern NODE_ID = Pattern.compile("[A-Za-z0-9._-]+");
    private static final Pattern FORM = Pattern.compile(
        "([A-Za-z0-9._-]+)@(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):(\\d{1,5})/(-?\\d+)");

    public TransportEndpoint {
        if (nodeId == null || !NODE_ID.matcher(nodeId).matches()) {
            throw new IllegalArgumentException("nodeId must match [A-Za-z0-9._-]+: nodeId=" + nodeId);
        }
        if (host == null || host.isBlank() || host.indexOf('@') >= 0 || host.indexOf('/') >= 0) {
            throw new IllegalArgumentException("bad host: host=" + host);
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("port must be in [1, 65535]: port=" + port);
        }
    }

    /** Parses {@link #toString()}'s form, naming the bad text on failure. */
    public static TransportEndpoint parse(String text) {
        Matcher m = text == null ? null : FORM.matcher(text.trim());
        if (m == null || !m.matches()) {
            throw new IllegalArgumentException("endpoint must look like nodeId@host:port/streamId: endpoint=" + text);
        }
        int port;
        int streamId;
        try {
            port = Integer.parseInt(m.group(3));
            streamId = Integer.parseInt(m.group(4));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("endpoint numbers out of range: endpoint=" + text, e);
        }
        return new TransportEndpoint(m.group(1), m.group(2), port, streamId);
    }

    /** True when a worker on {@code localNodeId} reaches this endpoint over IPC. */
    public boolean isSameNode(String localNodeId) {
        return nodeId.equals(localNodeId);
    }

    @Override
    public String toString() {
        return nodeId + "@" + host + ":" + port + "/" + streamId;
    }
}
