package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What the HTTP layer refuses before routing (a URI too long 414, a header too large 431, an illegal
 * request-target, binary junk or a malformed header 400, an unknown method 501, an HTTP version it does not
 * speak 505), written as raw bytes on a socket to a real server on 127.0.0.1: each is answered with its status
 * in the JSON error shape of the server's other refusals ({@link JsonParsingErrorHandler}), counted once by its
 * status in that server's {@code /metrics} ({@code troupe_serve_http_refused_total}) and in no other server's of
 * the same JVM, and after each the server goes on serving.
 */
@Timeout(120)
class HttpParsingErrorsTest {
    private static final int[] STATUSES = {400, 414, 431, 501, 505};
    private static InferenceServer server;
    /** A second server in the same JVM, sent nothing: it counts none of the first one's refusals. */
    private static InferenceServer other;

    @BeforeAll
    static void start() {
        server = InferenceServer.start(ServeTestSupport.weights(4), ServeTestSupport.settings());
        other = InferenceServer.start(ServeTestSupport.weights(4), ServeTestSupport.settings());
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
        if (other != null) {
            other.close();
        }
    }

    @Test
    void shouldAnswerAnOverLongUriInJson() throws Exception {
        assertRefused("GET /v1/models/" + "a".repeat(3000) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            414, "uri_too_long", "uri length");
    }

    @Test
    void shouldAnswerAGiantHeaderInJson() throws Exception {
        assertRefused("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + "b".repeat(10_000)
            + "\r\n\r\n", 431, "request_header_fields_too_large", "header");
    }

    @Test
    void shouldAnswerAGarbageRequestLineInJson() throws Exception {
        assertRefused("GET /\u0001\u0002 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "bad_request", "request");
    }

    @Test
    void shouldAnswerBinaryJunkInJson() throws Exception {
        // the first bytes of a TLS handshake, sent to the plain-HTTP port
        assertRefused("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u00fc\u0003\u0003\r\n\r\n", 400,
            "bad_request", "method");
    }

    @Test
    void shouldAnswerAnUnknownMethodInJson() throws Exception {
        assertRefused("BREW /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, "not_implemented",
            "method");
    }

    @Test
    void shouldAnswerAnUnknownHttpVersionInJson() throws Exception {
        assertRefused("GET /health HTTP/3.7\r\nHost: 127.0.0.1\r\n\r\n", 505,
            "http_version_not_supported", "version");
    }

    @Test
    void shouldAnswerAMalformedHeaderInJson() throws Exception {
        assertRefused("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400,
            "bad_request", "content-length");
    }

    /**
     * Sends {@code raw}: status, content type, and a JSON body whose {@code error} names the problem; the refusal
     * counted once under its status in {@code /metrics}, by this server alone; then a normal request served.
     */
    private static void assertRefused(String raw, int status, String code, String messageWord)
        throws Exception {
        double before = refused(server, status);
        String response = request(raw);
        assertEquals(before + 1, refused(server, status), "counted under " + status);
        for (int s : STATUSES) {
            assertEquals(0, refused(other, s), "the other server counts none under " + s);
        }
        int split = response.indexOf("\r\n\r\n");
        assertTrue(split > 0, "a whole response: " + response);
        String head = response.substring(0, split).toLowerCase(Locale.ROOT);
        String body = response.substring(split + 4);
        assertTrue(head.startsWith("http/1.1 " + status + " "), response);
        assertTrue(head.contains("\r\ncontent-type: application/json"), response);
        Map<?, ?> error = (Map<?, ?>) ((Map<?, ?>) Json.parse(body)).get("error");
        assertTrue(error != null, body);
        assertEquals(code, error.get("code"), body);
        assertEquals(status >= 500 ? "server_error" : "invalid_request_error", error.get("type"), body);
        assertEquals(Json.NULL, error.get("param"), body);
        assertTrue(String.valueOf(error.get("message")).toLowerCase(Locale.ROOT).contains(messageWord), body);
        // bad input never takes the server down
        assertEquals(200, get(server.port(), "/health").statusCode());
        assertEquals(200, post(server.port(), "{\"prompt\":\"ok\",\"max_tokens\":2}").statusCode());
    }

    /** The HTTP layer's refusals with {@code status} that {@code s}'s {@code /metrics} counts. */
    private static double refused(InferenceServer s, int status) throws Exception {
        return metric(get(s.port(), "/metrics").body(), "troupe_serve_http_refused_total{status=\"" + status + "\"}");
    }

    /** Writes {@code raw} (ISO-8859-1 bytes) on a new connection and reads the answer to the connection's end. */
    private static String request(String raw) throws IOException {
        try (Socket socket = new Socket("127.0.0.1", server.port())) {
            socket.setSoTimeout(30_000);
            OutputStream out = socket.getOutputStream();
            out.write(raw.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
