package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.field;
import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Fuzzed bodies, through java.net.http against a real server on 127.0.0.1, seeded: random valid bodies
 * (every field at random values in its range, in random order) are all served; a valid body with one
 * value made junk (a wrong type, a number out of range, a huge string, nested junk, unicode, null) is
 * served or refused naming a field; one with a key misspelt or unknown is refused naming that key;
 * characters and bytes at random are answered 200, 400 or 404. The server keeps serving throughout.
 */
@Timeout(240)
class CompletionFuzzTest {
    private static final String SERVED = ServeTestSupport.CFG.name();
    private static final int CONTEXT = ServeTestSupport.CFG.seqLen();
    private static final int VOCAB = ServeTestSupport.CFG.vocabSize();
    private static final int REQUESTS = 400;
    /** Valid bodies are two in five: each must be served. */
    private static final int VALID_SENT = REQUESTS * 2 / 5;
    /** Of the junk values, nulls and values that happen to be in range are served: at least this many. */
    private static final int MIN_JUNK_SERVED = 5;
    private static final String VALID = "{\"prompt\":\"fuzz me\",\"max_tokens\":3,\"temperature\":0.5,\"top_p\":0.9,"
        + "\"seed\":7,\"stop\":[\"\\n\"],\"stream\":false}";
    private static final String ALPHABET = "{}[]\":,0123456789.eE+-truefalsnl \\u\u00e9abc";
    /** Text for prompts and strings: ASCII, two-, three- and four-byte characters. */
    private static final String TEXT = "abcXYZ 019.,;:!?\n\t\"\\/\u00e9\u00df\u0416\u4e2d\u20ac\ud83d\ude00";
    private static final int[] TEXT_CODE_POINTS = TEXT.codePoints().toArray();
    private static final String[] UNKNOWN = {"max_token", "stop_sequences", "Model", "prompt ", "", "\u00e9cho",
        "temperature\u0000", "frequency", "messages", "tools", "response_format", "top_k", "n_", "x".repeat(100)};

    @Test
    void shouldServeValidBodiesRefuseBrokenOnesNamingTheFieldAndKeepServing() throws Exception {
        try (InferenceServer server = InferenceServer.start(ServeTestSupport.weights(4), ServeTestSupport.settings())) {
            Random rnd = new Random(11);
            int[] sent = new int[4];
            int[][] byStatus = new int[4][4];                  // kind x {200, 400, 404, 429}
            for (int i = 0; i < REQUESTS; i++) {
                int kind = switch (i % 5) {
                    case 0, 1 -> 0;
                    case 2 -> 1;
                    case 3 -> 2;
                    default -> 3;
                };
                sent[kind]++;
                HttpResponse<String> r = switch (kind) {
                    case 0 -> valid(server, rnd);
                    case 1 -> junkValue(server, rnd);
                    case 2 -> badKey(server, rnd);
                    default -> randomText(server, rnd, i);
                };
                byStatus[kind][switch (r.statusCode()) {
                    case 200 -> 0;
                    case 400 -> 1;
                    case 404 -> 2;
                    default -> 3;
                }]++;
            }
            String[] kinds = {"valid", "junk value", "bad key", "random text"};
            for (int k = 0; k < kinds.length; k++) {
                System.out.printf("fuzz %-11s: %3d sent, %3d answered 200, %3d 400, %3d 404, %3d 429%n", kinds[k],
                    sent[k], byStatus[k][0], byStatus[k][1], byStatus[k][2], byStatus[k][3]);
            }
            assertEquals(VALID_SENT, byStatus[0][0], "every valid body is served");
            assertTrue(byStatus[1][0] >= MIN_JUNK_SERVED, "junk values served: " + byStatus[1][0]);
            assertEquals(0, byStatus[2][0], "no body with an unknown key is served");
            int refused = 0;
            for (int[] s : byStatus) {
                refused += s[1] + s[2];
            }
            String metrics = get(server.port(), "/metrics").body();
            assertEquals(refused, metric(metrics, "troupe_serve_bad_requests_total"), "each refusal counted once");
            assertEquals(200, get(server.port(), "/health").statusCode());
            assertEquals(200, post(server.port(), VALID).statusCode());
        }
    }

