package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.models.ParamSpec;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.models.checkpoint.ShardState;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.ParameterLayout;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.Quantization;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** A small random model and a real HTTP client for the serving tests. */
final class ServeTestSupport {
    static final GptConfig CFG = new GptConfig("test", 256, 32, 2, 4, 24, 1e-5f);

    private ServeTestSupport() {
    }

    static InferenceWeights weights(long seed) {
        return InferenceWeights.fromFlat(CFG, flat(seed), Quantization.NONE);
    }

    /** The parameters of {@link #weights} by name, as a checkpoint holds them. */
    static java.util.Map<String, float[]> parameters(long seed) {
        float[] flat = flat(seed);
        java.util.Map<String, float[]> p = new java.util.HashMap<>();
        for (ParamSpec s : ParameterLayout.full(CFG).specs()) {
            p.put(s.name(), java.util.Arrays.copyOfRange(flat, (int) s.localOffset(), (int) (s.localOffset()
                + s.numel())));
        }
        return p;
    }

    private static float[] flat(long seed) {
        ParameterLayout layout = ParameterLayout.full(CFG);
        float[] flat = new float[(int) layout.numel()];
        Random rnd = new Random(seed);
        for (ParamSpec s : layout.specs()) {
            boolean ln = s.name().contains("ln");
            for (long i = 0; i < s.numel(); i++) {
                float u = (float) (2 * rnd.nextDouble() - 1);
                flat[(int) (s.localOffset() + i)] = ln && s.name().endsWith("weight") ? 1f + 0.1f * u : 0.3f * u;
            }
        }
        return flat;
    }

