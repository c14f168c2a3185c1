package io.troupe.actors.serve;

import io.troupe.actors.cluster.CrossNodeMessage;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * What a server says to the stage hosts of its pipeline ({@link StageHost}, {@code troupe serve-stage})
 * over the control plane. Steps never travel here: they go over the data plane. The wiring of one epoch
 * is two rounds: every host {@link Load}s its stage and answers with its data-plane endpoint, then every
 * host is told where to send ({@link Connect}) and answers once connected. A restarted host, or a new
 * server, wires a new epoch the same way.
 */
public final class StageProtocol {
    private StageProtocol() {
    }

    /** The classes of this protocol, in registration order (append only; see the Kryo registrar). */
    public static final List<Class<?>> MESSAGES = List.of(Load.class, Connect.class, Reply.class, Unload.class,
        Ping.class, Pong.class);

    /**
     * Hold stage {@code stage} of {@code stages} (blocks {@code [firstBlock, endBlock)}) of the
     * checkpoint whose {@code fingerprint} is given, read from the host's own copy, with a KV cache of
     * {@code numBlocks} blocks of {@code blockTokens} positions, for wiring {@code epoch}.
     */
    public record Load(int stage, int stages, int firstBlock, int endBlock, String fingerprint, String quantization,
                       String kvPrecision, int blockTokens, int numBlocks, long epoch, ActorRef<Reply> replyTo)
        implements CrossNodeMessage {
    }

    /** Send stage {@code stage}'s output of {@code epoch} to {@code next} (a data-plane endpoint). */
    public record Connect(int stage, long epoch, String next, ActorRef<Reply> replyTo) implements CrossNodeMessage {
    }

    /**
     * A host's answer to {@link Load} (its endpoint, the bytes of weights it holds) or {@link Connect};
     * {@code error} names what went wrong, or is null. A {@link Load} is first acknowledged at once with
     * neither endpoint nor error (the host is there and loading), then answered.
     */
    public record Reply(int stage, long epoch, String endpoint, long weightBytes, String error)
        implements CrossNodeMessage {
    }

    /** The server stops: free the stage of {@code epoch} (a host also frees it when the server goes silent). */
    public record Unload(long epoch) implements CrossNodeMessage {
    }

    /**
     * The server's heartbeat of {@code epoch} to the host it lists at {@code slot} in its
     * {@code --stage-hosts} (a host holding a stage of that epoch, or a spare), answered with a
     * {@link Pong}. Each side counts the other lost after {@code troupe.serve.stage-link.loss-timeout} of
     * silence. Plain messages rather than Pekko's remote death watch: a watch that fires quarantines the
     * peer's incarnation, and a host that was only paused could then never be wired again without a
     * restart. {@code fingerprint} is the server's checkpoint ({@code InferenceWeights#fingerprint}), so a
     * host can say before any load whether it would refuse one. {@code seq} numbers the server's pings, so
     * the server knows which of its messages a host had taken when it answered: a host takes a server's
     * messages in the order they were sent.
     */
    public record Ping(long epoch, int slot, String fingerprint, long seq, ActorRef<Pong> replyTo)
        implements CrossNodeMessage {
    }

    /**
     * A host's answer to {@link Ping}: it holds, or is loading, stage {@code stage} of {@code epoch}, or -1 for
     * none; {@code slot} and {@code seq} are the ping's; {@code refusal} is why it would refuse a load from that
     * server now (its checkpoint differs, it serves another server), or null. {@code stepNs} is how long a stage
     * thread of the host has been inside the step it is in, the longest of them (a stage it closed whose thread is
     * still inside a step included), ns; 0 when none is inside a step. The server counts a host whose
     * stage stays inside one step for {@code troupe.serve.stage-link.step-timeout} as lost, and gives it no
     * stage while it says so.
     */
    public record Pong(int stage, long epoch, int slot, String refusal, long stepNs, long seq)
        implements CrossNodeMessage {
    }
}