    /** A random valid body: served, with a choice for each prompt times {@code n}, or a whole stream. */
    private static HttpResponse<String> valid(InferenceServer server, Random rnd) throws Exception {
        Map<String, String> body = validFields(rnd);
        HttpResponse<String> r = post(server.port(), render(body, rnd));
        assertEquals(200, r.statusCode(), body + " -> " + r.body());
        if ("true".equals(body.get("stream"))) {
            assertTrue(r.body().startsWith("data: {") && r.body().endsWith("data: [DONE]\n\n"), r.body());
            return r;
        }
        Map<?, ?> doc = (Map<?, ?>) Json.parse(r.body());
        assertEquals(SERVED, doc.get("model"));
        int prompts = body.get("prompt").startsWith("[\"") || body.get("prompt").startsWith("[[")
            ? ((List<?>) Json.parse(body.get("prompt"))).size() : 1;
        int n = body.containsKey("n") ? Integer.parseInt(body.get("n")) : 1;
        assertEquals(prompts * n, ((List<?>) doc.get("choices")).size(), body + " -> " + r.body());
        return r;
    }

    /**
     * A valid body with one field's value made junk: served, refused naming a field (the junk one, or one
     * it no longer agrees with), or, for a model of another name, not found.
     */
    private static HttpResponse<String> junkValue(InferenceServer server, Random rnd) throws Exception {
        Map<String, String> body = validFields(rnd);
        // model one time in five: its junk strings are names of other models
        String key = rnd.nextInt(5) == 0 ? "model"
            : CompletionRequest.FIELDS.get(rnd.nextInt(CompletionRequest.FIELDS.size()));
        String junk = junk(rnd, true);
        body.put(key, junk);
        HttpResponse<String> r = post(server.port(), render(body, rnd));
        String what = key + "=" + shown(junk) + " -> " + shown(r.body());
        Object value = parsed(junk);
        if (value == null) {
            // past what the server parses (nesting, a number's length): the body is refused as a whole
            assertEquals(400, r.statusCode(), what);
            assertEquals("body", field(r.body(), "param"), what);
            return r;
        }
        if (key.equals("model") && value instanceof String s && !s.equals(SERVED)) {
            assertEquals(404, r.statusCode(), what);
            assertEquals("model_not_found", field(r.body(), "code"), what);
            return r;
        }
        if (r.statusCode() == 429) {
            // more samples than the queue holds, not more than the server holds at once (those are 400): the
            // samples that found no place, running or waiting, refuse the whole request as a full queue
            assertTrue((key.equals("n") || key.equals("best_of")) && value instanceof BigDecimal d
                && d.intValue() > ServeTestSupport.settings().maxQueue(), what);
            return r;
        }
        assertTrue(r.statusCode() == 200 || r.statusCode() == 400, what);
        if (r.statusCode() == 400) {
            assertTrue(CompletionRequest.FIELDS.contains(field(r.body(), "param")), what);
        }
        return r;
    }

