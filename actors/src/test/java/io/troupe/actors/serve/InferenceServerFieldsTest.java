package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The fields of a completion body, through java.net.http against a real server on 127.0.0.1: an
 * unknown one refused naming it, {@code model} another than the served one not found, {@code user} taken,
 * {@code stream_options.include_usage}'s usage chunk.
 */
@Timeout(120)
class InferenceServerFieldsTest {
    private InferenceServer server;

    @BeforeEach
    void startServer() {
        server = InferenceServer.start(ServeTestSupport.weights(3), ServeTestSupport.settings());
    }

    @AfterEach
    void closeServer() {
        server.close();
    }

    @Test
    void shouldRefuseAMisspeltFieldWith400NamingItAndTheFieldMeant() throws Exception {
        HttpResponse<String> r = post(server.port(), "{\"prompt\":\"To be\",\"max_token\":4,\"temperature\":0}");
        assertEquals(400, r.statusCode(), r.body());
        assertEquals("max_token", field(r.body(), "param"));
        assertEquals("invalid_request_error", field(r.body(), "type"));
        String message = field(r.body(), "message");
        assertTrue(message.startsWith("unknown field max_token (did you mean max_tokens?); the fields accepted: model,"
            + " prompt,"), message);
        assertTrue(message.endsWith(", user, seed, deadline_ms"), message);
        // a name far from every field: no suggestion, the list
        r = post(server.port(), "{\"prompt\":\"To be\",\"stop_sequences\":[\"\\n\"]}");
        assertEquals(400, r.statusCode(), r.body());
        assertEquals("stop_sequences", field(r.body(), "param"));
        assertTrue(field(r.body(), "message").startsWith("unknown field stop_sequences; the fields accepted: "),
            r.body());
    }

    /**
     * {@code model} absent, null or the served model's name is served, the same text each way; another name
     * is 404 in OpenAI's shape ({@code model_not_found}, naming it and the served model), as
     * {@code GET /v1/models/<id>} answers it, streamed or not, and before a value only the served model
     * would refuse; a model that is not a string is 400.
     */
    @Test
    @SuppressWarnings("unchecked")
    void shouldServeTheServedModelAndAnswer404ForAnother() throws Exception {
        String served = ServeTestSupport.CFG.name();
        String request = "\"prompt\":\"To be\",\"max_tokens\":5,\"temperature\":0.8,\"seed\":9";
        HttpResponse<String> plain = post(server.port(), "{" + request + "}");
        assertEquals(200, plain.statusCode(), plain.body());
        for (String model : new String[] {"null", Json.quote(served)}) {
            HttpResponse<String> r = post(server.port(), "{\"model\":" + model + "," + request + "}");
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(field(plain.body(), "text"), field(r.body(), "text"), model);
            assertEquals(served, field(r.body(), "model"));
        }
        HttpResponse<String> streamed = post(server.port(), "{\"model\":" + Json.quote(served) + "," + request
            + ",\"stream\":true}");
        assertEquals(200, streamed.statusCode(), streamed.body());
        assertTrue(streamed.body().endsWith("data: [DONE]\n\n"), streamed.body());
        double bad = metric(get(server.port(), "/metrics").body(), "troupe_serve_bad_requests_total");
        String[] others = {"gpt-3.5-turbo-instruct", served.toUpperCase(java.util.Locale.ROOT), served + " ", ""};
        for (String other : others) {
            for (String tail : new String[] {"", ",\"stream\":true", ",\"logprobs\":99"}) {
                HttpResponse<String> r = post(server.port(), "{\"model\":" + Json.quote(other) + "," + request
                    + tail + "}");
                assertEquals(404, r.statusCode(), r.body());
                assertEquals("application/json", r.headers().firstValue("Content-Type").orElse(""));
                Map<String, Object> error = (Map<String, Object>) ((Map<String, Object>) Json.parse(r.body()))
                    .get("error");
                assertEquals(Map.of("message", "The model `" + other + "` does not exist; this server serves `"
                    + served + "`", "type", "invalid_request_error", "param", "model", "code", "model_not_found"),
                    error, r.body());
            }
        }
        assertEquals(bad + others.length * 3, metric(get(server.port(), "/metrics").body(),
            "troupe_serve_bad_requests_total"), "a model not served counts as a bad request");
        // the same answer as GET /v1/models/<id> gives for that id
        HttpResponse<String> listed = get(server.port(), "/v1/models/gpt-3.5-turbo-instruct");
        HttpResponse<String> posted = post(server.port(), "{\"model\":\"gpt-3.5-turbo-instruct\"," + request + "}");
        assertEquals(404, listed.statusCode(), listed.body());
        assertEquals(listed.body(), posted.body());
        HttpResponse<String> numeric = post(server.port(), "{\"model\":3," + request + "}");
        assertEquals(400, numeric.statusCode(), numeric.body());
        assertEquals("model", field(numeric.body(), "param"));
        assertEquals("model must be a string", field(numeric.body(), "message"));
        // still serving
        assertEquals(field(plain.body(), "text"), field(post(server.port(), "{" + request + "}").body(), "text"));
    }

