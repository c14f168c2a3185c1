package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.send;
import static io.troupe.actors.serve.TwoPrompts.bodies;
import static io.troupe.actors.serve.TwoPrompts.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A stage host that goes away while the server's wiring waits for its answer, and a new host started on its port:
 * the wiring ends as soon as the host is known gone and the next one wires the new host, well within the connect
 * timeout. The host that goes away is a stand-in on the real control link (the stage host's actor system name,
 * actor path, remoting and serializer): it takes the load, acknowledges it and answers every heartbeat as a host
 * loading (or holding) the stage does, but never answers the load (or the connect), so the server is certainly
 * waiting for it when it is closed.
 */
@Timeout(150)
class StageHostGoneWhileWiringTest {
    /** Loss timeout 5 s, wirings retried every 200 ms, connect timeout 30 s: the wait this must not sit out. */
    private static final Config CONFIG = ConfigFactory.parseString(
            "troupe.serve.stage-link { loss-timeout = 5s, connect-timeout = 30s, retry-interval = 200ms }")
        .withFallback(ConfigFactory.load()).resolve();

    /** Which of the wiring's messages the stand-in host never answers. */
    enum Unanswered { LOAD, CONNECT }

    @TempDir
    Path tmp;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() {
        for (int i = open.size() - 1; i >= 0; i--) {
            try {
                open.get(i).close();
            } catch (Exception e) {
                System.out.println("closing: " + e);
            }
        }
    }

    /**
     * The stand-in closes once it has answered two heartbeats sent after the message it leaves unanswered (the
     * server saw it alive and holding the stage, and did not give up on it: no second load came), and a real host
     * starts on its TCP port. Without ending the wait, the first wiring sits out the 30 s connect timeout, and so
     * does the server's start. Bound: 15 s from the close to a started server, half the connect timeout; what it
     * takes is the close (the stand-in's actor system terminates), the new host's start (its actor system and media
     * driver), at most a loss timeout (5 s) to know the old host gone (in practice the shutdown notice of the old
     * host's actor system, or the new host's first heartbeat answer, 1.25 s apart), a retry interval, the load of a
     * two-block checkpoint and the probe, on a shared machine.
     */
    @ParameterizedTest
    @EnumSource(Unanswered.class)
    void shouldWireTheHostStartedOnThePortOfOneThatWentAwayWhileTheWiringWaited(Unanswered unanswered)
        throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = TwoPrompts.offline(ckpt);
        StandIn standIn = new StandIn(unanswered);
        open.add(standIn);
        int tcp = standIn.port();
        int front = StagePartition.balanced(ServeTestSupport.CFG, 2).endBlock(0);
        CompletableFuture<InferenceServer> starting = CompletableFuture.supplyAsync(() -> InferenceServer.start(
            InferenceWeights.load(ckpt, Quantization.NONE, 0, front), ServeTestSupport.settings(), 2,
            StageLinks.from(CONFIG, List.of("127.0.0.1:" + tcp))));
        open.add(() -> starting.thenAccept(InferenceServer::close));
        assertTrue(standIn.unanswered.await(60, TimeUnit.SECONDS), "the " + unanswered + " reached the stand-in");
        assertTrue(standIn.answeredSince.await(30, TimeUnit.SECONDS), "it answered heartbeats since");
        assertEquals(1, standIn.loads.get(), "the server still waits for it: no second wiring");

        long t0 = System.nanoTime();
        standIn.close();
        StageHostServer host = StageHostServer.start(ckpt, "127.0.0.1", tcp, CONFIG);
        open.add(host);
        InferenceServer server = starting.get(60, TimeUnit.SECONDS);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms < 15_000, "wired to the new host " + ms + " ms after the old one closed (connect timeout"
            + " 30000 ms)");
        assertEquals(expected, texts(send(server.port(), bodies())), "the new host serves: the offline tokens");
    }

    /**
     * A stage host's control link without a stage: the Pekko system of a stage host at 127.0.0.1 with an actor at
     * {@code /user/stage-host} that acknowledges a load and answers heartbeats as a host loading it does, and never
     * answers {@link #unanswered}'s message. Heartbeats that came before the first load are answered only after it
     * is acknowledged (as a slow link may deliver them), saying no stage, as they were true when sent.
     */
    private static final class StandIn implements AutoCloseable {
        final CountDownLatch unanswered = new CountDownLatch(1);
        final CountDownLatch answeredSince = new CountDownLatch(2);
        final AtomicInteger loads = new AtomicInteger();
        private final ActorSystem<Object> system;

        StandIn(Unanswered mode) {
            StageLinks links = StageLinks.from(CONFIG, List.of()).at("127.0.0.1", 0);
            system = ActorSystem.create(Behaviors.setup(ctx -> {
                ctx.spawn(host(mode), StageHost.NAME);
                return Behaviors.empty();
            }), PipelineStepRunner.STAGE_HOST_SYSTEM, links.pekko(CONFIG));
        }

        private org.apache.pekko.actor.typed.Behavior<Object> host(Unanswered mode) {
            long[] epoch = {-1};
            int[] stage = {-1};
            List<StageProtocol.Ping> early = new ArrayList<>();
            return Behaviors.receive(Object.class)
                .onMessage(StageProtocol.Load.class, m -> {
                    loads.incrementAndGet();
                    epoch[0] = m.epoch();
                    stage[0] = m.stage();
                    m.replyTo().tell(new StageProtocol.Reply(m.stage(), m.epoch(), null, 0, null));
                    for (StageProtocol.Ping p : early) {
                        p.replyTo().tell(new StageProtocol.Pong(-1, p.epoch(), p.slot(), null, 0, p.seq()));
                    }
                    early.clear();
                    if (mode == Unanswered.LOAD) {
                        unanswered.countDown();
                    } else {
                        m.replyTo().tell(new StageProtocol.Reply(m.stage(), m.epoch(), "127.0.0.1:1", 1, null));
                    }
                    return Behaviors.same();
                })
                .onMessage(StageProtocol.Connect.class, m -> {
                    unanswered.countDown();
                    return Behaviors.same();
                })
                .onMessage(StageProtocol.Ping.class, p -> {
                    if (epoch[0] < 0) {
                        early.add(p);
                        return Behaviors.same();
                    }
                    p.replyTo().tell(new StageProtocol.Pong(p.epoch() == epoch[0] ? stage[0] : -1, p.epoch(),
                        p.slot(), null, 0, p.seq()));
                    if (unanswered.getCount() == 0) {
                        answeredSince.countDown();
                    }
                    return Behaviors.same();
                })
                .onAnyMessage(m -> Behaviors.same())
                .build();
        }

        int port() {
            return system.address().getPort().get();
        }

        @Override
        public void close() throws Exception {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(20, TimeUnit.SECONDS);
        }
    }
}
