package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A request's course through a real server on 127.0.0.1 through java.net.http: admitted beside a full batch
 * (prefilled ahead), refused past the queue limit (429), ended at its deadline, by a client that goes away, or by
 * a failed step; and the server's drain.
 */
@Timeout(120)
class InferenceServerLifecycleTest extends InferenceServerFixture {
    /**
     * Draining: the completions the server holds (a streaming one decoding, a whole-response one queued
     * behind it at max-batch 1) run to their end and are answered in full, the text they give offline,
     * while {@code /health} and new completions get 503; the drain completes once both are answered, and
     * a drain whose timeout passes first says so. The steps wait on a gate, so both requests are still
     * held when the drain starts.
     */
    @Test
    void shouldAnswerTheRequestsItHoldsAndRefuseNewOnesWhileDraining() throws Exception {
        Semaphore steps = new Semaphore(0);
        InferenceServer server =
            startGated(ServeTestSupport.settings().withMaxBatch(1).withPrefillThread(false), steps);
        int port = server.port();
        URI completions = URI.create("http://127.0.0.1:" + port + "/v1/completions");
        HttpResponse<java.util.stream.Stream<String>> streamed = ServeTestSupport.CLIENT.sendAsync(
            HttpRequest.newBuilder(completions).POST(HttpRequest.BodyPublishers.ofString(
                "{\"prompt\":\"Drain\",\"max_tokens\":10,\"temperature\":0,\"stream\":true}")).build(),
            HttpResponse.BodyHandlers.ofLines()).get(30, TimeUnit.SECONDS);
        assertEquals(200, streamed.statusCode());
        java.util.Iterator<String> lines = streamed.body().iterator();
        steps.release();                                           // one step: the prompt, and the first token
        String first = lines.next();
        assertTrue(first.startsWith("data: {"), first);
        first = first.substring(6);
        assertEquals("null", field(first, "finish_reason"), first);
        CompletableFuture<HttpResponse<String>> queued = ServeTestSupport.CLIENT.sendAsync(
            HttpRequest.newBuilder(completions).POST(HttpRequest.BodyPublishers.ofString(
                "{\"prompt\":\"Queued\",\"max_tokens\":8,\"temperature\":0}")).build(),
            HttpResponse.BodyHandlers.ofString());
        ServeTestSupport.awaitMetrics(port, m -> metric(m, "troupe_serve_requests_in_flight") == 2, 30_000);
        // counted in flight before its route looks at the drain flag: drained only once the loop admitted it
        stepUntil(port, steps, m -> metric(m, "troupe_serve_requests_total") == 2, 6);

        assertEquals(Boolean.FALSE, server.drain(Duration.ofMillis(50)).get(10, TimeUnit.SECONDS),
            "a drain whose timeout passes while requests are held");
        assertEquals(2, server.requestsInFlight());
        HttpResponse<String> health = get(port, "/health");
        assertEquals(503, health.statusCode(), health.body());
        assertEquals("draining", field(health.body(), "status"));
        HttpResponse<String> refused = post(port, "{\"prompt\":\"late\",\"max_tokens\":4}");
        assertEquals(503, refused.statusCode(), refused.body());
        assertEquals("unavailable", field(refused.body(), "type"));
        String m = get(port, "/metrics").body();
        assertEquals(1.0, metric(m, "troupe_serve_draining"));
        assertEquals(1.0, metric(m, "troupe_serve_refused_draining_total"));
        CompletableFuture<Boolean> drained = server.drain(Duration.ofSeconds(60));
        assertTrue(!drained.isDone(), "drained while two requests are held");

        steps.release(10_000);
        StringBuilder text = new StringBuilder(field(first, "text"));
        String last = null;
        while (lines.hasNext()) {
            String line = lines.next();
            if (line.startsWith("data: {")) {
                last = line.substring(6);
                text.append(field(last, "text"));
            }
        }
        assertEquals("length", field(last, "finish_reason"), last);
        assertEquals(offline("Drain", 10), text.toString());
        HttpResponse<String> q = queued.get(30, TimeUnit.SECONDS);
        assertEquals(200, q.statusCode(), q.body());
        assertEquals("length", field(q.body(), "finish_reason"));
        assertEquals(offline("Queued", 8), field(q.body(), "text"));
        assertEquals(Boolean.TRUE, drained.get(30, TimeUnit.SECONDS));
        assertEquals(0, server.requestsInFlight());
    }