    /** What {@code prompt} (its UTF-8 bytes) gives alone with {@code p}, without a server. */
    static io.troupe.models.infer.Generation offlineGeneration(InferenceWeights w, String prompt,
        io.troupe.models.infer.SamplingParams p, io.troupe.models.infer.KvPrecision kv) {
        io.troupe.models.infer.KvCachedGpt m = new io.troupe.models.infer.KvCachedGpt(w,
            new io.troupe.models.infer.PagedKvCache(w.config(), 4, 64, w.config().nLayer(), kv));
        io.troupe.models.infer.BatchScheduler s = new io.troupe.models.infer.BatchScheduler(m,
            new io.troupe.models.infer.BatchScheduler.Limits(1, 64, 1));
        byte[] b = prompt.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int[] tokens = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            tokens[i] = b[i] & 0xFF;
        }
        io.troupe.models.infer.Generation g = new io.troupe.models.infer.Generation(1, tokens, w.config().seqLen(), p,
            System.nanoTime(), Long.MAX_VALUE, io.troupe.models.infer.GenerationListener.NONE);
        s.submit(g);
        s.runToCompletion();
        return g;
    }

    static ServeSettings settings() {
        // small enough for the test model's 64 positions; the step thread not pinned (tests share the cores)
        return ServeSettings.defaults().toBuilder().port(0).tokenBudget(64).maxQueue(64).kvCacheMib(4)
            .kvBlockTokens(4).isolateStepCore(false).drainTimeoutMs(10_000).build();
    }

    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    static HttpResponse<String> post(int port, String body) throws IOException, InterruptedException {
        return CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
            .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Sends every body as a completion at once, without waiting for the answers. */
    static List<CompletableFuture<HttpResponse<String>>> send(int port, List<String> bodies) {
        List<CompletableFuture<HttpResponse<String>>> all = new ArrayList<>();
        for (String body : bodies) {
            all.add(CLIENT.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString()));
        }
        return all;
    }

    /** The {@code choices} part of each answer (its text and tokens), each a 200, waiting at most 120 s each. */
    static List<String> choices(List<CompletableFuture<HttpResponse<String>>> sent)
        throws Exception {
        List<String> out = new ArrayList<>();
        for (CompletableFuture<HttpResponse<String>> f : sent) {
            HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
            assertEquals(200, r.statusCode(), r.body());
            out.add(r.body().substring(r.body().indexOf("\"choices\"")));
        }
        return out;
    }

    /**
     * The text of each greedy completion ({@code max_tokens} 12, {@code temperature} 0) of {@code prompts},
     * sent to {@code server} all at once (so they share steps), each a 200, waiting at most 120 s each.
     */
    static List<String> greedyTexts(InferenceServer server, List<String> prompts) throws Exception {
        List<String> bodies = new ArrayList<>();
        for (String p : prompts) {
            bodies.add("{\"prompt\":\"" + p + "\",\"max_tokens\":12,\"temperature\":0}");
        }
        List<String> out = new ArrayList<>();
        for (CompletableFuture<HttpResponse<String>> r : send(server.port(), bodies)) {
            HttpResponse<String> resp = r.get(120, TimeUnit.SECONDS);
            assertEquals(200, resp.statusCode(), resp.body());
            out.add(field(resp.body(), "text"));
        }
        return out;
    }

    static HttpResponse<String> get(int port, String path) throws IOException, InterruptedException {
        return CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
            .timeout(Duration.ofSeconds(30)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The value of a metric line {@code name value} (labels included in name), or NaN. */
    static double metric(String text, String name) {
        for (String line : text.split("\n")) {
            if (line.startsWith(name + " ")) {
                return Double.parseDouble(line.substring(name.length() + 1).trim());
            }
        }
        return Double.NaN;
    }

    /** Polls {@code /health} until {@code ok} holds, for at most {@code timeoutMs}; returns its last body. */
    static String awaitHealth(int port, Predicate<HttpResponse<String>> ok, long timeoutMs) throws IOException,
        InterruptedException {
        long end = System.nanoTime() + timeoutMs * 1_000_000L;
        HttpResponse<String> h;
        do {
            h = get(port, "/health");
            if (ok.test(h)) {
                return h.body();
            }
            Thread.sleep(20);
        } while (System.nanoTime() < end);
        throw new AssertionError("/health never satisfied the condition in " + timeoutMs + " ms: " + h.statusCode()
            + " " + h.body());
    }

    /** Waits (30 s at most) until {@code /health} answers {@code status} with a body containing every one of
     * {@code parts}; returns the body. */
    static String awaitHealth(int port, int status, String... parts) throws IOException, InterruptedException {
        return awaitHealth(port, h -> h.statusCode() == status && List.of(parts).stream().allMatch(h.body()::contains),
            30_000);
    }

    /** Polls /metrics until {@code ok} holds or {@code timeoutMs} passes; returns the last text. */
    static String awaitMetrics(int port, Predicate<String> ok, long timeoutMs) throws IOException,
        InterruptedException {
        long end = System.nanoTime() + timeoutMs * 1_000_000L;
        String text;
        do {
            text = get(port, "/metrics").body();
            if (ok.test(text)) {
                return text;
            }
            Thread.sleep(5);
        } while (System.nanoTime() < end);
        throw new AssertionError("metrics never satisfied the condition in " + timeoutMs + " ms:\n" + text);
    }

    /** The "text" of a completion response (a flat string field; tests' own JSON). */
    static String field(String json, String name) {
        Object doc = Json.parse(json);
        return String.valueOf(find(doc, name));
    }

    static Object find(Object doc, String name) {
        if (doc instanceof java.util.Map<?, ?> m) {
            if (m.containsKey(name)) {
                return m.get(name);
            }
            for (Object v : m.values()) {
                Object f = find(v, name);
                if (f != null) {
                    return f;
                }
            }
        } else if (doc instanceof java.util.List<?> l) {
            for (Object v : l) {
                Object f = find(v, name);
                if (f != null) {
                    return f;
                }
            }
        }
        return null;
    }

    /** A checkpoint of {@link #CFG} as a 1x2 pipeline writes it into {@code dir}: two shards, blocks split. */
    static Path twoStageCheckpoint(Path dir) {
        return twoStageCheckpoint(dir, CFG);
    }

    /** A checkpoint of {@code cfg} (random weights) as a 1x2 pipeline writes it into {@code dir}. */
    static Path twoStageCheckpoint(Path dir, GptConfig cfg) {
        Random rnd = new Random(1);
        Map<String, ShardState> shards = new LinkedHashMap<>();
        int half = cfg.nLayer() / 2;
        ParameterLayout[] stages = {ParameterLayout.stage(cfg, 0, half, true, false),
            ParameterLayout.stage(cfg, half, cfg.nLayer(), false, true)};
        for (int s = 0; s < 2; s++) {
            ShardState shard = new ShardState(0);
            for (ParamSpec p : stages[s].specs()) {
                float[] v = new float[(int) p.numel()];
                for (int i = 0; i < v.length; i++) {
                    v[i] = p.name().contains("ln") && p.name().endsWith("weight") ? 1f
                        : (float) (rnd.nextGaussian() * 0.1);
                }
                shard.put(new ShardState.Entry(p.name(), p.shape(), v, new float[v.length], new float[v.length]));
            }
            shards.put(String.format("shard-g%02d.bin", s), shard);
        }
        return Checkpoints.write(dir, new Manifest(Manifest.FORMAT, 5, 5, 1, 2, "1x2x1", cfg, "test",
            List.of()), shards);
    }

    /**
     * Writes a {@code POST /v1/completions} of {@code body} on {@code socket} (a raw connection, so a test can
     * close it as a client does: a FIN, a reset), with {@code headers} (each ending in CRLF) beside the usual ones.
     */
    static void postRaw(java.net.Socket socket, String body, String headers) throws IOException {
        byte[] bytes = body.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        socket.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
            + "Content-Type: application/json\r\nContent-Length: " + bytes.length + "\r\n\r\n")
            .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        socket.getOutputStream().write(bytes);
        socket.getOutputStream().flush();
    }
}
