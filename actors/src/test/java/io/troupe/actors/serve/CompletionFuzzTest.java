package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.http.HttpResponse;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Random bodies never take the server down: every answer is 200 or 400, and it keeps serving. */
@Timeout(180)
class CompletionFuzzTest {
    private static final String VALID = "{\"prompt\":\"fuzz me\",\"max_tokens\":3,\"temperature\":0.5,\"top_p\":0.9,"
        + "\"seed\":7,\"stop\":[\"\\n\"],\"stream\":false}";
    private static final String ALPHABET = "{}[]\":,0123456789.eE+-truefalsnl \\u\u00e9abc";

    @Test
    void shouldAnswerEveryRandomBodyWith200Or400AndKeepServing() throws Exception {
        try (InferenceServer server = InferenceServer.start(ServeTestSupport.weights(4), ServeTestSupport.settings())) {
            Random rnd = new Random(11);
            int ok = 0;
            int bad = 0;
            for (int i = 0; i < 400; i++) {
                String body = switch (i % 4) {
                    case 0 -> randomChars(rnd, rnd.nextInt(60));
                    case 1 -> mutate(rnd, VALID);
                    case 2 -> new String(randomBytes(rnd, rnd.nextInt(80)),
                        java.nio.charset.StandardCharsets.ISO_8859_1);
                    default -> "{\"prompt\":" + randomValue(rnd, 0) + ",\"max_tokens\":" + randomValue(rnd, 0) + "}";
                };
                HttpResponse<String> r = post(server.port(), body);
                assertTrue(r.statusCode() == 200 || r.statusCode() == 400,
                    body + " -> " + r.statusCode() + " " + r.body());
                if (r.statusCode() == 200) {
                    ok++;
                } else {
                    bad++;
                    assertTrue(r.body().contains("\"param\""), r.body());
                }
            }
            System.out.printf("fuzz: %d answered 200, %d answered 400%n", ok, bad);
            assertEquals(200, get(server.port(), "/health").statusCode());
            assertEquals(200, post(server.port(), VALID).statusCode());
        }
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

    private static String randomValue(Random rnd, int depth) {
        return switch (depth > 2 ? rnd.nextInt(5) : rnd.nextInt(7)) {
            case 0 -> String.valueOf(rnd.nextInt(40) - 5);
            case 1 -> "\"" + randomChars(rnd, rnd.nextInt(8)).replace("\"", "").replace("\\", "") + "\"";
            case 2 -> rnd.nextBoolean() ? "true" : "null";
            case 3 -> String.valueOf(rnd.nextDouble() * 100);
            case 4 -> "1e" + rnd.nextInt(400);
            case 5 -> "[" + randomValue(rnd, depth + 1) + "," + randomValue(rnd, depth + 1) + "]";
            default -> "{\"k\":" + randomValue(rnd, depth + 1) + "}";
        };
    }
}
