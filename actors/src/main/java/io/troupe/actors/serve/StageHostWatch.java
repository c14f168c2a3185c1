package io.troupe.actors.serve;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import org.apache.pekko.actor.ActorSelection;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.remote.artery.GracefulShutdownQuarantinedEvent;

/**
 * The pipeline server's control-plane actor for its stage hosts: it sends the wiring's messages ({@link Ask}) with
 * itself as the reply address, heartbeats every host named and, once a wiring is armed ({@link Watch}), reports a
 * stage whose host is silent for the loss timeout, or stuck inside one step, to the {@link PipelineStepRunner}
 * ({@link Losses}). When it stops, the hosts are told to unload.
 *
 * <p>The link is Pekko remoting (Artery over TCP): a message sent to a host that goes away is dropped without a
 * word, and a host started again on the same port gets the later messages but never those its predecessor took.
 * So while a wiring waits for a host's answer, the watch ends the wait ({@link Ask#answer} fails, and so does the
 * wiring's {@link Watch#gone}) as soon as that host is known gone: its actor system said it was shutting down (the
 * link quarantines it: {@link GracefulShutdownQuarantinedEvent}), it answered no heartbeat for the loss timeout,
 * or it answered a heartbeat sent after the message saying it holds no such stage (it was restarted, or the
 * message was lost with the connection). The wiring is then retried at once rather than after the connect timeout.
 *
 * <p>Every message to a host goes by an actor selection of its path, not by its actor reference. A host whose
 * actor system said it was shutting down is quarantined by the link, and the link drops every message sent by
 * reference to its address from then on, also to a host started again on the same port (a new incarnation), which
 * would never be reached. A selection's message passes the quarantine: it opens a handshake with whatever system
 * listens there now, and once the new one answers, the address is not quarantined any more.
 */
final class StageHostWatch {
    /** What the watch reports to the runner, on the actor's thread. */
    interface Losses {
        /** A stage of {@code epoch}'s wiring is lost; true when this marked the pipeline down. */
        boolean lost(String reason, long epoch);

        /** A stage of {@code epoch}'s wiring may be stuck inside one step ({@code reason} null: it is not). */
        void stuck(String reason, long epoch);

        /** The backstop at {@code nowNs}: the oldest step in flight of {@code epoch} may be overdue. */
        void checkStepsInFlight(int[] place, long epoch, long nowNs);
    }

    /**
     * Send {@code message} (built with the watch's reply address) to the host named at {@code slot} for stage
     * {@code stage} of {@code epoch}; {@code ack} (may be null) completes with the host's acknowledgement,
     * {@code answer} with its answer (an endpoint or an error). A newer ask for the same stage supersedes it.
     */
    record Ask(int slot, int stage, long epoch, Function<ActorRef<StageProtocol.Reply>, Object> message,
               CompletableFuture<StageProtocol.Reply> ack, CompletableFuture<StageProtocol.Reply> answer) {
    }

    /**
     * Heartbeat every stage host named for {@code epoch}, whose stages are on the slots {@code place}
     * gives; count a stage's silence as a loss only once {@code armed} (wired). While not armed, {@code gone}
     * (may be null) completes with the reason as soon as a host asked for this epoch is known gone.
     */
    record Watch(int[] place, long epoch, boolean armed, CompletableFuture<String> gone) {
        Watch(int[] place, long epoch, boolean armed) {
            this(place, epoch, armed, null);
        }
    }

    private record Beat() {
    }

    private StageHostWatch() {
    }

