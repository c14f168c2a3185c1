package io.troupe.actors.serve;

import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The pipeline server's control-plane actor for its stage hosts: it sends the wiring's messages ({@link Ask}) with
 * itself as the reply address, heartbeats every host named and, once a wiring is armed ({@link Watch}), reports a
 * stage whose host is silent for the loss timeout, or stuck inside one step, to the {@link PipelineStepRunner}
 * ({@link Losses}). When it stops, the hosts are told to unload.
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
     * Send {@code message} (built with the watch's reply address) to {@code host} for stage {@code stage} of
     * {@code epoch}; {@code ack} (may be null) completes with the host's acknowledgement, {@code answer} with its
     * answer (an endpoint or an error). A newer ask for the same stage supersedes it.
     */
    record Ask(ActorRef<Object> host, int stage, long epoch, Function<ActorRef<StageProtocol.Reply>, Object> message,
               CompletableFuture<StageProtocol.Reply> ack, CompletableFuture<StageProtocol.Reply> answer) {
    }

    /**
     * Heartbeat every stage host named for {@code epoch}, whose stages are on the slots {@code place}
     * gives; count a stage's silence as a loss only once {@code armed} (wired).
     */
    record Watch(int[] place, long epoch, boolean armed) {
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
            Map<Integer, Ask> waiting = new HashMap<>();
            long[] lastPong = new long[stages];
            int[][] place = {null};
            long[] current = {-1};
            boolean[] armed = {false};
            ActorRef<StageProtocol.Reply> self = ctx.getSelf().narrow();
            ActorRef<StageProtocol.Pong> pongs = ctx.getSelf().narrow();
            return Behaviors.receive(Object.class)
                .onMessage(Ask.class, a -> {
                    Ask old = waiting.put(a.stage(), a);
                    if (old != null) {
                        old.answer().completeExceptionally(new IllegalStateException("superseded by epoch "
                            + a.epoch()));
                    }
                    a.host().tell(a.message().apply(self));
                    return Behaviors.same();
                })
                .onMessage(StageProtocol.Reply.class, r -> {
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
                    return Behaviors.same();
                })
                .onMessage(Watch.class, w -> {
                    place[0] = w.place();
                    current[0] = w.epoch();
                    armed[0] = w.armed();
                    Arrays.fill(lastPong, System.nanoTime());
                    return Behaviors.same();
                })
                .onMessage(StageProtocol.Pong.class, p -> {
                    long now = System.nanoTime();
                    if (p.slot() < 0 || p.slot() >= hostRefs.size()) {
                        return Behaviors.same();
                    }
                    placement.answered(p.slot(), now, p.refusal(), p.stepNs());
                    if (place[0] != null && p.epoch() == current[0] && p.stage() >= 1 && p.stage() < stages
                        && place[0][p.stage()] == p.slot()) {
                        lastPong[p.stage()] = now;
                        if (armed[0]) {
                            String why = stuckStages.answered(p.stage(), p.slot(), current[0], p.stepNs(), now);
                            losses.stuck(why, current[0]);
                        }
                    }
                    return Behaviors.same();
                })
                .onMessage(Beat.class, b -> {
                    long now = System.nanoTime();
                    if (armed[0] && place[0] != null) {
                        for (int stage = 1; stage < stages; stage++) {
                            if (now - lastPong[stage] > lossNs) {
                                placement.failed(place[0][stage], now);
                                String host = links.hosts().get(place[0][stage]);
                                losses.lost("the stage host of stage " + stage + " at " + host + " was silent for "
                                    + links.lossTimeout().toMillis() + " ms (its process ended, stopped or lost its"
                                    + " stage)", current[0]);
                            }
                        }
                        losses.checkStepsInFlight(place[0], current[0], now);
                    }
                    List<ActorRef<Object>> refs = hostRefs;   // spares too: a spare that answers can take a stage
                    for (int slot = 0; slot < refs.size(); slot++) {
                        refs.get(slot).tell(new StageProtocol.Ping(current[0], slot, fingerprint, pongs));
                    }
                    return Behaviors.same();
                })
                .onSignal(PostStop.class, s -> {
                    for (ActorRef<Object> h : hostRefs) {
                        h.tell(new StageProtocol.Unload(current[0]));
                    }
                    return Behaviors.same();
                })
                .build();
        }));
    }
}
