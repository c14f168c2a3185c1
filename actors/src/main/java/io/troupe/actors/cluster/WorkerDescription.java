package io.troupe.actors.cluster;

/**
 * What a worker advertises: its node's cluster address and incarnation ({@code address#uid}: a node
 * restarted on the same host and port is another member), its data-plane endpoint (the string form
 * of a transport endpoint: activations, gradients, data-parallel buckets), the endpoint of its
 * control collectives (the job-wide gradient norm; a stream of its own, so those collectives never
 * share a sender with the stage link), its device, and the endpoint where buddies send it copies of
 * their in-memory snapshots ("" when it takes none).
 */
public record WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device,
                                int localIndex, String snapshotEndpoint) implements CrossNodeMessage {

    /** A worker that takes no snapshot copies. */
    public WorkerDescription(String nodeAddress, String dataEndpoint, String controlEndpoint, String device, int localIndex) {
        this(nodeAddress, dataEndpoint, controlEndpoint, device, localIndex, "");
    }
}
