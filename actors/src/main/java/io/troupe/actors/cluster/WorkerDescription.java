package io.troupe.actors.cluster;

/**
 * What a worker advertises: its node's cluster address, its data-plane endpoint (the string form
 * of a transport endpoint) and its device.
 */
public record WorkerDescription(String nodeAddress, String dataEndpoint, String device, int localIndex)
    implements CrossNodeMessage {
}