    /**
     * A body with one key misspelt, or one unknown key added: at the top, its other values valid or
     * one of them junk (or the model another), refused naming that key before any value or the model is
     * looked at; in {@code stream_options},
     * refused naming {@code stream_options}.
     */
    private static HttpResponse<String> badKey(InferenceServer server, Random rnd) throws Exception {
        Map<String, String> body = validFields(rnd);
        String key;
        String param;
        if (body.containsKey("stream_options") && rnd.nextBoolean()) {
            key = rnd.nextBoolean() ? misspelt(rnd, "include_usage") : UNKNOWN[rnd.nextInt(UNKNOWN.length)];
            body.put("stream_options", "{" + Json.quote(key) + ":" + junk(rnd, false) + "}");
            param = "stream_options";
        } else {
            if (rnd.nextInt(3) == 0) {
                body.put(CompletionRequest.FIELDS.get(rnd.nextInt(CompletionRequest.FIELDS.size())),
                    junk(rnd, false));
            } else if (rnd.nextInt(3) == 0) {
                body.put("model", "\"gpt-4\"");         // another model: the unknown key is refused first
            }
            if (rnd.nextBoolean()) {
                List<String> keys = new ArrayList<>(body.keySet());
                String was = keys.get(rnd.nextInt(keys.size()));
                key = misspelt(rnd, was);
                body.put(key, body.remove(was));
            } else {
                key = UNKNOWN[rnd.nextInt(UNKNOWN.length)];
                body.put(key, junk(rnd, false));
            }
            param = key.length() > 64 ? key.substring(0, 64) + "..." : key;
        }
        HttpResponse<String> r = post(server.port(), render(body, rnd));
        String what = key + " in " + shown(body.toString()) + " -> " + shown(r.body());
        assertEquals(400, r.statusCode(), what);
        assertEquals(param, field(r.body(), "param"), what);
        assertTrue(field(r.body(), "message").startsWith("unknown field "), what);
        return r;
    }

    /** Characters edited in a valid body, characters from JSON's alphabet, or bytes: 200, 400 or 404. */
    private static HttpResponse<String> randomText(InferenceServer server, Random rnd, int i) throws Exception {
        String body = switch (i / 5 % 3) {
            case 0 -> mutate(rnd, rnd.nextBoolean() ? VALID : render(validFields(rnd), rnd));
            case 1 -> randomChars(rnd, rnd.nextInt(60));
            default -> new String(randomBytes(rnd, rnd.nextInt(80)), StandardCharsets.ISO_8859_1);
        };
        HttpResponse<String> r = post(server.port(), body);
        String what = shown(body) + " -> " + r.statusCode() + " " + shown(r.body());
        assertTrue(r.statusCode() == 200 || r.statusCode() == 400 || r.statusCode() == 404, what);
        if (r.statusCode() == 400) {
            assertTrue(r.body().contains("\"param\""), what);
        } else if (r.statusCode() == 404) {
            assertEquals("model_not_found", field(r.body(), "code"), what);
        }
        return r;
    }

    /**
     * A valid body's fields (raw JSON values by name): a prompt of 1 to context-1 tokens (text, token
     * ids, or a few of either), and each other field absent or at a random value in its range.
     */
    private static Map<String, String> validFields(Random rnd) {
        Map<String, String> f = new LinkedHashMap<>();
        boolean stream = rnd.nextInt(4) == 0;
        int prompts = stream || rnd.nextInt(3) > 0 ? 1 : 2 + rnd.nextInt(2);
        boolean ids = rnd.nextBoolean();
        List<String> each = new ArrayList<>();
        for (int p = 0; p < prompts; p++) {
            each.add(ids ? tokenIds(rnd, 1 + rnd.nextInt(CONTEXT - 1)) : Json.quote(text(rnd, CONTEXT - 1)));
        }
        f.put("prompt", prompts == 1 ? each.get(0) : "[" + String.join(",", each) + "]");
        maybe(rnd, f, "model", rnd.nextBoolean() ? "null" : Json.quote(SERVED));
        boolean echo = !stream && rnd.nextInt(4) == 0;
        maybe(rnd, f, "max_tokens", String.valueOf((echo ? 0 : 1) + rnd.nextInt(5)));
        if (echo) {
            f.put("echo", "true");
        }
        maybe(rnd, f, "temperature", rnd.nextInt(3) == 0 ? "0" : String.valueOf(rnd.nextDouble() * 2));
        maybe(rnd, f, "top_p", String.valueOf(0.05 + 0.95 * rnd.nextDouble()));
        maybe(rnd, f, "seed", String.valueOf(rnd.nextLong()));
        maybe(rnd, f, "stop", rnd.nextBoolean() ? Json.quote(text(rnd, 3))
            : "[" + Json.quote(text(rnd, 3)) + "," + Json.quote(text(rnd, 5)) + "]");
        if (stream) {
            f.put("stream", "true");
            maybe(rnd, f, "stream_options", rnd.nextBoolean() ? "{}" : "{\"include_usage\":" + rnd.nextBoolean() + "}");
        } else {
            maybe(rnd, f, "stream", "false");
            int n = 1 + rnd.nextInt(2);
            maybe(rnd, f, "n", String.valueOf(n));
            maybe(rnd, f, "best_of", String.valueOf((f.containsKey("n") ? n : 1) + rnd.nextInt(2)));
        }
        maybe(rnd, f, "logprobs", rnd.nextBoolean() ? "null" : String.valueOf(rnd.nextInt(6)));
        maybe(rnd, f, "frequency_penalty", String.valueOf(rnd.nextDouble() * 4 - 2));
        maybe(rnd, f, "presence_penalty", String.valueOf(rnd.nextInt(5) - 2));
        maybe(rnd, f, "logit_bias", "{\"" + rnd.nextInt(VOCAB) + "\":" + (rnd.nextDouble() * 200 - 100) + "}");
        maybe(rnd, f, "user", Json.quote(text(rnd, 40)));
        maybe(rnd, f, "suffix", rnd.nextBoolean() ? "null" : "\"\"");
        maybe(rnd, f, "deadline_ms", String.valueOf(30_000 + rnd.nextInt(30_000)));
        return f;
    }

