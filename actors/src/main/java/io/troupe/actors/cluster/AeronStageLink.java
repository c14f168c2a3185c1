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
    }

    private volatile WorkerTransport transport;
    private volatile Target target;
    private volatile Layout layout;
    private volatile List<String> endpoints;
    private volatile long epoch;
    private final Consumer<String> log;

    AeronStageLink(Consumer<String> log) {
        this.log = log;
    }

    void attach(WorkerTransport newTransport) {
        this.transport = newTransport;
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
        send(FrameKind.ACTIVATION, layout.rank(dp, pp, 0), step, mb, v, activation);
    }

    @Override
    public void sendGradient(int dp, int pp, long step, int mb, int v, Tensor gradient) {
        send(FrameKind.GRADIENT, layout.rank(dp, pp, 0), step, mb, v, gradient);
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
    public void onPeerLost(int peerRank) {
        Target tg = target;
        if (tg != null) {
            tg.peerLost(peerRank);
        }
    }
}
