package io.troupe.actors.cluster;

import io.troupe.actors.engine.StageLink;
import io.troupe.models.parallel.Layout;
import io.troupe.runtime.tensor.Tensor;
import io.troupe.runtime.transport.FrameKind;
import io.troupe.runtime.transport.ReceiveSlot;
import io.troupe.runtime.transport.TensorKey;
import io.troupe.runtime.transport.TensorReceiverAgent;
import io.troupe.runtime.transport.TensorSender;
import io.troupe.runtime.transport.TransportEndpoint;
import io.troupe.runtime.transport.WorkerTransport;
import java.util.List;
import java.util.function.Consumer;

/**
 * A {@link StageLink} over the Aeron data plane: activations and gradients go straight from the
 * stage's memory into the peer's exclusive publication (tensor key = micro-batch, virtual stage);
 * arriving tensors are copied from their receive slot into the stage's buffer and the slot is
 * released at once. Peers are connected lazily, on first send.
 *
 * <p>Threading: sends from the worker's device executor; {@link #onTensorReady} and
 * {@link #onPeerLost} from the receiver agent's thread.
 */
final class AeronStageLink implements StageLink, TensorReceiverAgent.Listener {
    /** The stage-side callbacks: where received tensors go and who hears of a lost peer. */
    interface Target {
        Tensor receiveBuffer(boolean gradient, int mb, int v, int[] shape);

        void notifyReceived(boolean gradient, int mb, int v);

        void peerLost(int rank);

        /** A tensor this stage waits for can never complete ({@code why}). */
        void corrupted(String why);
    }

    private volatile WorkerTransport transport;
    private volatile Target target;
    private volatile Layout layout;
    private volatile List<String> endpoints;
    private volatile long epoch;
    private final Consumer<String> log;
    private final java.util.concurrent.ConcurrentHashMap<Integer, Integer> liveImages =
        new java.util.concurrent.ConcurrentHashMap<>();
    /** How long a lost peer may take to come back (a re-plan's new publication) before the stage fails. */
    static final long LOST_GRACE_MS = 2_000;
    private static final java.util.concurrent.ScheduledExecutorService GRACE =
        java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "troupe-peer-lost-grace");
            t.setDaemon(true);
            return t;
        });

    AeronStageLink(Consumer<String> log) {
        this.log = log;
    }

    void attach(WorkerTransport newTransport) {
        this.transport = newTransport;
    }

    private volatile java.util.function.IntSupplier dutyCycle = () -> 0;

    /** The receive duty cycle a waiting worker may run itself (the collectives agent's, guarded). */
    void dutyCycle(java.util.function.IntSupplier cycle) {
        this.dutyCycle = cycle;
    }

    @Override
    public boolean drivable() {
        return true;
    }

    @Override
    public int progress() {
        return dutyCycle.getAsInt();
    }

    /** Binds the link to an assignment. */
    void assign(Target newTarget, Layout newLayout, List<String> newEndpoints, long newEpoch) {
        this.target = newTarget;
        this.layout = newLayout;
        this.endpoints = List.copyOf(newEndpoints);
        this.epoch = newEpoch;
    }

    @Override
    public void sendActivation(int dp, int pp, long step, int mb, int v, Tensor activation) {
        send(FrameKind.ACTIVATION, layout.rank(dp, pp, myTensorParallelIndex()), step, mb, v, activation);
    }

    @Override
    public void sendGradient(int dp, int pp, long step, int mb, int v, Tensor gradient) {
        send(FrameKind.GRADIENT, layout.rank(dp, pp, myTensorParallelIndex()), step, mb, v, gradient);
    }

    /** Stage neighbours are the same tensor-parallel member of the next or previous stage. */
    private int myTensorParallelIndex() {
        WorkerTransport tr = transport;
        return tr == null || tr.rank() < 0 ? 0 : layout.tpIndex(tr.rank());
    }

    private void send(FrameKind kind, int peerRank, long step, int mb, int v, Tensor t) {
        WorkerTransport tr = transport;
        if (peerRank == tr.rank()) {
            Target tg = target;
            Tensor dst = tg.receiveBuffer(kind == FrameKind.GRADIENT, mb, v, t.shape());
            t.device().copy(t, dst);
            tg.notifyReceived(kind == FrameKind.GRADIENT, mb, v);
            return;
        }
        TensorSender sender = tr.sender(peerRank);
        if (sender == null || sender.epoch() != epoch) {
            sender = tr.connect(peerRank, TransportEndpoint.parse(endpoints.get(peerRank)), epoch);
        }
        sender.send(kind, step, TensorKey.of(mb, v, 0), t);
    }

    @Override
    public void onTensorReady(ReceiveSlot slot) {
        Target tg = target;
        try {
            if (tg == null) {
                log.accept("dropped a tensor that arrived before any assignment: " + slot);
                return;
            }
            boolean gradient = slot.kind() == FrameKind.GRADIENT;
            int mb = TensorKey.microbatch(slot.tensorKey());
            int v = TensorKey.virtualStage(slot.tensorKey());
            Tensor dst = tg.receiveBuffer(gradient, mb, v, slot.shape());
            slot.copyTo(dst);
            tg.notifyReceived(gradient, mb, v);
        } finally {
            slot.release();
        }
    }

    @Override
    public void onPeerConnected(int peerRank, String sourceIdentity) {
        liveImages.merge(peerRank, 1, Integer::sum);
    }

    /**
     * A peer's image went away. A re-plan closes the old epoch's publications while the new ones
     * come up, so a loss counts only if the rank is a pipeline neighbour of this stage and no image
     * of it is back after {@link #LOST_GRACE_MS} (a dead process is also reported by the cluster's
     * failure detector; data-parallel peers are the collectives' concern).
     */
    @Override
    public void onPeerLost(int peerRank) {
        liveImages.merge(peerRank, -1, Integer::sum);
        Target tg = target;
        if (tg == null || !isPipelineNeighbour(peerRank)) {
            return;
        }
        long assignedEpoch = epoch;
        GRACE.schedule(() -> {
            if (epoch == assignedEpoch && target == tg && liveImages.getOrDefault(peerRank, 0) <= 0) {
                tg.peerLost(peerRank);
            }
        }, LOST_GRACE_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    /** A corrupt activation or gradient chunk can never complete its tensor: the stage fails now, naming why. */
    @Override
    public void onTensorCorrupted(int sourceRank, io.troupe.runtime.transport.FrameKind kind, long tensorKey,
                                  io.troupe.runtime.transport.DropReason reason) {
        Target tg = target;
        if (tg != null && kind != io.troupe.runtime.transport.FrameKind.COLLECTIVE_CHUNK) {
            tg.corrupted("a " + (kind == null ? "frame" : kind.name().toLowerCase(java.util.Locale.ROOT) + " chunk")
                + " from rank " + sourceRank + " arrived corrupt (" + reason + ")");
        }
    }

    private boolean isPipelineNeighbour(int peerRank) {
        Layout l = layout;
        WorkerTransport tr = transport;
        if (l == null || tr == null || tr.rank() < 0 || peerRank >= l.worldSize()) {
            return false;
        }
        int me = tr.rank();
        return l.dpIndex(peerRank) == l.dpIndex(me) && l.tpIndex(peerRank) == l.tpIndex(me) && peerRank != me;
    }
}
