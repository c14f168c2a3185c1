package io.troupe.actors.cluster;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
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
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.UniqueAddress;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Down;
import org.apache.pekko.cluster.typed.Subscribe;

/**
 * Downs a member whose process is gone, without waiting out the failure detector's heartbeat pause or the
 * split-brain resolver's {@code stable-after}. Runs on every member, and tries TCP connections to members' control
 * ports: to each member the failure detector holds unreachable every {@link #RETRY}, and, every
 * {@code troupe.cluster.port-probe-interval}, to the {@link #RING_SUCCESSORS} Up members that follow this one in
 * address order (so each member is probed by that many others, whatever the cluster's size). A refused connection
 * means nothing listens there any more (the process was killed or exited: the kernel closed its socket), so the
 * member is downed at once and the coordinator recovers: a killed process is found within about one probe interval,
 * not after the heartbeat pause, which can then be raised for loaded machines or long garbage-collection pauses
 * without slowing that. A paused or overloaded process still accepts connections (the kernel answers for it) and a
 * cut network drops or times them out: those are left to the detector and the resolver, so this adds no false
 * downing under load. A member leaving the cluster is not probed by the ring (its port closes as it exits).
 *
 * <p>{@code troupe.cluster.down-when-port-closed} turns it off (for networks whose firewalls answer
 * a blocked connection with a reset, which would read as a closed port); {@code port-probe-interval = off} keeps
 * only the probes of unreachable members.
 */
final class DeadMemberProbe {
    static final String ENABLED_KEY = "troupe.cluster.down-when-port-closed";
    static final String INTERVAL_KEY = "troupe.cluster.port-probe-interval";
    /** How many members each member probes every interval: the Up members after it in address order. */
    static final int RING_SUCCESSORS = 2;
    /** How long a connection attempt may take before it counts as "not refused". */
    static final Duration CONNECT_TIMEOUT = Duration.ofMillis(500);
    /** Between probes of a member that stays unreachable. */
    static final Duration RETRY = Duration.ofSeconds(1);
    /**
     * What the probe logs after the member's address when it downs it; the fault tests read it to tell the probe's
     * downing from the resolver's.
     */
    static final String DOWNING = "refuses connections on its control port (its process is gone): downing it";
    /** What follows {@link #DOWNING} when the ring's probe found the member gone before the failure detector did. */
    static final String BEFORE_DETECTOR = " (found by the ring's probe before the failure detector)";

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

    private record Tick() implements Command {
    }

    private final ActorContext<Command> ctx;
    private final TimerScheduler<Command> timers;
    private final Set<UniqueAddress> unreachable = new HashSet<>();
    /** Ring members probed and not answered yet: one probe in flight per member. */
    private final Set<UniqueAddress> ringInFlight = new HashSet<>();

    private DeadMemberProbe(ActorContext<Command> ctx, TimerScheduler<Command> timers) {
        this.ctx = ctx;
        this.timers = timers;
    }

    /**
     * The interval of the ring's probes from {@code troupe.cluster.port-probe-interval}: {@link Duration#ZERO} when
     * {@code off}; a value that is neither a positive duration nor {@code off} is refused, naming it.
     */
    static Duration interval(com.typesafe.config.Config config) {
        return config.hasPath(INTERVAL_KEY) ? RecoverySettings.positiveOrOff(config.getConfig("troupe.cluster"),
            "troupe.cluster.", "port-probe-interval", "500ms") : Duration.ofMillis(500);
    }

    /**
     * The members {@code self} probes every interval: the {@code count} Up (or weakly up) members after it in address
     * order, wrapping around, never itself; fewer in a smaller cluster.
     */
    static List<Member> ringSuccessors(Iterable<Member> members, UniqueAddress self, int count) {
        List<Member> ring = new ArrayList<>();
        int at = -1;
        List<Member> sorted = new ArrayList<>();
        members.forEach(sorted::add);
        sorted.sort(Member.ordering());
        for (Member m : sorted) {
            if (m.uniqueAddress().equals(self)) {
                at = ring.size();
                ring.add(m);
            } else if (isUp(m)) {
                ring.add(m);
            }
        }
        return successors(ring, at, count);
    }