    /**
     * With {@code prefill-ahead}, requests queued behind a full batch (max-batch 2, steps slowed to 5 ms)
     * are prefilled ahead on the prefill thread and join the batch with one row when a place frees:
     * each of six concurrent requests gets the text it gets offline, and most went through the thread.
     */
    @Test
    void shouldPrefillRequestsAheadOfAFullBatchAndGiveTheOfflineText() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings().withMaxBatch(2).withPrefillAhead(2), 5);
        int port = server.port();
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            all.add(sendAsync(port, "{\"prompt\":\"queued " + i + "\",\"max_tokens\":8,\"temperature\":0}"));
        }
        for (int i = 0; i < 6; i++) {
            HttpResponse<String> r = all.get(i).get(60, java.util.concurrent.TimeUnit.SECONDS);
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(offline("queued " + i, 8), field(r.body(), "text"), "request " + i);
        }
        String m = get(port, "/metrics").body();
        assertTrue(metric(m, "troupe_serve_prefilled_beside_total") >= 2, m);
    }

    /**
     * A request that arrives while another decodes is prefilled on the prefill thread, beside the
     * steps, and both get the text they get offline. The steps wait on a gate, let through one at a
     * time until the prefill is applied, so the first (15 steps) is still decoding.
     */
    @Test
    void shouldPrefillARequestArrivingWhileAnotherDecodesBesideTheSteps() throws Exception {
        Semaphore steps = new Semaphore(0);
        InferenceServer server = startGated(ServeTestSupport.settings(), steps);
        int port = server.port();
        CompletableFuture<HttpResponse<String>> first = sendAsync(port,
            "{\"prompt\":\"first\",\"max_tokens\":15,\"temperature\":0}");
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_running_batch_size") == 1, 20_000);
        CompletableFuture<HttpResponse<String>> sent = sendAsync(port,
            "{\"prompt\":\"second one\",\"max_tokens\":6,\"temperature\":0}");
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_requests_in_flight") == 2, 20_000);
        stepUntil(port, steps, t -> metric(t, "troupe_serve_prefilled_beside_total") >= 1, 12);
        assertTrue(!first.isDone(), "the first decodes still");
        steps.release(10_000);
        HttpResponse<String> second = sent.get(30, TimeUnit.SECONDS);
        assertEquals(200, second.statusCode(), second.body());
        assertEquals(offline("second one", 6), field(second.body(), "text"));
        assertEquals(offline("first", 15), field(first.get(30, java.util.concurrent.TimeUnit.SECONDS).body(), "text"));
        String m = get(port, "/metrics").body();
        assertEquals(1, metric(m, "troupe_serve_prefilled_beside_total"), m);
        assertTrue(metric(m, "troupe_serve_prefill_forward_seconds_total") > 0, m);
    }

    /**
     * Past the queue limit (max-batch 1, max-queue 2): 429 with Retry-After. The steps wait on a gate, let
     * through one at a time until the loop has admitted or refused what the test sent, so the running request
     * (15 steps) still holds the batch when the queued one fills the queue.
     */
    @Test
    void shouldAnswer429WithRetryAfterPastTheQueueLimit() throws Exception {
        Semaphore steps = new Semaphore(0);
        InferenceServer server = startGated(ServeTestSupport.settings().withMaxBatch(1).withMaxQueue(2), steps);
        int port = server.port();
        String slow = "{\"prompt\":\"busy\",\"max_tokens\":15,\"temperature\":0}";
        CompletableFuture<HttpResponse<String>> first = sendAsync(port, slow);
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_running_batch_size") == 1, 20_000);
        CompletableFuture<HttpResponse<String>> second = sendAsync(port, slow);
        CompletableFuture<HttpResponse<String>> third = sendAsync(port, slow);
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_requests_in_flight") == 3, 20_000);
        stepUntil(port, steps, t -> metric(t, "troupe_serve_queue_depth") == 2, 6);
        CompletableFuture<HttpResponse<String>> refused = sendAsync(port, slow);
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_requests_in_flight") == 4, 20_000);
        stepUntil(port, steps, t -> metric(t, "troupe_serve_rejected_total") == 1, 6);
        assertTrue(!first.isDone(), "the first still runs");
        HttpResponse<String> fourth = refused.get(30, TimeUnit.SECONDS);
        assertEquals(429, fourth.statusCode(), fourth.body());
        assertEquals("1", fourth.headers().firstValue("retry-after").orElse("missing"));
        steps.release(10_000);
        assertEquals(200, first.get(30, TimeUnit.SECONDS).statusCode());
        assertEquals(200, second.get(30, TimeUnit.SECONDS).statusCode());
        assertEquals(200, third.get(30, TimeUnit.SECONDS).statusCode());
        // a request of two prompts when only one place waits: refused whole, the one queued is cancelled
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_running_batch_size") == 0, 20_000);
        steps.drainPermits();                        // the loop idles: the next request's steps wait again
        CompletableFuture<HttpResponse<String>> busy = sendAsync(port, slow);
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_running_batch_size") == 1, 20_000);
        CompletableFuture<HttpResponse<String>> waiting = sendAsync(port, slow);
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_requests_in_flight") == 2, 20_000);
        stepUntil(port, steps, t -> metric(t, "troupe_serve_queue_depth") == 1, 6);
        CompletableFuture<HttpResponse<String>> prompts = sendAsync(port,
            "{\"prompt\":[\"x\",\"y\"],\"max_tokens\":15}");
        ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_requests_in_flight") == 3, 20_000);
        stepUntil(port, steps, t -> metric(t, "troupe_serve_rejected_total") == 2, 6);
        assertTrue(!busy.isDone(), "the busy one still runs");
        HttpResponse<String> two = prompts.get(30, TimeUnit.SECONDS);
        assertEquals(429, two.statusCode(), two.body());
        steps.release(10_000);
        assertEquals(200, busy.get(30, TimeUnit.SECONDS).statusCode());
        assertEquals(200, waiting.get(30, TimeUnit.SECONDS).statusCode());
        String cancelled = "troupe_serve_finished_total{reason=\"cancelled\"}";
        String m = ServeTestSupport.awaitMetrics(port, t -> metric(t, cancelled) == 1
            && metric(t, "troupe_serve_kv_cache_blocks_used") == 0, 20_000);
        assertEquals(1.0, metric(m, cancelled), "the prompt that had a place was cancelled, not run: " + m);
        assertEquals(0.0, metric(m, "troupe_serve_queue_depth"), m);
    }

    @Test
    void shouldEndARequestAtItsDeadline() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 20);
        HttpResponse<String> r = post(server.port(), "{\"prompt\":\"late\",\"max_tokens\":20,\"deadline_ms\":100}");
        assertEquals(200, r.statusCode());
        assertEquals("deadline", field(r.body(), "finish_reason"));
        assertTrue(Integer.parseInt(field(r.body(), "completion_tokens")) < 20, r.body());
    }

    /**
     * A connection that passes no bytes, as one waiting for a non-streamed answer through a stalled pipeline does,
     * outlives the longest deadline a request may ask for: the request gets its answer, not a reset.
     */
    @Test
    void shouldKeepAQuietConnectionPastTheLongestDeadline() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        assertTrue(server.idleTimeout().toMillis() > CompletionRequest.MAX_DEADLINE_MS, server.idleTimeout() + "");
        assertTrue(server.idleTimeout().toMillis() > ServeTestSupport.settings().deadlineMs(),
            server.idleTimeout() + "");
    }

    @Test
    void shouldFreeTheBlocksOfAStreamingClientThatDisconnects() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 100);
        int port = server.port();
        assertEquals(200, get(port, "/health").statusCode());
        // a raw socket, so that going away is a real TCP close mid-stream
        try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
            socket.setSoLinger(true, 0);
            ServeTestSupport.postRaw(socket, "{\"prompt\":\"bye\",\"max_tokens\":20,\"stream\":true}", "");
            BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(),
                StandardCharsets.UTF_8));
            String line;
            do {
                line = in.readLine();
            } while (line != null && !line.startsWith("data: "));
            assertTrue(line != null, "a first event arrives");
            assertTrue(metric(get(port, "/metrics").body(), "troupe_serve_kv_cache_blocks_used") > 0,
                "blocks held while streaming");
        }   // the client goes away mid-stream
        String m = ServeTestSupport.awaitMetrics(port,
            t -> metric(t, "troupe_serve_kv_cache_blocks_used") == 0 && metric(t,
                "troupe_serve_finished_total{reason=\"cancelled\"}") == 1,
            20_000);
        assertTrue(metric(m, "troupe_serve_generated_tokens_total") < 20, "stopped before max_tokens");
    }

    /**
     * A client that half-closes (sends FIN, keeps its socket open, no reset) frees the request's
     * blocks at once, streaming or not: the request ends {@code cancelled}, not {@code length}.
     */
    @Test
    void shouldFreeTheBlocksOfAClientThatClosesPlainly() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 100);
        int port = server.port();
        int cancelled = 0;
        for (boolean stream : new boolean[] {false, true}) {
            try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
                ServeTestSupport.postRaw(socket, "{\"prompt\":\"fin\",\"max_tokens\":20,\"stream\":" + stream + "}",
                    "");
                ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_kv_cache_blocks_used") > 0, 20_000);
                socket.shutdownOutput();                    // FIN; the socket stays open
                int expected = ++cancelled;
                String m = ServeTestSupport.awaitMetrics(port,
                    t -> metric(t, "troupe_serve_finished_total{reason=\"cancelled\"}") == expected
                        || metric(t, "troupe_serve_finished_total{reason=\"length\"}") > 0, 20_000);
                assertEquals(0.0, metric(m, "troupe_serve_finished_total{reason=\"length\"}"),
                    "stream=" + stream + ": the request ran to max_tokens after the client closed");
                assertEquals(expected, metric(m, "troupe_serve_finished_total{reason=\"cancelled\"}"), m);
                m = ServeTestSupport.awaitMetrics(port, t -> metric(t, "troupe_serve_kv_cache_blocks_used") == 0,
                    20_000);
                assertEquals(0.0, metric(m, "troupe_serve_kv_cache_blocks_used"), "stream=" + stream);
            }
        }
        // a request asking to close the connection after its response is not mistaken for a client gone away
        try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
            ServeTestSupport.postRaw(socket, "{\"prompt\":\"stay\",\"max_tokens\":3}", "Connection: close\r\n");
            String response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(response.startsWith("HTTP/1.1 200") && response.contains("\"finish_reason\":\"length\""),
                response);
        }
    }

    @Test
    void shouldEndTheRequestsOfAFailedStepAndKeepServing() throws Exception {
        slowPool = Executors.newSingleThreadExecutor();
        java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
        Executor failingOnce = r -> {
            if (calls.getAndIncrement() == 0) {
                throw new java.util.concurrent.RejectedExecutionException("the first step is refused");
            }
            slowPool.execute(r);
        };
        InferenceServer server = InferenceServer.start(WEIGHTS, ServeTestSupport.settings(), failingOnce);
        open.add(server);
        HttpResponse<String> failed = post(server.port(), "{\"prompt\":\"first\",\"max_tokens\":4}");
        assertEquals(200, failed.statusCode(), failed.body());
        assertEquals("cancelled", field(failed.body(), "finish_reason"));
        HttpResponse<String> next = post(server.port(), "{\"prompt\":\"second\",\"max_tokens\":4,\"temperature\":0}");
        assertEquals("length", field(next.body(), "finish_reason"), next.body());
        assertEquals(0, metric(get(server.port(), "/metrics").body(), "troupe_serve_kv_cache_blocks_used"));
    }
}
