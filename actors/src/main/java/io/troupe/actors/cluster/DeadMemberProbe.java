package io.troupe.actors.cluster;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.UniqueAddress;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Down;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * Downs a member whose process is gone, without waiting out the split-brain resolver's
 * {@code stable-after}. Runs on every member: while the failure detector holds a member unreachable,
 * it tries a TCP connection to that member's control port every {@link #RETRY}. A refused
 * connection means nothing listens there any more (the process was killed or exited: the kernel
 * closed its socket), so the member is downed at once and the coordinator recovers. A paused or
 * overloaded process still accepts connections (the kernel answers for it) and a cut network drops
 * or times them out: those are left to the resolver, so this adds no false downing under load.
 *
 * <p>{@code troupe.cluster.down-when-port-closed} turns it off (for networks whose firewalls answer
 * a blocked connection with a reset, which would read as a closed port).
 */
final class DeadMemberProbe {
    static final String ENABLED_KEY = "troupe.cluster.down-when-port-closed";
    /** How long a connection attempt may take before it counts as "not refused". */
    static final Duration CONNECT_TIMEOUT = Duration.ofMillis(500);
    /** Between probes of a member that stays unreachable. */
    static final Duration RETRY = Duration.ofSeconds(1);
    /**
     * What the probe logs after the member's address when it downs it; the fault tests read it to tell the probe's
     * downing from the resolver's.
     */
    static final String DOWNING = "is unreachable and its control port refuses connections (its process is gone): "
        + "downing it";

    sealed interface Command {
    }

    private record Unreachable(Member member) implements Command {
    }

    private record Gone(UniqueAddress member) implements Command {
    }

    private record Probe(Member member) implements Command {
    }

    private record Probed(Member member, boolean refused) implements Command {
    }

    private final ActorContext<Command> ctx;
    private final TimerScheduler<Command> timers;
    private final Set<UniqueAddress> unreachable = new HashSet<>();

    private DeadMemberProbe(ActorContext<Command> ctx, TimerScheduler<Command> timers) {
        this.ctx = ctx;
        this.timers = timers;
    }

    static Behavior<Command> create() {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            Cluster cluster = Cluster.get(ctx.getSystem());
            ActorRef<ClusterEvent.UnreachableMember> u = ctx.messageAdapter(ClusterEvent.UnreachableMember.class,
                e -> new Unreachable(e.member()));
            ActorRef<ClusterEvent.ReachableMember> r = ctx.messageAdapter(ClusterEvent.ReachableMember.class,
                e -> new Gone(e.member().uniqueAddress()));
            ActorRef<ClusterEvent.MemberDowned> d = ctx.messageAdapter(ClusterEvent.MemberDowned.class,
                e -> new Gone(e.member().uniqueAddress()));
            ActorRef<ClusterEvent.MemberRemoved> x = ctx.messageAdapter(ClusterEvent.MemberRemoved.class,
                e -> new Gone(e.member().uniqueAddress()));
            cluster.subscriptions().tell(Subscribe.create(u, ClusterEvent.UnreachableMember.class));
            cluster.subscriptions().tell(Subscribe.create(r, ClusterEvent.ReachableMember.class));
            cluster.subscriptions().tell(Subscribe.create(d, ClusterEvent.MemberDowned.class));
            cluster.subscriptions().tell(Subscribe.create(x, ClusterEvent.MemberRemoved.class));
            return new DeadMemberProbe(ctx, timers).behavior();
        }));
    }

    private Behavior<Command> behavior() {
        return Behaviors.receive(Command.class)
            .onMessage(Unreachable.class, this::onUnreachable)
            .onMessage(Gone.class, this::onGone)
            .onMessage(Probe.class, this::onProbe)
            .onMessage(Probed.class, this::onProbed)
            .build();
    }

    private Behavior<Command> onUnreachable(Unreachable m) {
        if (unreachable.add(m.member().uniqueAddress())) {
            ctx.getSelf().tell(new Probe(m.member()));
        }
        return Behaviors.same();
    }

    private Behavior<Command> onGone(Gone m) {
        unreachable.remove(m.member());
        timers.cancel(m.member());
        return Behaviors.same();
    }

    /** Connects on the blocking-I/O dispatcher, never on this actor's thread. */
    private Behavior<Command> onProbe(Probe m) {
        Member member = m.member();
        if (!unreachable.contains(member.uniqueAddress())) {
            return Behaviors.same();
        }
        String host = member.address().getHost().orElse("");
        int port = (Integer) member.address().getPort().orElse(0);
        CompletableFuture<Boolean> probe = CompletableFuture.supplyAsync(() -> refusesConnections(host, port,
            CONNECT_TIMEOUT), ctx.getSystem().dispatchers().lookup(DispatcherSelector.blocking()));
        ctx.pipeToSelf(probe, (refused, error) -> new Probed(member, refused != null && refused));
        return Behaviors.same();
    }

    private Behavior<Command> onProbed(Probed m) {
        UniqueAddress node = m.member().uniqueAddress();
        if (!unreachable.contains(node)) {
            return Behaviors.same();
        }
        if (m.refused()) {
            ctx.getLog().warn("member {} " + DOWNING, m.member().address());
            Cluster.get(ctx.getSystem()).manager().tell(new Down(m.member().address()));
            unreachable.remove(node);
        } else {
            timers.startSingleTimer(node, new Probe(m.member()), RETRY);
        }
        return Behaviors.same();
    }

    /**
     * Whether a TCP connection to {@code host:port} is refused: nothing listens there. A connection
     * accepted, timed out or failing otherwise (no route, unknown host) is not a refusal.
     */
    static boolean refusesConnections(String host, int port, Duration timeout) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), (int) timeout.toMillis());
            return false;
        } catch (ConnectException e) {
            return e.getMessage() != null && e.getMessage().toLowerCase(java.util.Locale.ROOT).contains("refused");
        } catch (IOException | IllegalArgumentException e) {
            return false;
        }
    }
}