    @Test
    void shouldAnswerWithUserAsWithout() throws Exception {
        String request = "\"prompt\":\"To be\",\"max_tokens\":6,\"temperature\":0.9,\"seed\":4";
        HttpResponse<String> plain = post(server.port(), "{" + request + "}");
        HttpResponse<String> withUser = post(server.port(), "{" + request + ",\"user\":\"user-1234\"}");
        assertEquals(200, plain.statusCode(), plain.body());
        assertEquals(200, withUser.statusCode(), withUser.body());
        assertEquals(field(plain.body(), "text"), field(withUser.body(), "text"));
        HttpResponse<String> numeric = post(server.port(), "{" + request + ",\"user\":1234}");
        assertEquals(400, numeric.statusCode(), numeric.body());
        assertEquals("user", field(numeric.body(), "param"));
    }

    /**
     * {@code stream_options: {"include_usage": true}}: every chunk carries {@code "usage": null}, the
     * finish chunk too, and just before {@code [DONE]} a chunk of no choices carries the usage the whole
     * response gives for the same request; the text is the whole response's. With logprobs (their chunks
     * are written apart), a stop string, and echo of a scored prompt; include_usage false changes nothing.
     */
    @Test
    @SuppressWarnings("unchecked")
    void shouldEndTheStreamWithTheUsageChunkWhenIncludeUsage() throws Exception {
        String[] requests = {
            "\"prompt\":\"To be\",\"max_tokens\":8,\"temperature\":0",
            "\"prompt\":\"T\u00f6 be\",\"max_tokens\":17,\"temperature\":1.5,\"seed\":3,\"logprobs\":1,"
                + "\"stop\":[\"e\"]",
            "\"prompt\":\"Hi!\",\"max_tokens\":0,\"echo\":true",
        };
        for (String request : requests) {
            HttpResponse<String> whole = post(server.port(), "{" + request + "}");
            assertEquals(200, whole.statusCode(), whole.body());
            Map<String, Object> wholeDoc = (Map<String, Object>) Json.parse(whole.body());
            HttpResponse<String> streamed = post(server.port(), "{" + request + ",\"stream\":true,"
                + "\"stream_options\":{\"include_usage\":true}}");
            assertEquals(200, streamed.statusCode(), streamed.body());
            List<Map<String, Object>> chunks = chunks(streamed.body());
            assertTrue(chunks.size() >= 2, streamed.body());
            StringBuilder text = new StringBuilder();
            for (Map<String, Object> chunk : chunks.subList(0, chunks.size() - 1)) {
                assertTrue(chunk.containsKey("usage") && chunk.get("usage") == Json.NULL, "usage null: " + chunk);
                List<Map<String, Object>> choices = (List<Map<String, Object>>) chunk.get("choices");
                assertEquals(1, choices.size(), chunk.toString());
                text.append(choices.get(0).get("text"));
            }
            Map<String, Object> finish = ((List<Map<String, Object>>) chunks.get(chunks.size() - 2).get("choices"))
                .get(0);
            Map<String, Object> wholeChoice = ((List<Map<String, Object>>) wholeDoc.get("choices")).get(0);
            assertEquals(wholeChoice.get("finish_reason"), finish.get("finish_reason"), request);
            assertEquals(wholeChoice.get("text"), text.toString(), request);
            Map<String, Object> last = chunks.get(chunks.size() - 1);
            assertEquals(List.of(), last.get("choices"), "the usage chunk has no choices");
            assertEquals(wholeDoc.get("usage"), last.get("usage"), request);
            assertEquals(chunks.get(0).get("id"), last.get("id"), "the usage chunk is the completion's");
            assertEquals("text_completion", last.get("object"));
        }
        // include_usage false: the chunks as without stream_options, the usage in the finish chunk
        HttpResponse<String> off = post(server.port(), "{" + requests[0] + ",\"stream\":true,"
            + "\"stream_options\":{\"include_usage\":false}}");
        assertEquals(200, off.statusCode(), off.body());
        List<Map<String, Object>> chunks = chunks(off.body());
        for (Map<String, Object> chunk : chunks.subList(0, chunks.size() - 1)) {
            assertFalse(chunk.containsKey("usage"), chunk.toString());
        }
        Map<String, Object> finish = chunks.get(chunks.size() - 1);
        assertEquals("length", ((List<Map<String, Object>>) finish.get("choices")).get(0).get("finish_reason"));
        assertEquals("8", String.valueOf(((Map<String, Object>) finish.get("usage")).get("completion_tokens")));
    }

