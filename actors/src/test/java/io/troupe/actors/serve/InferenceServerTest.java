package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.infer.Generation;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.LogProbs;
import io.troupe.models.infer.SamplingParams;
import java.math.BigDecimal;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The completions of a real server on 127.0.0.1 through java.net.http: the text, log-probabilities and choices it
 * answers, whole or streamed, are those the model gives offline.
 */
@Timeout(120)
class InferenceServerTest extends InferenceServerFixture {
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
}
