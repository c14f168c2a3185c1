package io.troupe.runtime.transport;

import io.aeron.ChannelUriStringBuilder;

/** Builds the Aeron channel strings of the data plane from the settings (setup time only). */
public final class TransportChannels {
    private TransportChannels() {
    }

    /** True for an {@code aeron:ipc} channel (shared memory of one node), false for UDP. */
    public static boolean isIpc(String channel) {
        return channel.startsWith("aeron:ipc");
    }

    /** Receiving side for same-node peers. */
    public static String ipcSubscription() {
        return new ChannelUriStringBuilder().media("ipc").build();
    }

    /** Receiving side for remote peers; port 0 lets the OS pick. */
    public static String udpSubscription(TransportSettings s, String host, int port) {
        return new ChannelUriStringBuilder().media("udp").endpoint(host + ":" + port)
            .socketRcvbufLength(s.socketBufferBytes()).receiverWindowLength(s.effectiveReceiverWindowBytes()).build();
    }

    /** Sending side to a same-node peer. */
    public static String ipcPublication(TransportSettings s, int sessionId) {
        return new ChannelUriStringBuilder().media("ipc").termLength(s.termLengthBytes()).mtu(s.ipcMtuBytes())
            .sessionId(sessionId).build();
    }

    /**
     * Sending side to a remote peer; the MTU is {@link TransportSettings#udpMtuBytesFor} its host. The
     * send socket binds the node's own address ({@code udpBindHost}, Aeron's {@code interface}), not
     * the wildcard, so every data-plane socket of a node is on the address it advertises.
     */
    public static String udpPublication(TransportSettings s, String host, int port, int sessionId) {
        return new ChannelUriStringBuilder().media("udp").endpoint(host + ":" + port).networkInterface(s.udpBindHost())
            .termLength(s.termLengthBytes()).mtu(s.udpMtuBytesFor(host)).socketSndbufLength(s.socketBufferBytes())
            .sessionId(sessionId).build();
    }
}