    /**
     * A request of more samples (prompts x best_of) than the server holds at once (max-batch + max-queue) is refused
     * with 400 naming what asked for them, not with a 429 that timing alone would decide; as many as the queue
     * holds are served whatever the timing.
     */
    @Test
    void shouldRefuseWith400ARequestOfMoreSamplesThanTheServerHoldsAtOnce() throws Exception {
        int max = ServeTestSupport.settings().maxBatch() + ServeTestSupport.settings().maxQueue();
        String[][] cases = {
            {"{\"prompt\":\"To be\",\"max_tokens\":1,\"n\":" + (max + 1) + "}", "n"},
            {"{\"prompt\":\"To be\",\"max_tokens\":1,\"n\":2,\"best_of\":" + (max + 1) + "}", "best_of"},
            {"{\"prompt\":[" + "\"To be\",".repeat(max) + "\"or not\"],\"max_tokens\":1}", "prompt"}};
        for (String[] c : cases) {
            HttpResponse<String> r = post(server.port(), c[0]);
            assertEquals(400, r.statusCode(), c[0] + " -> " + r.body());
            assertEquals(c[1], field(r.body(), "param"), r.body());
            assertTrue(field(r.body(), "message").contains("holds at most " + max + " requests at once"), r.body());
            assertTrue(r.headers().firstValue("Retry-After").isEmpty(), "no retry can help");
        }
        HttpResponse<String> full = post(server.port(), "{\"prompt\":\"To be\",\"max_tokens\":1,\"temperature\":0,"
            + "\"n\":" + ServeTestSupport.settings().maxQueue() + "}");
        assertEquals(200, full.statusCode(), full.body());
    }

