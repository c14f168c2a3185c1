package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The HTTP surface of a real server on 127.0.0.1 through java.net.http: the model listing, bad input answered 400
 * naming the field, {@code /metrics}, and the routing layer's refusals in the JSON error shape.
 */
@Timeout(120)
class InferenceServerHttpTest extends InferenceServerFixture {
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
        // a body over the size limit, declared by its Content-Length: refused before any of it is read (a client
        // still writing a large body may see its connection reset before it reads that answer, so none is sent)
        String big = rawExchange(server.port(), "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "Content-Type: application/json\r\nContent-Length: " + (9 << 20) + "\r\nConnection: close\r\n\r\n");
        int split = big.indexOf("\r\n\r\n");
        assertTrue(big.startsWith("HTTP/1.1 413 ") && split > 0, big);
        assertEquals("content_too_large", field(big.substring(split + 4), "code"), big);
        // the server's own answers are as before
        assertEquals("model_not_found", field(get(server.port(), "/v1/models/gpt-4").body(), "code"));
        assertEquals(200, post(server.port(), "{\"prompt\":\"a\",\"max_tokens\":2}").statusCode(), "still serving");
    }

    /** Writes {@code raw} (ISO-8859-1) on a new connection and reads the answer until the server closes it. */
    private static String rawExchange(int port, String raw) throws IOException {
        try (Socket socket = new Socket("127.0.0.1", port)) {
            socket.setSoTimeout(30_000);
            socket.getOutputStream().write(raw.getBytes(StandardCharsets.ISO_8859_1));
            socket.getOutputStream().flush();
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
