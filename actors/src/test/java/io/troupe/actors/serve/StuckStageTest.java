package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.awaitHealth;
import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.send;
import static io.troupe.actors.serve.TwoPrompts.bodies;
import static io.troupe.actors.serve.TwoPrompts.offline;
import static io.troupe.actors.serve.TwoPrompts.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import io.troupe.models.parallel.StagePartition;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A stage host whose stage thread is stuck inside one step while its actor system still answers every
 * heartbeat: a 1x2 server on 127.0.0.1 with stage 1 on an in-process stage host whose step is held on a
 * latch, uninterruptibly, as a hung native call would be. Once the step timeout passes the pipeline is down
 * for that host, and the requests in flight are answered in full with the tokens they have offline: by a
 * spare that takes the stage while the step is still held, or, with no spare, by the host itself once the
 * step is let go. And the backstop ({@link StuckStages#overdue}): a step that stage 1 never answers while its
 * host, out of every step, says it is inside none fails the pipeline once the step timeout and a loss timeout
 * have passed, and the request waiting for it is answered with its offline tokens on the pipeline wired again;
 * with a later step answered meanwhile, the unanswered one fails at once, its logits never taken for another's.
 */
@Timeout(180)
class StuckStageTest {
    private static final String STEP_TIMEOUT = "1500ms";
    /** Short prompts: the test model's context is 24 positions. */
    /**
     * How long after its step was sent a rule may find a stuck stage, ms. The reason says which rule found it and
     * that it waited out its timeouts; how long after them the heartbeats or checks that found it ran depends on
     * the machine's load, so this bound (20 step timeouts, far under the 150 s a step is held) is one only a hang
     * exceeds.
     */
    private static final long FOUND_WITHIN_MS = 30_000;

    @TempDir
    Path tmp;

    private final StepHold hold = new StepHold();
    private final List<AutoCloseable> open = new ArrayList<>();

    /**
     * Holds the first step a stage runs once {@link #arm armed}, until {@link #release}; interrupts do not end
     * the hold (closing a stage interrupts its thread), as they would not end a hung native call.
     */
    private static final class StepHold implements PipelineStage.StepEntry {
        private final AtomicBoolean armed = new AtomicBoolean();
        private final CountDownLatch held = new CountDownLatch(1);
        private final CountDownLatch released = new CountDownLatch(1);

        void arm() {
            armed.set(true);
        }

        void release() {
            released.countDown();
        }

        /** Waits until a step is held. */
        void awaitHeld() throws InterruptedException {
            assertTrue(held.await(60, TimeUnit.SECONDS), "no step was held");
        }

        @Override
        public void onStep(int stage, long step) {
            if (!armed.compareAndSet(true, false)) {
                return;
            }
            held.countDown();
            boolean interrupted = false;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(150);
            while (released.getCount() > 0 && System.nanoTime() - deadline < 0) {
                try {
                    released.await(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Once {@link #armAt armed}, the n-th step the stage runs from then is lost: it leaves the step the way a
     * stage being closed does (interrupted, with nothing sent on), so that step is never answered while the
     * stage's thread is out of it and the host's heartbeat answers say it is inside no step. The stage's
     * executor clears the interrupt before the next step. With {@link #failing()}, the n-th step throws an
     * {@link Error} instead (as an {@link OutOfMemoryError} in the forward would).
     */
    private static final class StepLoss implements PipelineStage.StepEntry {
        private final AtomicInteger countdown = new AtomicInteger();
        private final CompletableFuture<Long> lost = new CompletableFuture<>();
        private volatile boolean error;

        void armAt(int n) {
            countdown.set(n);
        }

        StepLoss failing() {
            error = true;
            return this;
        }

        /** Waits until a step is lost; its id. */
        long awaitLost() throws Exception {
            return lost.get(60, TimeUnit.SECONDS);
        }

        @Override
        public void onStep(int stage, long step) {
            if (countdown.get() > 0 && countdown.decrementAndGet() == 0) {
                lost.complete(step);
                if (error) {
                    throw new OutOfMemoryError("the test fails stage " + stage + "'s step " + step);
                }
                Thread.currentThread().interrupt();
                throw new IllegalStateException("the test loses stage " + stage + "'s step " + step);
            }
        }
    }

    @AfterEach
    void closeAll() {
        hold.release();
        for (int i = open.size() - 1; i >= 0; i--) {
            try {
                open.get(i).close();
            } catch (Exception e) {
                System.out.println("closing: " + e);
            }
        }
    }

    /** Loss timeout 2 s, wirings retried every 200 ms, and the step timeout of this test. */
    private static Config config() {
        return ConfigFactory.parseString("troupe.serve.stage-link { loss-timeout = 2s, connect-timeout = 30s,"
            + " retry-interval = 200ms, step-timeout = " + STEP_TIMEOUT + " }").withFallback(ConfigFactory.load());
    }

    private StageHostServer host(Path ckpt, PipelineStage.StepEntry entry) {
        StageHostServer h = StageHostServer.start(ckpt, "127.0.0.1", 0, config(), entry);
        open.add(h);
        return h;
    }

    private InferenceServer server(Path ckpt, StageHostServer... hosts) {
        return server(ckpt, ServeTestSupport.settings(), hosts);
    }

    private InferenceServer server(Path ckpt, ServeSettings settings, StageHostServer... hosts) {
        List<String> named = new ArrayList<>();
        for (StageHostServer h : hosts) {
            named.add(h.hostPort());
        }
        int front = StagePartition.balanced(ServeTestSupport.CFG, 2).endBlock(0);
        InferenceServer s = InferenceServer.start(InferenceWeights.load(ckpt, Quantization.NONE, 0, front),
            settings, 2, StageLinks.from(config(), named));
        open.add(s);
        return s;
    }

    /** A stage host as {@code /health} lists it, up to its refusal. */
    private static String hostJson(StageHostServer h, String stage) {
        return "{\"host\":\"" + h.hostPort() + "\",\"stage\":" + stage + ",\"answering\":true,\"refuses\":";
    }

    /** The reason the pipeline went down names the host, its stage, the epoch, how long, and the timeout. */
    private static void assertLostForBeingStuck(StageHostServer h, String reason) {
        String prefix = "the stage host of stage 1 at " + h.hostPort() + " is stuck (epoch 1): its stage thread has"
            + " been inside one step for ";
        assertTrue(reason.startsWith(prefix) && reason.endsWith(" ms, past the step timeout of 1500 ms"), reason);
        long ms = Long.parseLong(reason.substring(prefix.length(), reason.indexOf(" ms, past")));
        assertTrue(ms > 1500 && ms < FOUND_WITHIN_MS, "past the step timeout, found by the heartbeats: " + reason);
    }

    @Test
    void shouldMoveAStuckStageToASpareAndAnswerTheRequestsInFlightWithTheirOfflineTokens() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = offline(ckpt);
        StageHostServer stuck = host(ckpt, hold);
        StageHostServer spare = host(ckpt, PipelineStage.StepEntry.NONE);
        InferenceServer server = server(ckpt, stuck, spare);
        int port = server.port();
        assertEquals(expected, texts(send(port, bodies())), "before: the tokens they have offline");

        hold.arm();
        List<CompletableFuture<HttpResponse<String>>> sent = send(port, bodies());
        hold.awaitHeld();
        List<String> answered = texts(sent);
        assertEquals(expected, answered, "answered by the spare while the step is still held, with the same tokens");

        String health = awaitHealth(port, 200, hostJson(spare, "1") + "null}", hostJson(stuck, "null") + "\"it is"
            + " stuck");
        assertLostForBeingStuck(stuck, field(health, "last_loss"));
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_stuck_stages_total"), metrics);
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_stage_moves_total"), metrics);
        assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= 1, metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);

        // the step let go, the host is out of it: it would take a stage again (a spare now)
        hold.release();
        awaitHealth(port, 200, hostJson(stuck, "null") + "null}");
        assertEquals(expected, texts(send(port, bodies())), "after: the same tokens");
    }

    @Test
    void shouldWaitForAStuckStageWithNoSpareAndAnswerTheRequestsOnceTheStepIsLetGo() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = offline(ckpt);
        StageHostServer stuck = host(ckpt, hold);
        InferenceServer server = server(ckpt, stuck);
        int port = server.port();
        assertEquals(expected, texts(send(port, bodies())), "before: the tokens they have offline");

        hold.arm();
        List<CompletableFuture<HttpResponse<String>>> sent = send(port, bodies());
        hold.awaitHeld();
        String health = awaitHealth(port, 503, "\"status\":\"degraded\"", "\"reason\":\"the stage host of stage 1 at "
            + stuck.hostPort() + " is stuck", hostJson(stuck, "1") + "\"it is stuck");
        assertLostForBeingStuck(stuck, field(health, "last_loss"));
        assertFalse(sent.stream().anyMatch(CompletableFuture::isDone), "the requests wait for the stage");

        hold.release();
        assertEquals(expected, texts(sent), "answered once the step was let go, with the tokens they have offline");
        awaitHealth(port, 200, hostJson(stuck, "1") + "null}");
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_stuck_stages_total"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_pipeline_stage_moves_total"), metrics);
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_up"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
    }

    @Test
    void shouldFailThePipelineWhenAStepGoesUnansweredWhileItsHostSaysItIsInsideNone() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = offline(ckpt);
        StepLoss loss = new StepLoss();
        StageHostServer host = host(ckpt, loss);
        InferenceServer server = server(ckpt, host);
        int port = server.port();
        assertEquals(expected, texts(send(port, bodies())), "before: the tokens they have offline");

        // one request: one step in flight at a time, so no later answer arrives while the lost one is missing
        loss.armAt(4);                                    // its prefill and two decodes answered, the third lost
        List<CompletableFuture<HttpResponse<String>>> sent = send(port, bodies().subList(0, 1));
        long step = loss.awaitLost();
        String health = awaitHealth(port, 200, "\"last_loss\":\"step " + step + " of epoch 1 ");
        String reason = field(health, "last_loss");
        String prefix = "step " + step + " of epoch 1 was sent down the pipeline ";
        String suffix = " ms ago and is unanswered (step timeout 1500 ms, loss timeout 2000 ms); no stage host says it"
            + " is inside a step (a frame or an answer went missing)";
        assertTrue(reason.startsWith(prefix) && reason.endsWith(suffix), reason);
        long waitedMs = Long.parseLong(reason.substring(prefix.length(), reason.length() - suffix.length()));
        assertTrue(waitedMs > 1500 + 2000 && waitedMs < FOUND_WITHIN_MS, "failed after the step and loss timeouts: "
            + reason);

        assertEquals(expected.subList(0, 1), texts(sent), "answered on the pipeline wired again, with the tokens it"
            + " has offline");
        // no host said it was inside a step: none is marked stuck, and stage 1 stays where it was
        awaitHealth(port, 200, "\"status\":\"ok\"", hostJson(host, "1") + "null}");
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_stuck_stages_total"), metrics);
        assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= 1, metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_pipeline_stage_moves_total"), metrics);
        assertEquals(1.0, metric(metrics, "troupe_serve_pipeline_up"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
        assertEquals(expected, texts(send(port, bodies())), "after: the same tokens");
    }

    /**
     * An {@link Error} out of a stage's step (out of memory in the forward) is passed on as that step's failure,
     * like an exception: the step is recomputed at once, neither the backstop nor a later step's answer needed.
     */
    @Test
    void shouldPassAnErrorInAStagesStepOnAsTheStepsFailure() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = offline(ckpt);
        StepLoss loss = new StepLoss().failing();
        StageHostServer host = host(ckpt, loss);
        InferenceServer server = server(ckpt, host);
        int port = server.port();
        assertEquals(expected, texts(send(port, bodies())), "before: the tokens they have offline");

        loss.armAt(4);                                    // one request: one step in flight at a time
        List<CompletableFuture<HttpResponse<String>>> sent = send(port, bodies().subList(0, 1));
        loss.awaitLost();
        assertEquals(expected.subList(0, 1), texts(sent), "recomputed, with the tokens it has offline");
        String health = ServeTestSupport.get(port, "/health").body();
        assertFalse(health.contains("last_loss"), "failed as a step, not found by the backstop: " + health);
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertEquals(0.0, metric(metrics, "troupe_serve_pipeline_stuck_stages_total"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_pipeline_stage_moves_total"), metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
        assertEquals(expected, texts(send(port, bodies())), "after: the same tokens");
    }

    @Test
    void shouldFailAStepWhoseAnswerWentMissingAsSoonAsAStepSentAfterItIsAnswered() throws Exception {
        Path ckpt = ServeTestSupport.twoStageCheckpoint(tmp.resolve("ckpt"));
        List<String> expected = offline(ckpt);
        StepLoss loss = new StepLoss();
        StageHostServer host = host(ckpt, (stage, step) -> {
            hold.onStep(stage, step);
            loss.onStep(stage, step);
        });
        // one sequence a step: each request has a step of its own, two in flight at once
        InferenceServer server = server(ckpt, ServeTestSupport.settings().withMaxBatch(2), host);
        int port = server.port();
        assertEquals(expected, texts(send(port, bodies())), "before: the tokens they have offline");

        // the first request's first step held until the second's is in flight too: from then on their steps
        // alternate, so the one sent after the lost one is answered while the lost one is missing
        double overlapped = metric(ServeTestSupport.get(port, "/metrics").body(),
            "troupe_serve_overlapped_steps_total");
        hold.arm();
        loss.armAt(4);                          // the held step, the second's first, the first's second, then lost
        List<CompletableFuture<HttpResponse<String>>> sent = send(port, bodies());
        hold.awaitHeld();
        ServeTestSupport.awaitMetrics(port, m -> metric(m, "troupe_serve_overlapped_steps_total") > overlapped,
            30_000);
        hold.release();
        loss.awaitLost();
        assertEquals(expected, texts(sent), "answered with the tokens they have offline: no step took the logits of"
            + " another");
        String health = ServeTestSupport.get(port, "/health").body();
        assertFalse(health.contains("last_loss"), "failed as a step, not found by the backstop: " + health);
        String metrics = ServeTestSupport.get(port, "/metrics").body();
        assertEquals(0.0, metric(metrics, "troupe_serve_pipeline_stuck_stages_total"), metrics);
        assertTrue(metric(metrics, "troupe_serve_pipeline_pauses_total") >= 1, "recomputed: " + metrics);
        assertEquals(0.0, metric(metrics, "troupe_serve_finished_total{reason=\"cancelled\"}"), metrics);
    }
}
