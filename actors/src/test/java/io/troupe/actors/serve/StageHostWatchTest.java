package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The stage-host watch ends a wiring's wait for a host as soon as the host is known gone, and not before: it
 * drives the watch in one actor system against a stand-in host whose every message the test sees and answers.
 */
@Timeout(60)
class StageHostWatchTest {
    /** Loss timeout 2 s (heartbeats every 500 ms), connect timeout 30 s. */
    private static final Config CONFIG = ConfigFactory.parseString(
            "troupe.serve.stage-link { loss-timeout = 2s, connect-timeout = 30s }")
        .withFallback(ConfigFactory.load()).resolve();

    private final ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "watch-test");
    /** What the stand-in host received, in order. */
    private final BlockingQueue<Object> received = new LinkedBlockingQueue<>();
    private final ActorRef<Object> host = system.systemActorOf(Behaviors.receive(Object.class)
        .onAnyMessage(m -> {
            received.add(m);
            return Behaviors.same();
        }).build(), "stand-in", Props.empty());
    private final StageLinks links = StageLinks.from(CONFIG, List.of("127.0.0.1:7355"));
    private final StagePlacement placement = new StagePlacement(links.hosts(), links.lossTimeout(),
        links.stepTimeout());
    private final ActorRef<Object> watch = system.systemActorOf(StageHostWatch.behavior(2, links, placement,
        new StuckStages(placement), List.of(host), "fp", new StageHostWatch.Losses() {
            @Override
            public boolean lost(String reason, long epoch) {
                return false;
            }

            @Override
            public void stuck(String reason, long epoch) {
            }

            @Override
            public void checkStepsInFlight(int[] place, long epoch, long nowNs) {
            }
        }), "watch", Props.empty());

    @AfterEach
    void stop() throws Exception {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    /** The next message of class {@code type} the stand-in received (others before it are dropped). */
    private <T> T next(Class<T> type) throws InterruptedException {
        while (true) {
            Object m = received.poll(10, TimeUnit.SECONDS);
            if (m == null) {
                throw new AssertionError("no " + type.getSimpleName() + " reached the host in 10 s");
            }
            if (type.isInstance(m)) {
                return type.cast(m);
            }
        }
    }

    private static void pong(StageProtocol.Ping p, int stage) {
        p.replyTo().tell(new StageProtocol.Pong(stage, p.epoch(), p.slot(), null, 0, p.seq()));
    }

    private CompletableFuture<StageProtocol.Reply> load(long epoch, CompletableFuture<StageProtocol.Reply> ack) {
        CompletableFuture<StageProtocol.Reply> answer = new CompletableFuture<>();
        watch.tell(new StageHostWatch.Ask(0, 1, epoch, self -> new StageProtocol.Load(1, 2, 1, 2, "fp", "none",
            "f32", 4, 8, epoch, self), ack, answer));
        return answer;
    }

    @Test
    void shouldEndTheWaitWhenTheHostAnswersAHeartbeatSentAfterTheLoadWithoutTheStageButNotForAnEarlierOne()
        throws Exception {
        CompletableFuture<String> gone = new CompletableFuture<>();
        watch.tell(new StageHostWatch.Watch(new int[] {0, 0}, 7, false, gone));
        StageProtocol.Ping before;
        do {
            before = next(StageProtocol.Ping.class);
        } while (before.epoch() != 7);             // a heartbeat of this wiring, sent before its load
        CompletableFuture<StageProtocol.Reply> ack = new CompletableFuture<>();
        CompletableFuture<StageProtocol.Reply> answer = load(7, ack);
        StageProtocol.Load l = next(StageProtocol.Load.class);
        l.replyTo().tell(new StageProtocol.Reply(1, 7, null, 0, null));
        ack.get(10, TimeUnit.SECONDS);
        pong(before, -1);                           // true when it was sent: no stage yet
        StageProtocol.Ping after = next(StageProtocol.Ping.class);
        pong(after, 1);                             // loading stage 1: it has the load
        StageProtocol.Ping third = next(StageProtocol.Ping.class);
        assertFalse(answer.isDone() || gone.isDone(), "still waiting for a host that has the load: " + answer);
        pong(third, -1);                            // a host without the load answers: the one that had it is gone
        ExecutionException e = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
            () -> answer.get(5, TimeUnit.SECONDS));
        assertTrue(e.getCause().getMessage().contains("at 127.0.0.1:7355 holds no stage 1 of epoch 7"),
            e.getCause().getMessage());
        assertEquals(e.getCause().getMessage(), gone.get(5, TimeUnit.SECONDS));
    }

    @Test
    void shouldEndTheWaitWhenTheHostIsSilentForTheLossTimeout() throws Exception {
        CompletableFuture<String> gone = new CompletableFuture<>();
        watch.tell(new StageHostWatch.Watch(new int[] {0, 0}, 3, false, gone));
        CompletableFuture<StageProtocol.Reply> ack = new CompletableFuture<>();
        long t0 = System.nanoTime();
        CompletableFuture<StageProtocol.Reply> answer = load(3, ack);
        StageProtocol.Load l = next(StageProtocol.Load.class);
        l.replyTo().tell(new StageProtocol.Reply(1, 3, null, 0, null));   // acknowledged, then silent
        String why = gone.get(10, TimeUnit.SECONDS);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(why.contains("was silent for 2000 ms"), why);
        assertTrue(ms >= 2000 && ms < 8000, "ended " + ms + " ms after the load: a loss timeout, not the connect"
            + " timeout");
        assertTrue(answer.isCompletedExceptionally(), answer.toString());
    }
}
