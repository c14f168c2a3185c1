package io.troupe.actors.cluster;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What one node refused from the network, counted by reason: oversized or malformed control
 * messages, declared lengths past their bounds, paths outside {@code troupe.cluster.allowed-roots},
 * nodes of another protocol version. Each refusal is logged once with its reason and counted; the
 * message is dropped and nothing else happens, so a running job is untouched.
 *
 * <p>Threading: counts are atomic; any thread may count and read. Nodes register their counters
 * under their instance id ({@code troupe.cluster.instance-id}), so code that Pekko instantiates by
 * class name (the serializer, the join checker) finds its node's counters.
 */
public final class RefusedInputs {
    private static final Logger LOG = LoggerFactory.getLogger(RefusedInputs.class);
    private static final Map<String, RefusedInputs> BY_INSTANCE = new ConcurrentHashMap<>();

    /** Why an input was refused. */
    public enum Reason {
        /** A control message larger than {@code troupe.cluster.max-message-bytes}. */
        OVERSIZED,
        /** An array, list or string declaring more elements than allowed or than its bytes hold. */
        LENGTH_BOUND,
        /** Bytes that are no registered message: an unknown class id, truncated or garbled. */
        MALFORMED,
        /** A file path outside {@code troupe.cluster.allowed-roots}. */
        PATH_OUTSIDE_ROOTS,
        /** A node of another protocol version asked to join. */
        PROTOCOL_VERSION
    }

    private final EnumMap<Reason, AtomicLong> counts = new EnumMap<>(Reason.class);

    public RefusedInputs() {
        for (Reason r : Reason.values()) {
            counts.put(r, new AtomicLong());
        }
    }

    /** Counts a refusal and logs it with its reason. */
    public void refuse(Reason reason, String detail) {
        counts.get(reason).incrementAndGet();
        LOG.warn("refused {}: {}", reason, detail);
    }

    /** Refusals so far for one reason. */
    public long count(Reason reason) {
        return counts.get(reason).get();
    }

    /** Refusals so far for every reason. */
    public long total() {
        long t = 0;
        for (AtomicLong c : counts.values()) {
            t += c.get();
        }
        return t;
    }

    /** The counters of the node with this instance id (created on first use). */
    static RefusedInputs forInstance(String instanceId) {
        return BY_INSTANCE.computeIfAbsent(instanceId, id -> new RefusedInputs());
    }

    /** Forgets a stopped node's counters. */
    static void release(String instanceId) {
        BY_INSTANCE.remove(instanceId);
    }
}
