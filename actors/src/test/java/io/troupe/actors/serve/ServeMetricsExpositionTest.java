package io.troupe.actors.serve;

import static io.troupe.actors.serve.ServeTestSupport.get;
import static io.troupe.actors.serve.ServeTestSupport.metric;
import static io.troupe.actors.serve.ServeTestSupport.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.metrics.PrometheusText;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real server's {@code GET /metrics} on 127.0.0.1, scraped as Prometheus does: strict text format with its
 * content type, whole texts for concurrent scrapers while requests run, counters that never go down, other methods
 * refused with 405 naming GET, and the gauges of work back at 0 once every request ended, a cancelled one included.
 */
@Timeout(120)
class ServeMetricsExpositionTest extends InferenceServerFixture {
    private static final String GAUGES_OF_WORK = "troupe_serve_queue_depth troupe_serve_requests_in_flight "
        + "troupe_serve_running_batch_size troupe_serve_kv_cache_blocks_used troupe_serve_steps_in_flight";

    private static HttpResponse<String> send(int port, String method) throws Exception {
        return ServeTestSupport.CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
            .timeout(Duration.ofSeconds(30)).method(method, HttpRequest.BodyPublishers.noBody()).build(),
            HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void shouldServeStrictTextFormatWithItsContentTypeAndRefuseOtherMethods() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        assertEquals(200, post(server.port(), "{\"prompt\":\"Hello\",\"max_tokens\":6}").statusCode());
        assertEquals(400, post(server.port(), "{\"prompt\":\"Hello\",\"max_tokens\":-1}").statusCode());
        HttpResponse<String> r = get(server.port(), "/metrics");
        assertEquals(200, r.statusCode());
        assertEquals("text/plain; version=0.0.4; charset=utf-8",
            r.headers().firstValue("Content-Type").orElse("").toLowerCase(java.util.Locale.ROOT));
        PrometheusText p = PrometheusText.check(r.body());
        assertEquals(1, p.value("troupe_serve_time_to_first_token_seconds_count"));
        assertEquals(5, p.value("troupe_serve_time_per_output_token_seconds_count"));
        assertEquals(1, p.value("troupe_serve_bad_requests_total"));
        for (String method : new String[] {"HEAD", "POST", "DELETE"}) {
            HttpResponse<String> refused = send(server.port(), method);
            assertEquals(405, refused.statusCode(), method);
            assertEquals("GET", refused.headers().firstValue("Allow").orElse(""), method);
        }
        assertEquals(200, get(server.port(), "/metrics").statusCode(), "the endpoint still serves");
    }

    /** The table of docs/serving.md lists every {@code troupe_serve_} family the server serves, and no other. */
    @Test
    void shouldServeExactlyTheMetricsTheServingGuideLists() throws Exception {
        InferenceServer server = start(ServeTestSupport.settings());
        assertEquals(200, post(server.port(), "{\"prompt\":\"Hello\",\"max_tokens\":3}").statusCode());
        Set<String> served = new TreeSet<>();
        for (String line : get(server.port(), "/metrics").body().split("\n")) {
            if (line.startsWith("# TYPE ")) {
                served.add(line.split(" ")[2]);
            }
        }
        String guide = Files.readString(Path.of("..", "docs", "serving.md"));
        Set<String> listed = new TreeSet<>();
        Matcher row = Pattern.compile("(?m)^\\| `(troupe_serve_[a-z_]+)[^`]*` \\|").matcher(guide);
        while (row.find()) {
            listed.add(row.group(1));
        }
        assertEquals(served, listed, "docs/serving.md's table of metrics");
    }

    /**
     * Four scrapers while twelve requests decode: each text passes the strict reader and no counter, histogram
     * count or bucket a scraper saw goes down in its next text.
     */
    @Test
    void shouldGiveConcurrentScrapersWholeTextsWhileRequestsRun() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 5);
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            bodies.add("{\"prompt\":\"p" + i + "\",\"max_tokens\":" + (4 + i) + ",\"stream\":" + (i % 2 == 0) + "}");
        }
        List<CompletableFuture<HttpResponse<String>>> sent = ServeTestSupport.send(server.port(), bodies);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Integer>> scrapers = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                scrapers.add(pool.submit((Callable<Integer>) () -> {
                    Map<String, Double> last = Map.of();
                    int n = 0;
                    while (n < 30 || !sent.stream().allMatch(CompletableFuture::isDone)) {
                        PrometheusText p = PrometheusText.check(get(server.port(), "/metrics").body());
                        for (Map.Entry<String, Double> e : last.entrySet()) {
                            String k = e.getKey();
                            if (k.contains("_total") || k.contains("_bucket") || k.endsWith("_count")) {
                                assertTrue(p.value(k) >= e.getValue(), k + " went down");
                            }
                        }
                        last = p.series();
                        n++;
                    }
                    return n;
                }));
            }
            for (CompletableFuture<HttpResponse<String>> f : sent) {
                assertEquals(200, f.get(60, TimeUnit.SECONDS).statusCode());
            }
            for (Future<Integer> f : scrapers) {
                assertTrue(f.get(60, TimeUnit.SECONDS) >= 30);
            }
        } finally {
            pool.shutdownNow();
        }
        assertWorkGaugesAtZero(server.port(), 12);
    }

    /** A streaming client that goes away mid-stream: once its request ends, no gauge of work still counts it. */
    @Test
    void shouldLeaveNoGaugeOfWorkAboveZeroOnceACancelledRequestEnded() throws Exception {
        InferenceServer server = startSlow(ServeTestSupport.settings(), 50);
        int port = server.port();
        try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
            socket.setSoLinger(true, 0);
            socket.setSoTimeout(30_000);
            ServeTestSupport.postRaw(socket, "{\"prompt\":\"bye\",\"max_tokens\":20,\"stream\":true}", "");
            BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(),
                StandardCharsets.UTF_8));
            String line = in.readLine();
            assertTrue(line != null && line.startsWith("HTTP/1.1 200"), line);
            do {
                line = in.readLine();
            } while (line != null && !line.startsWith("data: "));
            assertTrue(line != null, "a first event arrives");
            PrometheusText p = PrometheusText.check(get(port, "/metrics").body());
            assertEquals(1, p.value("troupe_serve_requests_in_flight"));
            assertTrue(p.value("troupe_serve_kv_cache_blocks_used") > 0);
        }
        assertWorkGaugesAtZero(port, 1);
    }

    private static void assertWorkGaugesAtZero(int port, int finished) throws Exception {
        String text = ServeTestSupport.awaitMetrics(port, t -> {
            double sum = 0;
            for (String r : new String[] {"stop", "length", "cancelled", "deadline"}) {
                double v = metric(t, "troupe_serve_finished_total{reason=\"" + r + "\"}");
                sum += Double.isNaN(v) ? 0 : v;
            }
            return sum == finished;
        }, 20_000);
        // the request ended; the gauges of work follow at the loop's next turn
        text = ServeTestSupport.awaitMetrics(port, t -> {
            for (String g : GAUGES_OF_WORK.split(" ")) {
                if (metric(t, g) != 0) {
                    return false;
                }
            }
            return true;
        }, 20_000);
        PrometheusText.check(text);
    }
}