    /** The {@code count} entries after index {@code self} of {@code ring}, wrapping around, never {@code self}. */
    static <T> List<T> successors(List<T> ring, int self, int count) {
        List<T> out = new ArrayList<>();
        for (int k = 1; self >= 0 && k < ring.size() && out.size() < count; k++) {
            out.add(ring.get((self + k) % ring.size()));
        }
        return out;
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
            Duration every = interval(ctx.getSystem().settings().config());
            if (!every.isZero()) {
                timers.startTimerWithFixedDelay("ring", new Tick(), every);
            }
            return new DeadMemberProbe(ctx, timers).behavior();
        }));
    }

    private Behavior<Command> behavior() {
        return Behaviors.receive(Command.class)
            .onMessage(Unreachable.class, this::onUnreachable)
            .onMessage(Gone.class, this::onGone)
            .onMessage(Probe.class, this::onProbe)
            .onMessage(Probed.class, this::onProbed)
            .onMessage(Tick.class, this::onTick)
            .build();
    }

    /** Probes this member's ring successors that have no probe in flight (and are not probed as unreachable). */
    private Behavior<Command> onTick(Tick t) {
        Cluster cluster = Cluster.get(ctx.getSystem());
        for (Member m : ringSuccessors(cluster.state().getMembers(), cluster.selfMember().uniqueAddress(),
            RING_SUCCESSORS)) {
            if (!unreachable.contains(m.uniqueAddress()) && ringInFlight.add(m.uniqueAddress())) {
                connect(m);
            }
        }
        return Behaviors.same();
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

    private Behavior<Command> onProbe(Probe m) {
        if (unreachable.contains(m.member().uniqueAddress())) {
            connect(m.member());
        }
        return Behaviors.same();
    }

    /** Connects on the blocking-I/O dispatcher, never on this actor's thread. */
    private void connect(Member member) {
        String host = member.address().getHost().orElse("");
        int port = (Integer) member.address().getPort().orElse(0);
        CompletableFuture<Boolean> probe = CompletableFuture.supplyAsync(() -> refusesConnections(host, port,
            CONNECT_TIMEOUT), ctx.getSystem().dispatchers().lookup(DispatcherSelector.blocking()));
        ctx.pipeToSelf(probe, (refused, error) -> new Probed(member, refused != null && refused));
    }

    private Behavior<Command> onProbed(Probed m) {
        UniqueAddress node = m.member().uniqueAddress();
        boolean ring = ringInFlight.remove(node);
        if (!unreachable.contains(node)) {
            if (ring && m.refused() && isUp(node)) {
                ctx.getLog().warn("member {} " + DOWNING + BEFORE_DETECTOR, m.member().address());
                Cluster.get(ctx.getSystem()).manager().tell(new Down(m.member().address()));
            }
            return Behaviors.same();
        }
        if (m.refused()) {
            ctx.getLog().warn("member {} " + DOWNING + " (unreachable)", m.member().address());
            Cluster.get(ctx.getSystem()).manager().tell(new Down(m.member().address()));
            unreachable.remove(node);
        } else {
            timers.startSingleTimer(node, new Probe(m.member()), RETRY);
        }
        return Behaviors.same();
    }

    /** Whether {@code node} is still an Up (or weakly up) member: not leaving, exiting, downed or gone. */
    private boolean isUp(UniqueAddress node) {
        for (Member m : Cluster.get(ctx.getSystem()).state().getMembers()) {
            if (m.uniqueAddress().equals(node)) {
                return isUp(m);
            }
        }
        return false;
    }

    private static boolean isUp(Member m) {
        return m.status() == MemberStatus.up() || m.status() == MemberStatus.weaklyUp();
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
