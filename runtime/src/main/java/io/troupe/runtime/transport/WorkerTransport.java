package io.troupe.runtime.transport;

import io.aeron.ExclusivePublication;
import io.aeron.Subscription;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.agrona.CloseHelper;
import org.agrona.ErrorHandler;
import org.agrona.collections.Int2ObjectHashMap;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * The data plane of one worker: a {@link TensorReceiverAgent} on its own stream (one IPC and one UDP
 * subscription) and one {@link TensorSender} per peer, each on its own exclusive publication
 * ({@code aeron:ipc} to same-node peers, {@code aeron:udp} otherwise). Large tensors to workers of
 * the same JVM take one direct copy ({@link LocalCopyLink}); those to workers of another process on the
 * host go through a shared-memory {@link IpcRing} beside the IPC publication.
 *
 * <p>Threading: setup methods ({@link #connect}, {@link #assign}, {@link #close}) from the owning
 * worker; the receiver agent is run by whoever the launcher chooses (an {@code AgentRunner} or the
 * owner's duty cycle); each sender by one thread.
 */
public final class WorkerTransport implements AutoCloseable {
    private final TransportNode node;
    private final TensorReceiverAgent receiver;
    private final TransportEndpoint endpoint;
    private final Int2ObjectHashMap<TensorSender> senders = new Int2ObjectHashMap<>();
    /** Takes each sender a connect replaces; null: it is closed on the connecting thread. */
    private volatile Consumer<TensorSender> replacedSenders;
    private final int streamId;
    private volatile int rank;
    private volatile int jobId;

    WorkerTransport(TransportNode node, String name, int rank, long epoch, TensorReceiverAgent.Listener listener,
                    ErrorHandler errorHandler) {
        TransportSettings s = node.settings();
        this.node = node;
        this.rank = rank;
        int streamId = node.nextStreamId();
        String[] channels = {TransportChannels.ipcSubscription(),
            TransportChannels.udpSubscription(s, s.udpBindHost(), s.udpPort())};
        this.receiver = new TensorReceiverAgent(name, node.aeron(), channels, streamId, s, rank, epoch, listener,
            errorHandler, node.localCopyRegistry(), node.aeronDir());
        receiver.countReceivedInto(node.traffic());
        this.streamId = streamId;
        try {
            int port = resolvePort(receiver.subscription(1), s);
            this.endpoint = new TransportEndpoint(node.nodeId(), s.udpBindHost(), port, streamId);
            node.localCopyRegistry().addReceiver(streamId);
        } catch (RuntimeException e) {
            receiver.close();
            throw e;
        }
    }

    private static int resolvePort(Subscription udp, TransportSettings s) {
        long deadlineNs = System.nanoTime() + s.connectTimeoutNs();
        IdleStrategy idle = new BackoffIdleStrategy(1, 1, TimeUnit.MICROSECONDS.toNanos(50),
            TimeUnit.MILLISECONDS.toNanos(1));
        while (true) {
            String resolved = udp.resolvedEndpoint();
            if (resolved != null) {
                return Integer.parseInt(resolved.substring(resolved.lastIndexOf(':') + 1));
            }
            if (System.nanoTime() > deadlineNs) {
                throw new TransportTimeoutException("UDP subscription did not bind within connectTimeoutNs="
                    + s.connectTimeoutNs() + ": channel=" + udp.channel());
            }
            idle.idle();
        }
    }

    /** Where peers send to this worker; advertise it through the control plane. */
    public TransportEndpoint endpoint() {
        return endpoint;
    }

    public TensorReceiverAgent receiver() {
        return receiver;
    }

    public int rank() {
        return rank;
    }

    /**
     * Sets rank and epoch after an assignment (existing senders keep their old rank and epoch); frames
     * carry no job id.
     */
    public void assign(int newRank, long newEpoch) {
        assign(newRank, JobIdentity.NONE, newEpoch);
    }

    /**
     * Sets rank and job identity after an assignment: senders opened from now on stamp {@code job}'s
     * id on every frame (existing senders keep their old rank and identity).
     */
    public void assign(int newRank, JobIdentity job) {
        assign(newRank, job, job.epoch());
    }

    private void assign(int newRank, JobIdentity job, long newEpoch) {
        this.rank = newRank;
        this.jobId = job.jobId();
        receiver.ownerRank(newRank);
        receiver.job(job.jobId(), newEpoch);
    }

    /** The job id this worker's senders stamp ({@link JobIdentity#NO_JOB} before a job assignment). */
    public int jobId() {
        return jobId;
    }

    /**
     * Hands every sender a {@link #connect} replaces to {@code owner} instead of closing it on the
     * connecting thread: for an owner whose duty cycle may still be sending on it (an older epoch's
     * link in the middle of a tensor), which then closes it on that cycle's thread. Closing it under
     * a sending thread would unmap a shared-memory ring that thread is writing. Set-up time.
     */
    public void handReplacedSendersTo(Consumer<TensorSender> owner) {
        this.replacedSenders = owner;
    }

    /**
     * Opens (or returns the open) sender to {@code peerRank} at {@code peer}, stamped with this
     * worker's rank and {@code epoch}. A sender of an older epoch is replaced: closed, or handed to
     * the owner set by {@link #handReplacedSendersTo}.
     */
    public TensorSender connect(int peerRank, TransportEndpoint peer, long epoch) {
        return connect(peerRank, peer, epoch, new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
            TimeUnit.MICROSECONDS.toNanos(100)));
    }

    /** As {@link #connect(int, TransportEndpoint, long)} with the idle strategy its blocking sends use. */
    public TensorSender connect(int peerRank, TransportEndpoint peer, long epoch, IdleStrategy idleStrategy) {
        int self = rank;
        if (self < 0) {
            throw new IllegalStateException("worker has no rank yet: call assign first (rank=" + self + ")");
        }
        TensorSender existing = senders.get(peerRank);
        if (existing != null) {
            if (existing.epoch() == epoch && existing.sourceRank() == self && existing.jobId() == jobId) {
                return existing;
            }
            senders.remove(peerRank);
            Consumer<TensorSender> owner = replacedSenders;
            if (owner != null) {
                owner.accept(existing);
            } else {
                existing.close();
            }
        }
        TransportSettings s = node.settings();
        int sessionId = SessionIds.of(self, epoch);
        boolean sameNode = peer.isSameNode(node.nodeId());
        String channel = sameNode
            ? TransportChannels.ipcPublication(s, sessionId)
            : TransportChannels.udpPublication(s, peer.host(), peer.port(), sessionId);
        LocalCopyRegistry registry = node.localCopyRegistry();
        int peerStream = peer.streamId();
        LocalCopyLink link = sameNode && s.localCopyMinBytes() < Long.MAX_VALUE && registry.hasReceiver(peerStream)
            ? registry.register(peerStream, sessionId) : null;
        ExclusivePublication pub = null;
        IpcRing ring = null;
        try {
            // the ring exists before the publication, so the receiver finds it with the first frame
            ring = sameNode && link == null && s.ipcRingMinBytes() < Long.MAX_VALUE
                ? IpcRing.create(node.aeronDir(), peerStream, sessionId, s.termLengthBytes() / 2,
                    IpcRing.livePublications(node.aeron().countersReader())) : null;
            pub = node.aeron().addExclusivePublication(channel, peerStream);
        } catch (RuntimeException e) {
            if (link != null) {
                registry.unregister(peerStream, sessionId, link);
            }
            CloseHelper.quietClose(ring);
            throw e;
        }
        TensorSender sender = new TensorSender(pub, self, peerRank, jobId, epoch, s, idleStrategy, link, ring);
        sender.countSentInto(node.traffic().sentTo(self, peerRank));
        if (link != null) {
            sender.onClose(() -> registry.unregister(peerStream, sessionId, link));
        }
        senders.put(peerRank, sender);
        return sender;
    }

    /** The open sender to {@code peerRank}, or {@code null}. */
    public TensorSender sender(int peerRank) {
        return senders.get(peerRank);
    }

    /**
     * Closes every sender and the receiver. If an {@code AgentRunner} runs the receiver, close the
     * runner first (it closes the receiver on its own thread); closing twice is harmless.
     */
    @Override
    public void close() {
        CloseHelper.closeAll(senders.values());
        senders.clear();
        node.localCopyRegistry().removeReceiver(streamId);
        receiver.close();
        node.workerClosed(this);
    }
}
