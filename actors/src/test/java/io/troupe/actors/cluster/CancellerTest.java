package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A client's cancellation is sent again until its job ends: a gateway that loses the first ones (a seed restarting,
 * not up yet) still gets one, and the canceller stops once the job ended, or at its bound when it never does.
 */
@Timeout(30)
class CancellerTest {
    private final ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "canceller-test");

    @AfterEach
    void stop() throws Exception {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    /** The submitter's listener: stops at the job's end, as the client's does. */
    private ActorRef<JobEvent> listener() {
        return system.systemActorOf(Behaviors.<JobEvent>receive((ctx, e) -> e instanceof JobEvent.Failed
            ? Behaviors.stopped() : Behaviors.same()), "listener", Props.empty());
    }

    /** A gateway that loses the first {@code lost} cancellations and ends the job at the next. */
    private ActorRef<CoordinatorActor.Command> gateway(int lost, AtomicInteger received) {
        return system.systemActorOf(Behaviors.<CoordinatorActor.Command>receive((ctx, m) -> {
            if (m instanceof CoordinatorActor.CancelJob c && received.incrementAndGet() > lost) {
                c.submitter().tell(new JobEvent.Failed("cancelled: " + c.reason(), 3, 1));
            }
            return Behaviors.same();
        }), "gateway", Props.empty());
    }

    /** Completes when {@code canceller} stops. */
    private CompletableFuture<Void> started(Behavior<Object> canceller) {
        return watched(system, canceller);
    }

    /**
     * Starts {@code resender} (a client's canceller or submitter) in {@code system}; the future completes when it
     * stops.
     */
    static CompletableFuture<Void> watched(ActorSystem<?> system, Behavior<Object> resender) {
        CompletableFuture<Void> stopped = new CompletableFuture<>();
        system.systemActorOf(Behaviors.setup(ctx -> {
            ctx.watch(ctx.spawn(resender, "resender"));
            return Behaviors.receive(Object.class).onSignal(Terminated.class, t -> {
                stopped.complete(null);
                return Behaviors.stopped();
            }).build();
        }), "watcher", Props.empty());
        return stopped;
    }

    @Test
    void shouldSendAgainUntilTheJobEndsThenStop() throws Exception {
        AtomicInteger received = new AtomicInteger();
        ActorRef<JobEvent> listener = listener();
        CompletableFuture<Void> stopped = started(TroupeNode.canceller(listener, List.of(gateway(2, received)),
            Duration.ofMillis(100), Duration.ofSeconds(20)));
        stopped.get(10, TimeUnit.SECONDS);
        assertEquals(3, received.get(), "two lost, the third ended the job, and none was sent after it ended");
    }

    @Test
    void shouldGiveUpAtItsBoundWhenTheJobNeverEnds() throws Exception {
        AtomicInteger received = new AtomicInteger();
        CompletableFuture<Void> stopped = started(TroupeNode.canceller(listener(),
            List.of(gateway(Integer.MAX_VALUE, received)), Duration.ofMillis(100), Duration.ofMillis(800)));
        stopped.get(10, TimeUnit.SECONDS);
        int sent = received.get();
        assertTrue(sent >= 2, "sent again while the bound lasted: " + sent);
    }
}