    /** {@code json} as the server reads it, or null when it refuses it as malformed. */
    private static Object parsed(String json) {
        try {
            return Json.parse(json);
        } catch (Json.JsonException e) {
            return null;
        }
    }

    /**
     * A JSON value that is junk for most fields: with {@code malformed}, sometimes past what the server
     * parses (arrays nested too deep, a number too long), which refuses the body as a whole.
     */
    private static String junk(Random rnd, boolean malformed) {
        String j = anyJunk(rnd);
        while (!malformed && parsed(j) == null) {
            j = anyJunk(rnd);
        }
        return j;
    }

    private static String anyJunk(Random rnd) {
        return switch (rnd.nextInt(12)) {
            case 0 -> "null";
            case 1 -> rnd.nextBoolean() ? "true" : "false";
            case 2 -> new String[] {"-1", "0", "1", "2", "0.5", "-0", "100", "129", "256", "1e3"}[rnd.nextInt(10)];
            case 3 -> new String[] {"1e400", "-1e400", "1e-400", "9223372036854775808", "-9223372036854775809",
                "1" + "0".repeat(400), "3.000000000000000000001", "-2.5"}[rnd.nextInt(8)];
            case 4 -> Json.quote("x".repeat(1_000 + rnd.nextInt(200_000)));
            case 5 -> Json.quote(text(rnd, 1 + rnd.nextInt(60)));
            case 6 -> new String[] {"\"\\ud800\"", "\"\\u0000\"", "\"\\udfff\\ud800\"", "\"\"", "\"\\ufeff\"",
                Json.quote(SERVED), Json.quote(SERVED.toUpperCase(java.util.Locale.ROOT)), "\"gpt-4\""}[rnd.nextInt(8)];
            case 7 -> "{\"k\":" + randomValue(rnd, 0) + ",\"\u00e9\":[null,{}]}";
            case 8 -> "[" + randomValue(rnd, 0) + "," + randomValue(rnd, 0) + "]";
            case 9 -> "{}";
            case 10 -> randomValue(rnd, 0);
            default -> {
                int depth = 65 + rnd.nextInt(40);
                yield "[".repeat(depth) + "]".repeat(depth);
            }
        };
    }