    /**
     * Text with no UTF-8 form is refused naming its field, not served with characters replaced that the client
     * never sent: a prompt or stop string holding half of a surrogate pair (its bytes would be {@code ?}'s), a
     * body whose bytes are not valid UTF-8 (they would be U+FFFD's); a whole pair and valid bytes are served as
     * their bytes. Each refusal is counted and the server serves on.
     */
    @Test
    void shouldRefuseTextWithNoUtf8FormNamingTheField() throws Exception {
        String scored = ",\"max_tokens\":0,\"echo\":true}";
        HttpResponse<String> pair = post(server.port(), "{\"prompt\":\"a\\ud83d\\ude00\"" + scored);
        assertEquals(200, pair.statusCode(), pair.body());
        assertEquals("a\ud83d\ude00", field(pair.body(), "text"));
        assertEquals("5", field(pair.body(), "prompt_tokens"), "1 + the emoji's 4 UTF-8 bytes");
        double bad = metric(get(server.port(), "/metrics").body(), "troupe_serve_bad_requests_total");
        String[][] cases = {
            {"{\"prompt\":\"ab\\ud800\"" + scored, "prompt", "prompt: character 2 is \\ud800, half of a UTF-16"},
            {"{\"prompt\":[\"ok\",\"\\udfff\\ud83d\"]" + scored, "prompt", "prompt 1: character 0 is \\udfff"},
            {"{\"prompt\":\"ab\",\"max_tokens\":3,\"stop\":[\"x\",\"\\ud83d\"]}", "stop",
                "stop: character 0 is \\ud83d"},
        };
        for (String[] c : cases) {
            HttpResponse<String> r = post(server.port(), c[0]);
            assertEquals(400, r.statusCode(), c[0] + " -> " + r.body());
            assertEquals(c[1], field(r.body(), "param"), r.body());
            assertTrue(field(r.body(), "message").startsWith(c[2]), r.body());
        }
        byte[] valid = "{\"prompt\":\"\u00e9\",\"max_tokens\":0,\"echo\":true}".getBytes(StandardCharsets.UTF_8);
        HttpResponse<String> served = postBytes(valid);
        assertEquals(200, served.statusCode(), served.body());
        assertEquals("\u00e9", field(served.body(), "text"));
        byte[] invalid = valid.clone();
        invalid[11] = (byte) 0xff;                           // the first of the two bytes of its e-acute
        HttpResponse<String> r = postBytes(invalid);
        assertEquals(400, r.statusCode(), r.body());
        assertEquals("body", field(r.body(), "param"), r.body());
        assertTrue(field(r.body(), "message").startsWith("the body is not valid UTF-8: byte 11 of "), r.body());
        assertEquals(bad + cases.length + 1, metric(get(server.port(), "/metrics").body(),
            "troupe_serve_bad_requests_total"));
        assertEquals(200, post(server.port(), "{\"prompt\":\"ab\",\"max_tokens\":2}").statusCode());
    }

    /**
     * {@code logit_bias} keys that name one token twice ({@code "65"} and {@code "065"}) are refused, not the
     * later taken unseen; a bias that is not a number is shown as sent.
     */
    @Test
    void shouldRefuseALogitBiasThatNamesATokenTwice() throws Exception {
        String request = "{\"prompt\":\"ab\",\"max_tokens\":1,\"temperature\":0,\"logit_bias\":";
        HttpResponse<String> once = post(server.port(), request + "{\"65\":100}}");
        assertEquals(200, once.statusCode(), once.body());
        assertEquals("A", field(once.body(), "text"), "a bias of 100 forces the token");
        HttpResponse<String> twice = post(server.port(), request + "{\"65\":100,\"065\":-100}}");
        assertEquals(400, twice.statusCode(), twice.body());
        assertEquals("logit_bias", field(twice.body(), "param"));
        assertEquals("logit_bias names token 65 twice: \"065\" and an earlier key", field(twice.body(), "message"));
        HttpResponse<String> text = post(server.port(), request + "{\"65\":\"100\"}}");
        assertEquals(400, text.statusCode(), text.body());
        assertEquals("logit_bias of token 65 must be a number in [-100, 100]: \"100\"", field(text.body(), "message"));
    }

    private HttpResponse<String> postBytes(byte[] body) throws Exception {
        return ServeTestSupport.CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port()
            + "/v1/completions")).timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The JSON chunks of a stream, checking each event is {@code data: ...} and the last {@code [DONE]}. */
    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> chunks(String body) {
        String[] events = body.split("\n\n");
        assertEquals("data: [DONE]", events[events.length - 1], body);
        List<Map<String, Object>> out = new ArrayList<>();
        for (int i = 0; i < events.length - 1; i++) {
            assertTrue(events[i].startsWith("data: "), events[i]);
            out.add((Map<String, Object>) Json.parse(events[i].substring("data: ".length())));
        }
        return out;
    }
}
