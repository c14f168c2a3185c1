package io.troupe.actors.cluster;

import io.troupe.actors.cluster.snapshot.DirectMemory;
import io.troupe.actors.cluster.snapshot.SnapshotExchange;

/**
 * What a worker advertises: its node's cluster address and incarnation ({@code address#uid}: a node
 * restarted on the same host and port is another member), its data-plane endpoint (the string form
 * of a transport endpoint: activations, gradients, data-parallel buckets), the endpoint of its
 * control collectives (the job-wide gradient norm; a stream of its own, so those collectives never
 * share a sender with the stage link), its device, the endpoint where buddies send it copies of
 * their in-memory snapshots ("" when it takes none), the log2 of the largest snapshot piece its
 * receiver reassembles (a quarter of its own receive budget; 0 when it takes no copies): senders
 * size their pieces by the receiver's budget, not their own; the direct memory its node's JVM
 * can give in-memory snapshot slots, measured afresh each time it describes itself: when it registers, when a
 * job is submitted, and in its Quiesced answer before a re-plan ({@link DirectMemory#availableForSnapshotsBytes()}:
 * the {@code -XX:MaxDirectMemorySize} limit less what is in use and a reserve;
 * {@link DirectMemory#UNKNOWN} when not measured, and then no check is made); the memory domain that
 * memory belongs to ({@link DirectMemory#JVM}: its JVM, which may run several nodes; "" for the node alone);
 * and the direct memory its own snapshot slots hold then ({@code snapshotHeldBytes}): counted as in use in the
 * first figure, yet what the worker's next snapshots are written into, so the coordinator gives it back to the
 * workers that take a rank ({@link SnapshotMemory#limitByDomain}).
 * The workers of one domain share that memory: the coordinator counts every slot of their ranks against it.
 */
public record WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device,
                                int localIndex, String snapshotEndpoint, int snapshotPieceShift,
                                long snapshotMemoryBytes, String memoryDomain, long snapshotHeldBytes)
    implements CrossNodeMessage {

    public WorkerDescription {
        if (snapshotEndpoint.isEmpty() ? snapshotPieceShift != 0
            : !SnapshotExchange.isPieceShift(snapshotPieceShift)) {
            throw new IllegalArgumentException("a worker taking snapshot copies names a piece size of 2^"
                + SnapshotExchange.MIN_PIECE_SHIFT + " to 2^" + SnapshotExchange.MAX_PIECE_SHIFT
                + " bytes, one taking none 0: "
                + "snapshotEndpoint='" + snapshotEndpoint + "', snapshotPieceShift=" + snapshotPieceShift);
        }
        if (snapshotMemoryBytes < DirectMemory.UNKNOWN) {
            throw new IllegalArgumentException("a worker's snapshot memory is bytes >= 0, or " + DirectMemory.UNKNOWN
                + " when unknown: snapshotMemoryBytes=" + snapshotMemoryBytes);
        }
        if (memoryDomain == null) {
            throw new IllegalArgumentException("a worker's memory domain is a JVM's name, or \"\" for its node "
                + "alone: null");
        }
        if (snapshotHeldBytes < 0) {
            throw new IllegalArgumentException("the bytes a worker's snapshot slots hold are >= 0: snapshotHeldBytes="
                + snapshotHeldBytes);
        }
    }

    /** A worker whose snapshot slots hold nothing yet. */
    public WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device,
                             int localIndex, String snapshotEndpoint, int snapshotPieceShift, long snapshotMemoryBytes,
                             String memoryDomain) {
        this(nodeAddress, dataEndpoint, controlEndpoint, device, localIndex, snapshotEndpoint, snapshotPieceShift,
            snapshotMemoryBytes, memoryDomain, 0);
    }

    /**
     * This worker measured again: {@code snapshotMemoryBytes} free for snapshot slots, {@code snapshotHeldBytes} held
     * by its own.
     */
    public WorkerDescription measured(long snapshotMemoryBytes, long snapshotHeldBytes) {
        return new WorkerDescription(nodeAddress, dataEndpoint, controlEndpoint, device, localIndex, snapshotEndpoint,
            snapshotPieceShift, snapshotMemoryBytes, memoryDomain, snapshotHeldBytes);
    }

    /** A worker whose memory domain is its node alone. */
    public WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device,
                             int localIndex, String snapshotEndpoint, int snapshotPieceShift,
                             long snapshotMemoryBytes) {
        this(nodeAddress, dataEndpoint, controlEndpoint, device, localIndex, snapshotEndpoint, snapshotPieceShift,
            snapshotMemoryBytes, "");
    }

    /** The key the coordinator sums snapshot slots by: the memory domain, or the node when it names none. */
    public String memoryKey() {
        return memoryDomain.isEmpty() ? nodeAddress : memoryDomain;
    }

    /** A worker taking snapshot copies whose node's direct memory is not known (no check is made). */
    public WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device,
                             int localIndex, String snapshotEndpoint, int snapshotPieceShift) {
        this(nodeAddress, dataEndpoint, controlEndpoint, device, localIndex, snapshotEndpoint, snapshotPieceShift,
            DirectMemory.UNKNOWN);
    }

    /** A worker that takes no snapshot copies. */
    public WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device,
                             int localIndex) {
        this(nodeAddress, dataEndpoint, controlEndpoint, device, localIndex, "", 0);
    }
}