    /**
     * The control-plane actor: it sends the wiring's messages with itself as the reply address (a
     * host's answers come back to it) and heartbeats the hosts of the current epoch; a host whose
     * {@link StageProtocol.Pong}s stop for the loss timeout is lost.
     */
    static Behavior<Object> behavior(int stages, StageLinks links, StagePlacement placement, StuckStages stuckStages,
                                     List<ActorRef<Object>> hostRefs, String fingerprint, Losses losses) {
        long lossNs = links.lossTimeout().toNanos();
        long beatNs = Math.max(50_000_000L, Math.min(lossNs, links.stepTimeout().toNanos()) / 4);
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(new Beat(), Duration.ofNanos(beatNs));
            ctx.getSystem().eventStream().tell(new EventStream.Subscribe<>(GracefulShutdownQuarantinedEvent.class,
                ctx.getSelf().narrow()));
            List<ActorSelection> selections = new ArrayList<>();
            for (ActorRef<Object> h : hostRefs) {
                selections.add(Adapter.toClassic(ctx.getSystem()).actorSelection(h.path()));
            }
            return new State(stages, links, placement, stuckStages, hostRefs, selections, fingerprint, losses, lossNs,
                ctx.getSelf().narrow(), ctx.getSelf().narrow()).receive();
        }));
    }

    /** The watch's state; touched on the actor's thread only. */
    private static final class State {
        private final int stages;
        private final StageLinks links;
        private final StagePlacement placement;
        private final StuckStages stuckStages;
        private final List<ActorRef<Object>> hostRefs;
        /** Where each slot's messages go: its host's path, selected (so a quarantine does not drop them). */
        private final List<ActorSelection> selections;
        private final String fingerprint;
        private final Losses losses;
        private final long lossNs;
        private final ActorRef<StageProtocol.Reply> self;
        private final ActorRef<StageProtocol.Pong> pongs;
        private final Map<Integer, Ask> waiting = new HashMap<>();
        private final long[] lastPong;
        /** When each slot last answered a heartbeat, whatever the epoch. */
        private final long[] heard;
        /**
         * For each stage of the wiring under way: the number of the first ping sent after its last message
         * (-1: none sent, or the host answered with a refusal), and when that message was sent.
         */
        private final long[] askedBeforePing;
        private final long[] askedNs;
        private long nextPing;
        private int[] place;
        private long current = -1;
        private boolean armed;
        private CompletableFuture<String> gone;

        State(int stages, StageLinks links, StagePlacement placement, StuckStages stuckStages,
              List<ActorRef<Object>> hostRefs, List<ActorSelection> selections, String fingerprint, Losses losses,
              long lossNs, ActorRef<StageProtocol.Reply> self, ActorRef<StageProtocol.Pong> pongs) {
            this.stages = stages;
            this.links = links;
            this.placement = placement;
            this.stuckStages = stuckStages;
            this.hostRefs = hostRefs;
            this.selections = selections;
            this.fingerprint = fingerprint;
            this.losses = losses;
            this.lossNs = lossNs;
            this.self = self;
            this.pongs = pongs;
            this.lastPong = new long[stages];
            this.heard = new long[hostRefs.size()];
            this.askedBeforePing = new long[stages];
            this.askedNs = new long[stages];
            Arrays.fill(askedBeforePing, -1);
        }

        Behavior<Object> receive() {
            return Behaviors.receive(Object.class)
                .onMessage(Ask.class, this::onAsk)
                .onMessage(StageProtocol.Reply.class, this::onReply)
                .onMessage(Watch.class, this::onWatch)
                .onMessage(StageProtocol.Pong.class, this::onPong)
                .onMessage(GracefulShutdownQuarantinedEvent.class, this::onShutDown)
                .onMessage(Beat.class, b -> onBeat())
                .onSignal(PostStop.class, s -> {
                    for (int slot = 0; slot < hostRefs.size(); slot++) {
                        send(slot, new StageProtocol.Unload(current));
                    }
                    return Behaviors.same();
                })
                .build();
        }

        private Behavior<Object> onAsk(Ask a) {
            Ask old = waiting.put(a.stage(), a);
            if (old != null) {
                old.answer().completeExceptionally(new IllegalStateException("superseded by epoch " + a.epoch()));
            }
            if (!armed && a.epoch() == current) {
                askedBeforePing[a.stage()] = nextPing;
                askedNs[a.stage()] = System.nanoTime();
            }
            send(a.slot(), a.message().apply(self));
            return Behaviors.same();
        }

        private Behavior<Object> onReply(StageProtocol.Reply r) {
            Ask a = waiting.get(r.stage());
            if (a == null || a.epoch() != r.epoch()) {
                return Behaviors.same();         // an answer to an older wiring
            }
            if (a.ack() != null) {
                a.ack().complete(r);
            }
            if (r.endpoint() != null || r.error() != null) {
                waiting.remove(r.stage());
                a.answer().complete(r);
            }
            if (r.error() != null && r.epoch() == current) {
                askedBeforePing[r.stage()] = -1;      // it answered: a refusal, not a host gone
            }
            return Behaviors.same();
        }

        private Behavior<Object> onWatch(Watch w) {
            place = w.place();
            current = w.epoch();
            armed = w.armed();
            Arrays.fill(lastPong, System.nanoTime());
            Arrays.fill(askedBeforePing, -1);
            gone = w.gone();
            return Behaviors.same();
        }

        private Behavior<Object> onPong(StageProtocol.Pong p) {
            long now = System.nanoTime();
            if (p.slot() < 0 || p.slot() >= hostRefs.size()) {
                return Behaviors.same();
            }
            heard[p.slot()] = now;
            placement.answered(p.slot(), now, p.refusal(), p.stepNs());
            if (place == null || p.epoch() != current) {
                return Behaviors.same();
            }
            for (int g = 1; g < stages && !armed; g++) {
                // it answers a ping sent after the wiring's last message to it, so it took that message first
                // (a host takes a server's messages in order), unless it is not the host that took it
                if (place[g] == p.slot() && askedBeforePing[g] >= 0 && p.seq() >= askedBeforePing[g]
                    && p.stage() != g) {
                    hostGone(g, "holds no stage " + g + " of epoch " + current + " (it answers "
                        + (p.stage() < 0 ? "none" : "stage " + p.stage()) + "): it was started again, or lost the"
                        + " wiring's message with its connection");
                    return Behaviors.same();
                }
            }
            if (p.stage() >= 1 && p.stage() < stages && place[p.stage()] == p.slot()) {
                lastPong[p.stage()] = now;
                if (armed) {
                    losses.stuck(stuckStages.answered(p.stage(), p.slot(), current, p.stepNs(), now), current);
                }
            }
            return Behaviors.same();
        }

        /** Artery quarantined a host's actor system that said it was shutting down. */
        private Behavior<Object> onShutDown(GracefulShutdownQuarantinedEvent q) {
            for (int g = 1; g < stages && !armed && place != null; g++) {
                if (askedBeforePing[g] >= 0
                    && hostRefs.get(place[g]).path().address().equals(q.uniqueAddress().address())) {
                    hostGone(g, "shut down");
                    break;
                }
            }
            return Behaviors.same();
        }

        private Behavior<Object> onBeat() {
            long now = System.nanoTime();
            if (!armed && place != null) {
                for (int g = 1; g < stages; g++) {
                    if (askedBeforePing[g] >= 0 && now - Math.max(askedNs[g], heard[place[g]]) > lossNs) {
                        hostGone(g, "was silent for " + links.lossTimeout().toMillis() + " ms");
                        break;
                    }
                }
            }
            if (armed && place != null) {
                for (int stage = 1; stage < stages; stage++) {
                    if (now - lastPong[stage] > lossNs) {
                        placement.failed(place[stage], now);
                        String host = links.hosts().get(place[stage]);
                        losses.lost("the stage host of stage " + stage + " at " + host + " was silent for "
                            + links.lossTimeout().toMillis() + " ms (its process ended, stopped or lost its"
                            + " stage)", current);
                    }
                }
                losses.checkStepsInFlight(place, current, now);
            }
            for (int slot = 0; slot < hostRefs.size(); slot++) {  // spares too: a spare that answers can take a stage
                send(slot, new StageProtocol.Ping(current, slot, fingerprint, nextPing++, pongs));
            }
            return Behaviors.same();
        }

        private void send(int slot, Object message) {
            selections.get(slot).tell(message, org.apache.pekko.actor.ActorRef.noSender());
        }

        /**
         * The host of stage {@code g} in the wiring under way is gone ({@code what} says how): the wiring's waits
         * end now with that reason, and the host counts as failed (a steady spare may take the stage).
         */
        private void hostGone(int g, String what) {
            String why = "the stage host of stage " + g + " at " + links.hosts().get(place[g]) + " " + what
                + " while the wiring of epoch " + current + " waited for it";
            placement.failed(place[g], System.nanoTime());
            Arrays.fill(askedBeforePing, -1);
            IllegalStateException e = new IllegalStateException(why);
            for (Ask a : List.copyOf(waiting.values())) {
                if (a.epoch() == current) {
                    waiting.remove(a.stage());
                    if (a.ack() != null) {
                        a.ack().completeExceptionally(e);
                    }
                    a.answer().completeExceptionally(e);
                }
            }
            if (gone != null) {
                gone.complete(why);
            }
        }
    }
}