    /** {@code key} with a letter dropped, added, changed or swapped, or its case changed: never a field. */
    private static String misspelt(Random rnd, String key) {
        while (true) {
            StringBuilder sb = new StringBuilder(key);
            int at = rnd.nextInt(key.length());
            switch (rnd.nextInt(5)) {
                case 0 -> sb.deleteCharAt(at);
                case 1 -> sb.insert(at, (char) ('a' + rnd.nextInt(26)));
                case 2 -> sb.setCharAt(at, (char) ('a' + rnd.nextInt(26)));
                case 3 -> {
                    if (at + 1 < sb.length()) {
                        sb.setCharAt(at, key.charAt(at + 1));
                        sb.setCharAt(at + 1, key.charAt(at));
                    }
                }
                default -> sb.setCharAt(at, Character.toUpperCase(key.charAt(at)));
            }
            String out = sb.toString();
            if (!CompletionRequest.FIELDS.contains(out) && !CompletionRequest.STREAM_OPTIONS.contains(out)) {
                return out;
            }
        }
    }

    /** Puts {@code value} under {@code key} two times in three. */
    private static void maybe(Random rnd, Map<String, String> f, String key, String value) {
        if (rnd.nextInt(3) > 0) {
            f.put(key, value);
        }
    }

    /** The fields as a JSON object, in random order. */
    private static String render(Map<String, String> fields, Random rnd) {
        List<String> keys = new ArrayList<>(fields.keySet());
        Collections.shuffle(keys, rnd);
        StringBuilder sb = new StringBuilder("{");
        for (String k : keys) {
            sb.append(sb.length() > 1 ? "," : "").append(Json.quote(k)).append(':').append(fields.get(k));
        }
        return sb.append('}').toString();
    }

    /** Random text of 1 to {@code maxBytes} UTF-8 bytes. */
    private static String text(Random rnd, int maxBytes) {
        StringBuilder sb = new StringBuilder();
        int bytes = 0;
        int want = 1 + rnd.nextInt(maxBytes);
        while (true) {
            String c = Character.toString(TEXT_CODE_POINTS[rnd.nextInt(TEXT_CODE_POINTS.length)]);
            int b = c.getBytes(StandardCharsets.UTF_8).length;
            if (bytes + b > want) {
                return bytes == 0 ? "a" : sb.toString();
            }
            sb.append(c);
            bytes += b;
        }
    }

    private static String tokenIds(Random rnd, int length) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < length; i++) {
            sb.append(i == 0 ? "" : ",").append(rnd.nextInt(VOCAB));
        }
        return sb.append(']').toString();
    }

    private static String shown(String s) {
        return s.length() > 300 ? s.substring(0, 300) + "...(" + s.length() + " chars)" : s;
    }

    private static String randomChars(Random rnd, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.append(ALPHABET.charAt(rnd.nextInt(ALPHABET.length())));
        }
        return sb.toString();
    }

    private static byte[] randomBytes(Random rnd, int n) {
        byte[] b = new byte[n];
        rnd.nextBytes(b);
        return b;
    }

    private static String mutate(Random rnd, String s) {
        StringBuilder sb = new StringBuilder(s);
        for (int k = 0; k < 1 + rnd.nextInt(3); k++) {
            int at = rnd.nextInt(sb.length());
            switch (rnd.nextInt(3)) {
                case 0 -> sb.deleteCharAt(at);
                case 1 -> sb.insert(at, ALPHABET.charAt(rnd.nextInt(ALPHABET.length())));
                default -> sb.setCharAt(at, ALPHABET.charAt(rnd.nextInt(ALPHABET.length())));
            }
        }
        return sb.toString();
    }

    /** A random JSON value, nested up to three deep. */
    private static String randomValue(Random rnd, int depth) {
        return switch (depth > 2 ? rnd.nextInt(5) : rnd.nextInt(7)) {
            case 0 -> String.valueOf(rnd.nextInt(40) - 5);
            case 1 -> Json.quote(text(rnd, 12));
            case 2 -> rnd.nextBoolean() ? "true" : "null";
            case 3 -> String.valueOf(rnd.nextDouble() * 100);
            case 4 -> "1e" + rnd.nextInt(400);
            case 5 -> "[" + randomValue(rnd, depth + 1) + "," + randomValue(rnd, depth + 1) + "]";
            default -> "{\"k\":" + randomValue(rnd, depth + 1) + "}";
        };
    }
}
