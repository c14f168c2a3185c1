package io.troupe.actors.bench;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The serve bench's load generator: concurrent client threads sending prompts to a server's completions
 * endpoint (one keep-alive {@link SseSocketClient} each, or the JDK's HttpClient), the requests' JSON bodies,
 * the timing of a streamed or a whole response, and the server's step counters read from its metrics.
 *
 * <p>Threading: {@link #configure} once, before any load; then any thread.
 */
final class ServeLoad {
    /** Streaming clients (TTFT and TPOT measured) or whole responses (throughput only). */
    private static boolean stream = true;

    /** The load generator's clients: one blocking socket each ({@link SseSocketClient}), or the JDK's HttpClient. */
    private static boolean socketClient = true;

    private ServeLoad() {
    }

    /** Streamed responses or whole ones, and the socket client or the JDK's, for every request of the run. */
    static void configure(boolean streaming, boolean socket) {
        stream = streaming;
        socketClient = socket;
    }

    /** Sends {@code prompts} from {@code clients} concurrent client threads; the per-request results. */
    static List<double[]> load(HttpClient http, URI uri, List<String> prompts, int clients, int maxTokens)
        throws InterruptedException {
        List<double[]> results = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger next = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            Thread t = new Thread(() -> {
                int i;
                try (SseSocketClient socket = socketClient ? new SseSocketClient(uri) : null) {
                    while ((i = next.getAndIncrement()) < prompts.size()) {
                        try {
                            results.add(socket != null ? socket.post(prompts.get(i), maxTokens, i)
                                : once(http, uri, prompts.get(i), maxTokens, i));
                        } catch (IOException | InterruptedException e) {
                            throw new IllegalStateException("request " + i + " failed: " + e, e);
                        }
                    }
                }
            }, "serve-bench-client-" + c);
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        return results;
    }

    private static final String[] STEP_CYCLE_METRICS = {"troupe_serve_steps_total",
        "troupe_serve_step_forward_seconds_total", "troupe_serve_step_schedule_seconds_total",
        "troupe_serve_event_delivery_seconds_total", "troupe_serve_generated_tokens_total",
        "troupe_serve_step_sample_seconds_total", "troupe_serve_prefilled_beside_total",
        "troupe_serve_prefill_forward_seconds_total"};

    /**
     * The server's step counters: {steps, forward s, schedule s, delivery s, tokens, sample s, requests
     * prefilled beside the steps, prefill forward s} (0 where absent).
     */
    static double[] stepCycle(HttpClient http, URI metrics) throws IOException, InterruptedException {
        String text = http.send(HttpRequest.newBuilder(metrics).timeout(Duration.ofSeconds(30)).GET().build(),
            HttpResponse.BodyHandlers.ofString()).body();
        double[] out = new double[STEP_CYCLE_METRICS.length];
        for (String line : text.split("\n")) {
            for (int i = 0; i < out.length; i++) {
                if (line.startsWith(STEP_CYCLE_METRICS[i] + " ")) {
                    out[i] = Double.parseDouble(line.substring(STEP_CYCLE_METRICS[i].length() + 1).trim());
                }
            }
        }
        return out;
    }

    private static final Pattern COMPLETION_TOKENS = Pattern.compile("\"completion_tokens\":(\\d+)");

    static boolean isStreaming() {
        return stream;
    }

    /** A request's JSON body (sampled at temperature 0.8 with the request's own seed). */
    static String body(String prompt, int maxTokens, int seed) {
        return "{\"prompt\":" + quote(prompt) + ",\"max_tokens\":" + maxTokens + ",\"temperature\":0.8,\"seed\":"
            + seed + ",\"stream\":" + stream + "}";
    }

    /** One streaming request: {completion tokens, ttft ms, tpot ms}. */
    private static double[] once(HttpClient http, URI uri, String prompt, int maxTokens,
        int seed) throws IOException, InterruptedException {
        String body = body(prompt, maxTokens, seed);
        long start = System.nanoTime();
        HttpResponse<java.util.stream.Stream<String>> r = http.send(HttpRequest.newBuilder(uri)
            .timeout(Duration.ofMinutes(10)).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
            HttpResponse.BodyHandlers.ofLines());
        if (r.statusCode() != 200) {
            throw new IOException("status " + r.statusCode());
        }
        if (!stream) {
            String all = String.join("\n", r.body().toList());
            return wholeResponse(all, start);
        }
        StreamTimer timer = new StreamTimer();
        r.body().forEach(line -> timer.line(line, System.nanoTime()));
        return timer.result(start);
    }

    /** A whole (not streamed) response: {completion tokens, request latency ms, 0}. */
    static double[] wholeResponse(String all, long start) throws IOException {
        Matcher m = COMPLETION_TOKENS.matcher(all);
        if (!m.find()) {
            throw new IOException("response without usage: " + all);
        }
        double ms = (System.nanoTime() - start) / 1e6;
        return new double[] {Integer.parseInt(m.group(1)), ms, 0};
    }

    /** Times a streamed response from its lines: the first and last token events, the tokens from the usage. */
    static final class StreamTimer {
        private long first;
        private long last;
        private int tokens = -1;

        void line(String line, long now) {
            if (!line.startsWith("data: ")) {
                return;
            }
            if (line.contains("\"usage\"")) {        // the final event (finish reason, usage)
                Matcher m = COMPLETION_TOKENS.matcher(line);
                if (m.find()) {
                    tokens = Integer.parseInt(m.group(1));
                }
                return;
            }
            if (line.equals("data: [DONE]")) {
                return;
            }
            if (first == 0) {
                first = now;
            }
            last = now;
        }

        /** {completion tokens, ttft ms, tpot ms} of a request sent at {@code start}. */
        double[] result(long start) throws IOException {
            if (tokens < 0) {
                throw new IOException("stream ended without usage");
            }
            double ttftMs = (first - start) / 1e6;
            double tpotMs = tokens > 1 ? (last - first) / 1e6 / (tokens - 1) : 0;
            return new double[] {tokens, ttftMs, tpotMs};
        }
    }

    private static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }
}
