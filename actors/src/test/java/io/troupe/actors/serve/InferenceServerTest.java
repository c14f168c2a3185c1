package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.infer.Generation;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.LogProbs;
import io.troupe.models.infer.SamplingParams;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The HTTP API of a real server on 127.0.0.1 through java.net.http. */
@Timeout(120)
class InferenceServerTest {
    private static final InferenceWeights WEIGHTS = ServeTestSupport.weights(3);
    private final List<AutoCloseable> open = new ArrayList<>();
    private ExecutorService slowPool;

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
        if (slowPool != null) {
            slowPool.shutdownNow();
        }
    }

    private InferenceServer start(ServeSettings s) {
        InferenceServer server = InferenceServer.start(WEIGHTS, s);
        open.add(server);
        return server;
    }

    /** A server whose every step takes at least {@code stepMs}: requests stay in flight long enough to observe. */
    private InferenceServer startSlow(ServeSettings s, long stepMs) {
        slowPool = Executors.newSingleThreadExecutor();
        Executor slow = r -> slowPool.execute(() -> {
            try {
                Thread.sleep(stepMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            r.run();
        });
        InferenceServer server = InferenceServer.start(WEIGHTS, s, slow);
        open.add(server);
        return server;
    }

    /**
     * A server whose every step waits for a permit of {@code steps}: the test decides how many steps the loop
     * takes, so a request the test needs decoding still decodes, however slow the machine.
     */
    private InferenceServer startGated(ServeSettings s, Semaphore steps) {
        slowPool = Executors.newSingleThreadExecutor();
        Executor gated = r -> slowPool.execute(() -> {
            try {
                steps.acquire();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            r.run();
        });
        InferenceServer server = InferenceServer.start(WEIGHTS, s, gated);
        open.add(server);
        return server;
    }

    /**
     * Lets a {@link #startGated gated} loop take one step at a time until {@code /metrics} satisfies {@code ok}
     * (what a step boundary admits or applies shows at the next), giving each step up to a second, at most
     * {@code maxSteps} steps; returns the metrics that satisfied it.
     */
    private static String stepUntil(int port, Semaphore steps, java.util.function.Predicate<String> ok, int maxSteps)
        throws Exception {
        String m = get(port, "/metrics").body();
        for (int step = 0; !ok.test(m); step++) {
            assertTrue(step < maxSteps, "not reached in " + maxSteps + " steps:\n" + m);
            steps.release();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            do {
                Thread.sleep(5);
                m = get(port, "/metrics").body();
            } while (!ok.test(m) && System.nanoTime() < end);
        }
        return m;
    }

    /** The text the model gives offline (no server) for a greedy prompt. */
    private static String offline(String prompt, int maxTokens) {
        return offline(prompt, maxTokens, KvPrecision.F32);
    }

    private static String offline(String prompt, int maxTokens, KvPrecision kv) {
        return offlineGeneration(prompt, maxTokens, kv).text();
    }

    private static Generation offlineGeneration(String prompt, int maxTokens, KvPrecision kv) {
        return offlineGeneration(prompt, SamplingParams.greedy(maxTokens), kv);
    }

    private static Generation offlineGeneration(String prompt, SamplingParams p, KvPrecision kv) {
        return ServeTestSupport.offlineGeneration(WEIGHTS, prompt, p, kv);
    }

    @Test
    void shouldAnswerACompletionWithTextFinishReasonAndUsage() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        HttpResponse<String> r = post(server.port(), "{\"prompt\":\"To be\",\"max_tokens\":8,\"temperature\":0}");
        assertEquals(200, r.statusCode(), r.body());
        System.out.println(r.body());
        assertEquals(offline("To be", 8), field(r.body(), "text"));
        assertEquals("length", field(r.body(), "finish_reason"));
        assertEquals("5", field(r.body(), "prompt_tokens"));
        assertEquals("8", field(r.body(), "completion_tokens"));
        assertEquals("13", field(r.body(), "total_tokens"));
        assertEquals(200, get(server.port(), "/health").statusCode());
    }

    /** A bfloat16 KV cache: the server gives the text a bfloat16 cache gives offline, alone or among others. */
    @Test
    void shouldServeWithABfloat16KvCacheTheTextItGivesOffline() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings().withKvPrecision(KvPrecision.BF16));
        String body = "{\"prompt\":\"To be\",\"max_tokens\":20,\"temperature\":0}";
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            String b = i == 3 ? body : "{\"prompt\":\"other " + i + "\",\"max_tokens\":12}";
            all.add(ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + server.port() + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(b)).build(),
                HttpResponse.BodyHandlers.ofString()));
        }
        for (CompletableFuture<HttpResponse<String>> f : all) {
            assertEquals(200, f.get(60, TimeUnit.SECONDS).statusCode(), f.get().body());
        }
        String bf16 = offline("To be", 20, KvPrecision.BF16);
        assertEquals(bf16, field(all.get(3).get().body(), "text"));
        System.out.println("bf16 cache: '" + bf16 + "', f32 cache: '" + offline("To be", 20) + "'");
    }

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
        slowPool = Executors.newSingleThreadExecutor();
        Executor gated = r -> slowPool.execute(() -> {
            try {
                steps.acquire();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            r.run();
        });
        InferenceServer server = InferenceServer.start(WEIGHTS,
            ServeTestSupport.settings().withMaxBatch(1).withPrefillThread(false), gated);
        open.add(server);
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

    /** {@code GET /v1/models}: the one model served, as OpenAI clients list models; another id is 404. */
    @Test
    void shouldListTheServedModelAndAnswer404ForAnother() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        HttpResponse<String> list = get(server.port(), "/v1/models");
        assertEquals(200, list.statusCode(), list.body());
        assertEquals("list", field(list.body(), "object"));
        String name = WEIGHTS.config().name();
        assertEquals(name, field(list.body(), "id"));
        assertEquals(String.valueOf(WEIGHTS.config().seqLen()), field(list.body(), "context_length"));
        HttpResponse<String> one = get(server.port(), "/v1/models/" + name);
        assertEquals(200, one.statusCode(), one.body());
        assertEquals("model", field(one.body(), "object"));
        HttpResponse<String> other = get(server.port(), "/v1/models/gpt-4");
        assertEquals(404, other.statusCode(), other.body());
        assertEquals("model_not_found", field(other.body(), "code"));
        assertTrue(field(other.body(), "message").contains("gpt-4"), other.body());
        // the completion names the same model
        HttpResponse<String> c = post(server.port(), "{\"prompt\":\"a\",\"max_tokens\":2}");
        assertEquals(name, field(c.body(), "model"));
    }

    @Test
    void shouldStreamTheSameTextAsServerSentEventsEndingWithDone() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        HttpResponse<String> r = post(server.port(),
            "{\"prompt\":\"Hello\",\"max_tokens\":12,\"temperature\":0,\"stream\":true}");
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("content-type").orElse("").startsWith("text/event-stream"),
            r.headers().toString());
        StringBuilder text = new StringBuilder();
        List<String> events = new ArrayList<>();
        for (String block : r.body().split("\n\n")) {
            assertTrue(block.startsWith("data: "), "event: " + block);
            events.add(block.substring(6));
        }
        assertEquals("[DONE]", events.get(events.size() - 1));
        for (String e : events.subList(0, events.size() - 1)) {
            text.append(field(e, "text"));
        }
        assertTrue(events.size() >= 3, "token events, a final one and [DONE]: " + events.size());
        assertEquals("length", field(events.get(events.size() - 2), "finish_reason"));
        assertEquals(offline("Hello", 12), text.toString());
    }

    /**
     * Log-probabilities streamed: each chunk carries those of the tokens its text is made of, so the
     * chunks together give what the whole response gives, offsets included, where text is held back
     * (a possible stop string, a character's first bytes) and released with later tokens. With echo the
     * first chunk is the prompt with its tokens' log-probabilities.
     */
    @Test
    @SuppressWarnings("unchecked")
    void shouldStreamEachChunksLogprobsAsTheWholeResponseGivesThem() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        int mostInAChunk = 0;
        for (long seed = 1; seed <= 6; seed++) {
            boolean echo = seed % 2 == 0;
            String request = "\"prompt\":\"T\u00f6 be\",\"max_tokens\":17,\"temperature\":1.5,\"seed\":" + seed
                + ",\"logprobs\":2,\"stop\":[\"e, t\",\"\\n\\n\\n\"],\"echo\":" + echo;
            HttpResponse<String> whole = post(server.port(), "{" + request + "}");
            assertEquals(200, whole.statusCode(), whole.body());
            Map<String, Object> expected = (Map<String, Object>) choice(whole.body()).get("logprobs");
            HttpResponse<String> streamed = post(server.port(), "{" + request + ",\"stream\":true}");
            assertEquals(200, streamed.statusCode(), streamed.body());
            Map<String, List<Object>> joined = new java.util.LinkedHashMap<>();
            StringBuilder text = new StringBuilder();
            String[] blocks = streamed.body().split("\n\n");
            for (String block : java.util.Arrays.copyOf(blocks, blocks.length - 2)) {    // the finish, [DONE]
                Map<String, Object> c = choice(block.substring("data: ".length()));
                Map<String, Object> lp = (Map<String, Object>) c.get("logprobs");
                assertTrue(!list(lp, "tokens").isEmpty(), "a chunk carries its tokens: " + block);
                mostInAChunk = Math.max(mostInAChunk, list(lp, "tokens").size());
                text.append(c.get("text"));
                for (String key : expected.keySet()) {
                    joined.computeIfAbsent(key, k -> new ArrayList<>()).addAll(list(lp, key));
                }
            }
            assertEquals(choice(whole.body()).get("text"), text.toString(), "seed " + seed);
            assertEquals(expected, joined, "seed " + seed);
            if (echo) {
                Map<String, Object> first = choice(blocks[0].substring("data: ".length()));
                assertEquals("T\u00f6 be", first.get("text"), "the first chunk is the prompt");
                assertEquals(6, list((Map<String, Object>) first.get("logprobs"), "tokens").size(), "its six bytes");
            }
        }
        assertTrue(mostInAChunk > 1, "some text was held back and went out with a later token");
        // echo alone, and a prompt scored with no token generated: the prompt's chunk, then the finish
        HttpResponse<String> scored = post(server.port(),
            "{\"prompt\":\"Hi!\",\"max_tokens\":0,\"echo\":true,\"stream\":true}");
        assertEquals(200, scored.statusCode(), scored.body());
        String[] blocks = scored.body().split("\n\n");
        assertEquals(3, blocks.length, scored.body());
        assertEquals("Hi!", choice(blocks[0].substring("data: ".length())).get("text"));
        assertEquals(Json.NULL, choice(blocks[0].substring("data: ".length())).get("logprobs"));
        assertEquals("length", field(blocks[1].substring("data: ".length()), "finish_reason"));
        assertEquals("data: [DONE]", blocks[2]);
    }

    /**
     * Prefix caching (on by default): requests that begin with the same 16 tokens take the blocks the
     * first computed, and each gets the text it gets offline; off, nothing is taken.
     */
    @Test
    void shouldTakeASharedPrefixFromTheCacheAndGiveTheOfflineText() throws Exception {
        String shared = "Now is the winte";           // 16 bytes: four blocks of 4
        for (boolean on : new boolean[] {true, false}) {
            InferenceServer server = start(ServeTestSupport.settings().withPrefixCache(on));
            for (String tail : new String[] {"r", "r of", "x"}) {
                HttpResponse<String> r = post(server.port(), "{\"prompt\":\"" + shared + tail
                    + "\",\"max_tokens\":5,\"temperature\":0}");
                assertEquals(200, r.statusCode(), r.body());
                assertEquals(offline(shared + tail, 5), field(r.body(), "text"), tail + ", prefix cache " + on);
            }
            String m = get(server.port(), "/metrics").body();
            assertEquals(on ? 32.0 : 0.0, metric(m, "troupe_serve_prefix_cache_reused_tokens_total"), m);
            assertTrue(!on || metric(m, "troupe_serve_kv_cache_blocks_cached") >= 4, m);
            assertEquals(0.0, metric(m, "troupe_serve_kv_cache_blocks_used"), m);
        }
    }

    /**
     * {@code best_of}: each prompt's {@code n} choices are the best, by log-probability per generated
     * token, of its {@code best_of} samples (sample j what the prompt gets alone with seed
     * {@code seed + j}), best first; usage counts every sample's tokens.
     */
    @Test
    void shouldAnswerTheBestNOfBestOfSamples() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        String[] prompts = {"To be", "Hello"};
        HttpResponse<String> r = post(server.port(), "{\"prompt\":[\"To be\",\"Hello\"],\"n\":2,\"best_of\":4,"
            + "\"max_tokens\":8,\"temperature\":1.5,\"seed\":40}");
        assertEquals(200, r.statusCode(), r.body());
        List<Map<String, Object>> choices = choices(r.body());
        assertEquals(4, choices.size());
        for (int p = 0; p < 2; p++) {
            List<Object[]> samples = new ArrayList<>();     // {text, log-probability per token}
            for (int j = 0; j < 4; j++) {
                HttpResponse<String> alone = post(server.port(), "{\"prompt\":\"" + prompts[p] + "\",\"max_tokens\":8,"
                    + "\"temperature\":1.5,\"logprobs\":0,\"seed\":" + (40 + j) + "}");
                @SuppressWarnings("unchecked")
                List<Object> lps = list((Map<String, Object>) choice(alone.body()).get("logprobs"), "token_logprobs");
                double sum = 0;
                for (Object o : lps) {
                    sum += num(o);
                }
                samples.add(new Object[] {field(alone.body(), "text"), sum / lps.size()});
            }
            List<Object[]> ranked = new ArrayList<>(samples);
            ranked.sort((a, b) -> Double.compare((double) b[1], (double) a[1]));
            assertTrue((double) ranked.get(1)[1] > (double) ranked.get(2)[1], "no tie at the cut");
            for (int i = 0; i < 2; i++) {
                Map<String, Object> c = choices.get(2 * p + i);
                assertEquals(BigDecimal.valueOf(2 * p + i), c.get("index"));
                assertEquals(ranked.get(i)[0], c.get("text"), "prompt " + p + ", choice " + i);
                assertEquals(Json.NULL, c.get("logprobs"), "not asked for");
            }
            assertTrue(samples.stream().map(s -> s[0]).distinct().count() > 1, "the samples differ");
        }
        assertEquals("10", field(r.body(), "prompt_tokens"), "each prompt once");
        assertEquals("64", field(r.body(), "completion_tokens"), "every sample drawn");
    }

    @Test
    void shouldGiveTheSameTokensAloneAndAmongSixteenConcurrentRequests() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        String needle = "{\"prompt\":\"needle\",\"max_tokens\":15,\"temperature\":0.8,\"seed\":42}";
        String alone = field(post(server.port(), needle).body(), "text");
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            String body = i == 7 ? needle : "{\"prompt\":\"other " + i + "\",\"max_tokens\":" + (3 + i)
                + ",\"temperature\":0.7}";
            all.add(ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                + server.port()
                + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString()));
        }
        for (CompletableFuture<HttpResponse<String>> f : all) {
            assertEquals(200, f.get().statusCode(), f.get().body());
        }
        assertEquals(alone, field(all.get(7).get().body(), "text"));
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

    private static int[] bytes(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        int[] t = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            t[i] = b[i] & 0xFF;
        }
        return t;
    }

    private static Map<String, Object> choice(String body) {
        return choices(body).get(0);
    }

    /** Every choice of a whole response, in order. */
    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> choices(String body) {
        return (List<Map<String, Object>>) ((Map<String, Object>) Json.parse(body)).get("choices");
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Map<String, Object> logprobs, String key) {
        return (List<Object>) logprobs.get(key);
    }

    private static double num(Object o) {
        return ((BigDecimal) o).doubleValue();
    }

    /**
     * Scoring as evaluation harnesses ask for it (echo with log-probabilities): the response's text is
     * the prompt and the output, and every token but the first has the log-probability one plain
     * forward over the whole text gives offline, bit for bit (printed and parsed back); the greedy
     * tokens are the most likely of their alternatives; bytes of a character past ASCII are written
     * {@code bytes:\xHH} and share the character's text offset. With max_tokens 0 only the prompt is
     * scored; echo alone returns the prompt with the text.
     */
    @Test
    @SuppressWarnings("unchecked")
    void shouldScoreAnEchoedPromptAsOnePlainForwardDoesOffline() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        String prompt = "T\u00f6 be, or";
        int n = bytes(prompt).length;
        Generation offline = offlineGeneration(prompt, 3, KvPrecision.F32);
        String out = offline.text();
        HttpResponse<String> r = post(server.port(), "{\"prompt\":" + Json.quote(prompt)
            + ",\"max_tokens\":3,\"temperature\":0,\"echo\":true,\"logprobs\":2}");
        assertEquals(200, r.statusCode(), r.body());
        System.out.println(r.body());
        Map<String, Object> c = choice(r.body());
        assertEquals(prompt + out, c.get("text"));
        Map<String, Object> lp = (Map<String, Object>) c.get("logprobs");
        int[] all = java.util.stream.IntStream.concat(java.util.Arrays.stream(bytes(prompt)),
            java.util.Arrays.stream(offline.completion())).toArray();
        double[] expected = LogProbs.plainScores(WEIGHTS, all);
        List<Object> tokens = list(lp, "tokens");
        List<Object> values = list(lp, "token_logprobs");
        List<Object> tops = list(lp, "top_logprobs");
        assertEquals(all.length, tokens.size());
        assertEquals(Json.NULL, values.get(0));
        assertEquals(Json.NULL, tops.get(0));
        assertEquals("bytes:\\xc3", tokens.get(1));
        assertEquals(List.of(0, 1, 1, 2, 3), list(lp, "text_offset").subList(0, 5).stream()
            .map(o -> ((BigDecimal) o).intValue()).toList());
        for (int p = 1; p < all.length; p++) {
            assertEquals(expected[p], num(values.get(p)), "position " + p);
            Map<String, Object> top = (Map<String, Object>) tops.get(p);
            assertEquals(2, top.size(), "two alternatives at " + p);
            if (p >= n) {
                String first = top.keySet().iterator().next();
                assertEquals(tokens.get(p), first, "greedy: the most likely token at " + p);
                assertEquals(expected[p], num(top.get(first)));
            }
        }

        HttpResponse<String> scoreOnly = post(server.port(), "{\"prompt\":" + Json.quote(prompt)
            + ",\"max_tokens\":0,\"echo\":true,\"logprobs\":0}");
        assertEquals(200, scoreOnly.statusCode(), scoreOnly.body());
        Map<String, Object> s = choice(scoreOnly.body());
        assertEquals(prompt, s.get("text"));
        assertEquals("length", s.get("finish_reason"));
        assertEquals("0", field(scoreOnly.body(), "completion_tokens"));
        List<Object> scored = list((Map<String, Object>) s.get("logprobs"), "token_logprobs");
        assertEquals(n, scored.size());
        for (int p = 1; p < n; p++) {
            assertEquals(expected[p], num(scored.get(p)), "score only, position " + p);
        }

        HttpResponse<String> echo = post(server.port(), "{\"prompt\":" + Json.quote(prompt)
            + ",\"max_tokens\":3,\"temperature\":0,\"echo\":true}");
        assertEquals(prompt + out, choice(echo.body()).get("text"));
        assertEquals(Json.NULL, choice(echo.body()).get("logprobs"));

        HttpResponse<String> plain = post(server.port(), "{\"prompt\":" + Json.quote(prompt)
            + ",\"max_tokens\":3,\"temperature\":0,\"logprobs\":1}");
        Map<String, Object> g = choice(plain.body());
        assertEquals(out, g.get("text"));
        List<Object> generated = list((Map<String, Object>) g.get("logprobs"), "token_logprobs");
        assertEquals(3, generated.size(), "without echo only the generated tokens");
        for (int i = 0; i < 3; i++) {
            assertEquals(expected[n + i], num(generated.get(i)));
        }
    }

    @Test
    void shouldRefuseBadInputWith400NamingTheField() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        String tooLong = "x".repeat(ServeTestSupport.CFG.seqLen());
        String[][] cases = {
            {"{\"prompt\":", "body"},
            {"[1,2]", "body"},
            {"{}", "prompt"},
            {"{\"prompt\":5}", "prompt"},
            {"{\"prompt\":\"\"}", "prompt"},
            {"{\"prompt\":\"" + tooLong + "\"}", "prompt"},
            {"{\"prompt\":[1,300]}", "prompt"},
            {"{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens"},
            {"{\"prompt\":\"a\",\"max_tokens\":\"5\"}", "max_tokens"},
            {"{\"prompt\":\"a\",\"max_tokens\":1e12}", "max_tokens"},
            {"{\"prompt\":\"a\",\"max_tokens\":2.5}", "max_tokens"},
            {"{\"prompt\":\"a\",\"temperature\":-1}", "temperature"},
            {"{\"prompt\":\"a\",\"top_p\":0}", "top_p"},
            {"{\"prompt\":\"a\",\"top_p\":1.5}", "top_p"},
            {"{\"prompt\":\"a\",\"seed\":\"x\"}", "seed"},
            {"{\"prompt\":\"a\",\"stop\":5}", "stop"},
            {"{\"prompt\":\"a\",\"stop\":[\"\"]}", "stop"},
            {"{\"prompt\":\"a\",\"stream\":\"yes\"}", "stream"},
            {"{\"prompt\":\"a\",\"deadline_ms\":0}", "deadline_ms"},
            {"{\"prompt\":\"a\",\"n\":0}", "n"},
            {"{\"prompt\":\"a\",\"n\":2,\"stream\":true}", "n"},
            {"{\"prompt\":[\"a\",\"b\"],\"n\":65}", "n"},
            {"{\"prompt\":\"a\",\"n\":3,\"best_of\":2}", "best_of"},
            {"{\"prompt\":\"a\",\"best_of\":0}", "best_of"},
            {"{\"prompt\":[\"a\",\"b\"],\"n\":2,\"best_of\":65}", "best_of"},
            {"{\"prompt\":\"a\",\"best_of\":2,\"stream\":true}", "best_of"},
            {"{\"prompt\":[\"a\",5]}", "prompt"},
            {"{\"prompt\":[\"a\",\"\"]}", "prompt"},
            {"{\"prompt\":[[1,2],\"a\"]}", "prompt"},
            {"{\"prompt\":[[1,2],[]]}", "prompt"},
            {"{\"prompt\":[]}", "prompt"},
            {"{\"prompt\":[\"a\",\"b\"],\"stream\":true}", "prompt"},
            {"{\"prompt\":[" + "\"a\",".repeat(CompletionRequest.MAX_PROMPTS) + "\"a\"]}", "prompt"},
            {"{\"prompt\":\"a\",\"echo\":\"no\"}", "echo"},
            {"{\"prompt\":\"a\",\"logprobs\":6}", "logprobs"},
            {"{\"prompt\":\"a\",\"logprobs\":-1}", "logprobs"},
            {"{\"prompt\":\"a\",\"logprobs\":true}", "logprobs"},
            {"{\"prompt\":\"a\",\"frequency_penalty\":2.5}", "frequency_penalty"},
            {"{\"prompt\":\"a\",\"presence_penalty\":\"1\"}", "presence_penalty"},
            {"{\"prompt\":\"a\",\"logit_bias\":[1]}", "logit_bias"},
            {"{\"prompt\":\"a\",\"logit_bias\":{\"x\":1}}", "logit_bias"},
            {"{\"prompt\":\"a\",\"logit_bias\":{\"300\":1}}", "logit_bias"},
            {"{\"prompt\":\"a\",\"logit_bias\":{\"5\":101}}", "logit_bias"},
            {"{\"prompt\":\"a\",\"suffix\":\"end\"}", "suffix"},
            {"{\"prompt\":\"a\",\"max_token\":5}", "max_token"},
            {"{\"prompt\":\"a\",\"user\":5}", "user"},
            {"{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", "stream_options"},
            {"{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"usage\":true}}", "stream_options"},
        };
        for (String[] c : cases) {
            HttpResponse<String> r = post(server.port(), c[0]);
            assertEquals(400, r.statusCode(), c[0] + " -> " + r.body());
            assertEquals(c[1], field(r.body(), "param"), c[0] + " -> " + r.body());
        }
        assertEquals(200, post(server.port(), "{\"prompt\":\"a\",\"max_tokens\":2}").statusCode(), "still serving");
        // what clients send by default is accepted: echo false, logprobs null, best_of 1
        assertEquals(200, post(server.port(), "{\"prompt\":\"a\",\"max_tokens\":2,\"echo\":false,\"logprobs\":null,"
            + "\"best_of\":1,\"frequency_penalty\":0,\"presence_penalty\":0,\"logit_bias\":{},\"suffix\":null,"
            + "\"user\":\"user-1234\",\"stream_options\":null}")
            .statusCode());
        assertEquals(cases.length, metric(get(server.port(), "/metrics").body(), "troupe_serve_bad_requests_total"));
    }

    /** Penalties and biases give the text the same sampling gives offline; a bias of 100 forces a token. */
    @Test
    void shouldApplyPenaltiesAndLogitBiasAsOffline() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        HttpResponse<String> forced = post(server.port(), "{\"prompt\":\"To be\",\"max_tokens\":6,\"temperature\":0,"
            + "\"logit_bias\":{\"65\":100}}");
        assertEquals(200, forced.statusCode(), forced.body());
        assertEquals("AAAAAA", field(forced.body(), "text"));
        SamplingParams p = new SamplingParams(10, 0.8f, 1f, 77L, List.of()).withPenalties(1.25f, 0.5f,
            java.util.Map.of(66, -3.5f, 101, 2f));
        String want = offlineGeneration("To be", p, KvPrecision.F32).text();
        assertTrue(!want.equals(offlineGeneration("To be", new SamplingParams(10, 0.8f, 1f, 77L, List.of()),
            KvPrecision.F32).text()), "the penalties change the text");
        HttpResponse<String> r = post(server.port(), "{\"prompt\":\"To be\",\"max_tokens\":10,\"temperature\":0.8,"
            + "\"seed\":77,\"frequency_penalty\":1.25,\"presence_penalty\":0.5,"
            + "\"logit_bias\":{\"66\":-3.5,\"101\":2}}");
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(want, field(r.body(), "text"));
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

    /**
     * {@code n} choices per prompt: a prompt's choices together, in the order of the prompts, choice j
     * what the prompt gets alone with seed {@code seed + j}; each prompt's tokens counted once.
     */
    @Test
    void shouldAnswerNChoicesPerPromptEachWithItsOwnSeed() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        HttpResponse<String> r = post(server.port(), "{\"prompt\":[\"To be\",\"Hello\"],\"n\":3,\"best_of\":3,"
            + "\"max_tokens\":8,\"temperature\":1.2,\"seed\":40}");
        assertEquals(200, r.statusCode(), r.body());
        List<Map<String, Object>> choices = choices(r.body());
        assertEquals(6, choices.size());
        java.util.Set<Object> texts = new java.util.HashSet<>();
        for (int c = 0; c < 6; c++) {
            String prompt = c < 3 ? "To be" : "Hello";
            HttpResponse<String> alone = post(server.port(), "{\"prompt\":\"" + prompt + "\",\"max_tokens\":8,"
                + "\"temperature\":1.2,\"seed\":" + (40 + c % 3) + "}");
            assertEquals(BigDecimal.valueOf(c), choices.get(c).get("index"));
            assertEquals(field(alone.body(), "text"), choices.get(c).get("text"), "choice " + c);
            texts.add(choices.get(c).get("text"));
        }
        assertTrue(texts.size() > 2, "the choices of a prompt differ: " + texts);
        assertEquals("10", field(r.body(), "prompt_tokens"), "each prompt once");
        assertEquals("48", field(r.body(), "completion_tokens"));
    }

    /**
     * Several prompts in one request (an array of strings, or of token-id arrays): one choice each, in
     * order, each the text its prompt gets alone (the same seed for all), scored too where asked; the
     * usage sums them.
     */
    @Test
    void shouldAnswerABatchOfPromptsWithAChoiceEachInOrder() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        String[] prompts = {"To be", "Hello", "x", "Once more unto"};
        HttpResponse<String> r = post(server.port(), "{\"prompt\":[\"To be\",\"Hello\",\"x\",\"Once more unto\"],"
            + "\"max_tokens\":6,\"temperature\":0}");
        assertEquals(200, r.statusCode(), r.body());
        List<Map<String, Object>> choices = choices(r.body());
        assertEquals(4, choices.size());
        int promptTokens = 0;
        for (int i = 0; i < 4; i++) {
            assertEquals(BigDecimal.valueOf(i), choices.get(i).get("index"));
            assertEquals(offline(prompts[i], 6), choices.get(i).get("text"), "prompt " + i);
            promptTokens += prompts[i].length();
        }
        assertEquals(String.valueOf(promptTokens), field(r.body(), "prompt_tokens"));
        assertEquals("24", field(r.body(), "completion_tokens"));

        HttpResponse<String> ids = post(server.port(), "{\"prompt\":[[84,111,32,98,101],[72]],\"max_tokens\":0,"
            + "\"echo\":true,\"logprobs\":1}");
        assertEquals(200, ids.statusCode(), ids.body());
        HttpResponse<String> alone = post(server.port(), "{\"prompt\":[84,111,32,98,101],\"max_tokens\":0,"
            + "\"echo\":true,\"logprobs\":1}");
        List<Map<String, Object>> scored = choices(ids.body());
        assertEquals("To be", scored.get(0).get("text"));
        assertEquals("H", scored.get(1).get("text"));
        assertEquals(choice(alone.body()).get("logprobs"), scored.get(0).get("logprobs"), "as alone");
    }

    @Test
    void shouldEndARequestAtItsDeadline() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 20);
        HttpResponse<String> r = post(server.port(), "{\"prompt\":\"late\",\"max_tokens\":20,\"deadline_ms\":100}");
        assertEquals(200, r.statusCode());
        assertEquals("deadline", field(r.body(), "finish_reason"));
        assertTrue(Integer.parseInt(field(r.body(), "completion_tokens")) < 20, r.body());
    }

    @Test
    void shouldFreeTheBlocksOfAStreamingClientThatDisconnects() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 100);
        int port = server.port();
        assertEquals(200, get(port, "/health").statusCode());
        // a raw socket, so that going away is a real TCP close mid-stream
        try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
            socket.setSoLinger(true, 0);
            byte[] body = "{\"prompt\":\"bye\",\"max_tokens\":20,\"stream\":true}".getBytes(StandardCharsets.UTF_8);
            socket.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().write(body);
            socket.getOutputStream().flush();
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
                byte[] body = ("{\"prompt\":\"fin\",\"max_tokens\":20,\"stream\":" + stream + "}")
                    .getBytes(StandardCharsets.UTF_8);
                socket.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
                socket.getOutputStream().write(body);
                socket.getOutputStream().flush();
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
            byte[] body = "{\"prompt\":\"stay\",\"max_tokens\":3}".getBytes(StandardCharsets.UTF_8);
            socket.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                + "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().write(body);
            socket.getOutputStream().flush();
            String response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(response.startsWith("HTTP/1.1 200") && response.contains("\"finish_reason\":\"length\""),
                response);
        }
    }

    @Test
    void shouldExposePrometheusMetrics() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        post(server.port(), "{\"prompt\":\"count\",\"max_tokens\":5,\"temperature\":0}");
        String m = get(server.port(), "/metrics").body();
        for (String name : List.of("troupe_serve_queue_depth", "troupe_serve_running_batch_size",
            "troupe_serve_tokens_per_second",
            "troupe_serve_kv_cache_blocks_used", "troupe_serve_time_to_first_token_seconds_count",
            "troupe_serve_time_per_output_token_seconds_count", "troupe_serve_generated_tokens_total")) {
            assertTrue(!Double.isNaN(metric(m, name)), name + " in\n" + m);
        }
        assertEquals(5, metric(m, "troupe_serve_generated_tokens_total"));
        assertEquals(1, metric(m, "troupe_serve_time_to_first_token_seconds_count"));
        assertEquals(4, metric(m, "troupe_serve_time_per_output_token_seconds_count"));
        // the decode loop's step cycle: time in the forward and between forwards, both measured
        assertTrue(metric(m, "troupe_serve_step_forward_seconds_total") > 0, m);
        assertTrue(metric(m, "troupe_serve_step_schedule_seconds_total") > 0, m);
        // answered, nothing is left running: no step in flight
        ServeTestSupport.awaitMetrics(server.port(), t -> metric(t, "troupe_serve_steps_in_flight") == 0, 10_000);
    }

    /**
     * What the HTTP routing refuses by itself (an unknown path, a method an endpoint does not take, a body past
     * the size limit) is answered in the JSON error shape of the server's own refusals, status and Allow kept.
     */
    @Test
    void shouldAnswerRoutingRefusalsInTheJsonErrorShape() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        HttpResponse<String> method = get(server.port(), "/v1/completions");
        assertEquals(405, method.statusCode(), method.body());
        assertJsonError(method, "method_not_allowed");
        assertTrue(method.headers().firstValue("Allow").orElse("").contains("POST"), method.headers().toString());
        HttpResponse<String> path = get(server.port(), "/v1/nothing");
        assertEquals(404, path.statusCode(), path.body());
        assertJsonError(path, "not_found");
        HttpResponse<String> big = post(server.port(), "{\"prompt\":\"" + "a".repeat(9 << 20) + "\"}");
        assertEquals(413, big.statusCode(), big.body().substring(0, Math.min(200, big.body().length())));
        assertJsonError(big, "content_too_large");
        // the server's own answers are as before
        assertEquals("model_not_found", field(get(server.port(), "/v1/models/gpt-4").body(), "code"));
        assertEquals(200, post(server.port(), "{\"prompt\":\"a\",\"max_tokens\":2}").statusCode(), "still serving");
    }

    private static void assertJsonError(HttpResponse<String> r, String code) {
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"),
            r.headers().toString());
        assertEquals(code, field(r.body(), "code"), r.body());
        assertEquals("invalid_request_error", field(r.body(), "type"), r.body());
        assertFalse(field(r.body(), "message").isEmpty(), r.body());
    }

    private static CompletableFuture<HttpResponse<String>> sendAsync(int port, String body) {
        return ServeTestSupport.CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
            + "/v1/completions"))
            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
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
