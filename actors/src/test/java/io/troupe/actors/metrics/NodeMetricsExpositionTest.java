package io.troupe.actors.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
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
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real node's endpoint on 127.0.0.1, scraped as Prometheus does: the text passes the strict
 * {@link PrometheusText} reader, with the content type of the text format; HEAD, other methods and other paths
 * are answered as HTTP says; concurrent scrapes each get a whole text and never see a counter go down; clients that
 * stall mid-request delay no scrape and are disconnected; a taken port is refused naming it; and every
 * {@code troupe_} metric docs/deploy.md lists is served, and no other.
 */
@Timeout(120)
class NodeMetricsExpositionTest {
    private static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final List<AutoCloseable> open = new ArrayList<>();
    private TroupeNode node;

    @BeforeEach
    void startNode() {
        TransportNode transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        open.add(transport);
        node = TroupeNode.start(NodeSettings.from(ConfigFactory.load()).withPort(0)
            .withRoles(List.of("worker", "coordinator"), 1).withSeeds(List.of()), ConfigFactory.load(), transport);
        open.add(node);
    }

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private NodeMetrics start() {
        NodeMetrics m = NodeMetrics.start(node, new MetricsSettings(true, "127.0.0.1", 0));
        open.add(m);
        return m;
    }

    private static HttpResponse<String> send(String url, String method) throws Exception {
        return CLIENT.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10))
            .method(method, HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
    }

    private void publish(JobEvent e) {
        node.system().eventStream().tell(new EventStream.Publish<>(e));
    }

    /** Publishes every kind of event the endpoint counts, and waits until the last is counted. */
    private PrometheusText publishEveryKindAndScrape(NodeMetrics m) throws Exception {
        publish(new JobEvent.Started("job-1", 1, 2, "rank 0 -> a", "on"));
        publish(new JobEvent.StepCompleted(1, 10, 2.5, Double.NaN, 1, 1e-3f, 120, 5000, 0.25, 3, 10, 100));
        publish(new JobEvent.Recovering(1, "step 2 passed its deadline", 1, 1));
        publish(new JobEvent.Recovered(2, "1x2", 1, 2, 1500));
        publish(new JobEvent.Started("job-1", 2, 2, "rank 0 -> a", "off: troupe.recovery.snapshots = off"));
        publish(new JobEvent.Failed("rank 1 failed", 2, 2));
        publish(new JobEvent.Finished(10, 2.4, 2.6, "ckpt"));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {
            HttpResponse<String> r = send(m.url(), "GET");
            assertEquals(200, r.statusCode());
            PrometheusText p = PrometheusText.check(r.body());
            if (p.value("troupe_jobs_finished_total") == 1) {
                // a scrape reads one meter after another while the events are counted: the one that saw the last
                // event may have read an earlier meter before its event was counted; the next scrape sees them all
                HttpResponse<String> after = send(m.url(), "GET");
                assertEquals(200, after.statusCode());
                return PrometheusText.check(after.body());
            }
            assertTrue(System.nanoTime() < deadline, "the events were not counted:\n" + r.body());
            Thread.sleep(10); // the event stream's subscriber counts them; the deadline bounds the wait
        }
    }

    @Test
    void shouldServeStrictTextFormatWithItsContentType() throws Exception {
        NodeMetrics m = start();
        HttpResponse<String> r = send(m.url(), "GET");
        assertEquals(200, r.statusCode());
        // a charset's name is case-insensitive (RFC 9110)
        assertEquals("text/plain; version=0.0.4; charset=utf-8",
            r.headers().firstValue("Content-Type").orElse("").toLowerCase(java.util.Locale.ROOT));
        PrometheusText.check(r.body());
        PrometheusText p = publishEveryKindAndScrape(m);
        assertEquals(1, p.value("troupe_recoveries_total{reason=\"DEADLINE\"}"));
        assertEquals(1, p.value("troupe_snapshots_off_total{reason=\"CONFIGURED_OFF\"}"));
        assertEquals(1, p.value("troupe_jobs_failed_total"));
        assertEquals(0.12, p.value("troupe_step_time_seconds_sum"), 1e-9);
    }

    /** Once a job ends, the rate of its last step is no longer shown: tokens/s is 0 until the next step. */
    @Test
    void shouldShowNoTokensPerSecondOnceTheJobEnded() throws Exception {
        PrometheusText p = publishEveryKindAndScrape(start());
        assertEquals(0, p.value("troupe_tokens_per_second"));
        assertEquals(2.5, p.value("troupe_loss"), "the last step's loss stays");
    }

    /**
     * The validation loss belongs to the job running: a job's value is scraped while it runs (through a recovery's
     * new epoch), NaN once it ended (finished or failed), and NaN for the next job until that job validates.
     */
    @Test
    void shouldShowNoValidationLossOfAJobThatEndedOrOfANewJobBeforeItValidates() throws Exception {
        NodeMetrics m = start();
        publish(new JobEvent.Started("job-1", 1, 1, "rank 0 -> a", "on"));
        publish(step(1, 2.7));
        assertEquals(2.7, scrapeWhen(m, "troupe_steps_committed_total", 1).value("troupe_validation_loss"));
        publish(new JobEvent.Started("job-1", 2, 1, "rank 0 -> a", "on"));
        publish(step(2, Double.NaN));
        assertEquals(2.7, scrapeWhen(m, "troupe_steps_committed_total", 2).value("troupe_validation_loss"),
            "a recovery's epoch and a step without validation keep the job's last validation loss");
        publish(new JobEvent.Finished(2, 2.5, 2.7, ""));
        PrometheusText ended = scrapeWhen(m, "troupe_jobs_finished_total", 1);
        assertTrue(Double.isNaN(ended.value("troupe_validation_loss")), "none of the finished job shown");
        assertEquals(2.5, ended.value("troupe_loss"), "the last step's loss stays");

        publish(new JobEvent.Started("job-2", 1, 1, "rank 0 -> a", "on"));
        publish(step(1, Double.NaN));
        assertTrue(Double.isNaN(scrapeWhen(m, "troupe_steps_committed_total", 3).value("troupe_validation_loss")),
            "the next job has not validated yet");
        publish(step(2, 2.2));
        assertEquals(2.2, scrapeWhen(m, "troupe_steps_committed_total", 4).value("troupe_validation_loss"));
        publish(new JobEvent.Failed("rank 0 failed", 2, 1));
        assertTrue(Double.isNaN(scrapeWhen(m, "troupe_jobs_failed_total", 1).value("troupe_validation_loss")),
            "none of the failed job shown");

        // an epoch of another job whose end this node did not see
        publish(new JobEvent.Started("job-3", 1, 1, "rank 0 -> a", "on"));
        publish(step(1, 2.9));
        assertEquals(2.9, scrapeWhen(m, "troupe_steps_committed_total", 5).value("troupe_validation_loss"));
        publish(new JobEvent.Started("job-4", 1, 1, "rank 0 -> a", "on"));
        publish(step(1, Double.NaN));
        assertTrue(Double.isNaN(scrapeWhen(m, "troupe_steps_committed_total", 6).value("troupe_validation_loss")),
            "none of job-3 shown for job-4");
    }

    private static JobEvent.StepCompleted step(long step, double valLoss) {
        return new JobEvent.StepCompleted(step, 2, 2.5, valLoss, 1, 1e-3f, 120, 5000, 0.25, 3, 10, 100);
    }

    /** Scrapes until {@code counter} reaches {@code n}, then once more (its event and those before it then counted). */
    private static PrometheusText scrapeWhen(NodeMetrics m, String counter, double n) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {
            HttpResponse<String> r = send(m.url(), "GET");
            assertEquals(200, r.statusCode());
            PrometheusText p = PrometheusText.check(r.body());
            if (p.value(counter) >= n) {
                assertEquals(n, p.value(counter), counter);
                // this scrape may have read other meters before the event that raised the counter was wholly counted
                // (a counter is raised before the gauges its event sets); the next scrape sees all of it
                PrometheusText after = PrometheusText.check(send(m.url(), "GET").body());
                assertEquals(n, after.value(counter), counter);
                return after;
            }
            assertTrue(System.nanoTime() < deadline, counter + " did not reach " + n + ":\n" + r.body());
            Thread.sleep(10); // the event stream's subscriber counts them; the deadline bounds the wait
        }
    }

    /**
     * Every {@code troupe_} family the node serves is in docs/deploy.md's table of metrics, and every one the table
     * lists is served (the per-peer byte counters once workers exchange tensors, which no job here does).
     */
    @Test
    void shouldServeExactlyTheMetricsTheDeployGuideLists() throws Exception {
        PrometheusText p = publishEveryKindAndScrape(start());
        Set<String> served = new TreeSet<>();
        for (String s : p.series().keySet()) {
            String name = s.replaceAll("\\{.*", "");
            if (name.startsWith("troupe_")) {
                served.add(name.replaceAll("_(count|sum|max)$", ""));
            }
        }
        String guide = Files.readString(Path.of("..", "docs", "deploy.md"));
        Set<String> listed = new TreeSet<>();
        Matcher row = Pattern.compile("(?m)^\\| (`troupe_[^|]*)\\|").matcher(guide);
        while (row.find()) {
            Matcher name = Pattern.compile("`(troupe_[a-z_]+)").matcher(row.group(1));
            while (name.find()) {
                listed.add(name.group(1));
            }
        }
        assertTrue(listed.containsAll(served), "docs/deploy.md lists " + listed + ", the node serves " + served);
        Set<String> unserved = new TreeSet<>(listed);
        unserved.removeAll(served);
        assertEquals(Set.of("troupe_data_sent_bytes_total", "troupe_data_received_bytes_total"), unserved,
            "listed in docs/deploy.md, not served");
    }

    /**
     * HEAD answers the headers of GET with no body; another method 405 naming GET and HEAD in {@code Allow}; a path
     * other than /metrics 404.
     */
    @Test
    void shouldAnswerHeadOtherMethodsAndOtherPathsAsHttpSays() throws Exception {
        NodeMetrics m = start();
        HttpResponse<String> head = send(m.url(), "HEAD");
        assertEquals(200, head.statusCode());
        assertEquals("", head.body());
        assertTrue(head.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"),
            head.headers().toString());
        for (String method : new String[] {"POST", "PUT", "DELETE"}) {
            HttpResponse<String> r = send(m.url(), method);
            assertEquals(405, r.statusCode(), method);
            assertEquals("GET, HEAD", r.headers().firstValue("Allow").orElse(""), method);
        }
        String root = m.url().substring(0, m.url().length() - MetricsSettings.PATH.length());
        for (String path : new String[] {"/", "/metricsx", "/metrics/x", "/other"}) {
            assertEquals(404, send(root + path, "GET").statusCode(), path);
        }
        assertEquals(200, send(m.url() + "?name[]=x", "GET").statusCode(), "a query is no other path");
        assertEquals(200, send(m.url(), "GET").statusCode(), "the endpoint still serves");
    }

    /** Eight scrapers at once, while events are counted: each gets a whole valid text, and no counter goes down. */
    @Test
    void shouldGiveConcurrentScrapersWholeTextsWithCountersThatNeverGoDown() throws Exception {
        NodeMetrics m = start();
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<Integer>> scrapers = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                scrapers.add(pool.submit((Callable<Integer>) () -> {
                    Map<String, Double> last = Map.of();
                    for (int i = 0; i < 25; i++) {
                        HttpResponse<String> r = send(m.url(), "GET");
                        assertEquals(200, r.statusCode());
                        PrometheusText p = PrometheusText.check(r.body());
                        for (Map.Entry<String, Double> e : last.entrySet()) {
                            String k = e.getKey();
                            if (k.startsWith("troupe_") && (k.contains("_total") || k.endsWith("_count"))) {
                                assertTrue(p.value(k) >= e.getValue(), k + " went down");
                            }
                        }
                        last = p.series();
                    }
                    return 25;
                }));
            }
            for (int i = 0; i < 200; i++) {
                publish(new JobEvent.StepCompleted(i, 200, 2.5, Double.NaN, 1, 1e-3f, 120, 5000, 0.25, 3, 10, 100));
            }
            for (Future<Integer> f : scrapers) {
                assertEquals(25, f.get(60, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * A port another socket holds is refused naming the address and port (its cause the
     * {@link java.net.BindException}); the endpoint then starts on a free port, and once closed, nothing listens there.
     */
    @Test
    void shouldRefuseATakenPortNamingItAndListenOnNothingOnceClosed() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            int port = taken.getLocalPort();
            IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> NodeMetrics.start(node, new MetricsSettings(true, "127.0.0.1", port)));
            assertTrue(e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
            assertTrue(e.getCause() instanceof java.net.BindException, String.valueOf(e.getCause()));
        }
        NodeMetrics m = NodeMetrics.start(node, new MetricsSettings(true, "127.0.0.1", 0));
        assertEquals(200, send(m.url(), "GET").statusCode());
        int port = URI.create(m.url()).getPort();
        m.close();
        try (Socket s = new Socket()) {
            assertThrows(ConnectException.class, () -> s.connect(new InetSocketAddress("127.0.0.1", port), 5_000),
                "the endpoint still listens on " + port + " once closed");
        }
    }

    /**
     * Clients that connect and stall (part of a request line, a request line and part of its headers, nothing at all)
     * delay no scrape: each scrape meanwhile is answered well within the idle timeout that ends the stalled
     * connections, and the server then closes every one of them.
     */
    @Test
    @Timeout(90)
    void shouldAnswerScrapesWhileClientsStallAndCloseTheStalledConnections() throws Exception {
        NodeMetrics m = start();
        URI url = URI.create(m.url());
        List<Socket> stalled = new ArrayList<>();
        try {
            String[] partial = {"GET /metr", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAcc", ""};
            for (int i = 0; i < 2 * partial.length; i++) {
                Socket s = new Socket();
                stalled.add(s);
                s.connect(new InetSocketAddress(url.getHost(), url.getPort()), 5_000);
                s.getOutputStream().write(partial[i % partial.length].getBytes(StandardCharsets.US_ASCII));
                s.getOutputStream().flush();
            }
            long bound = NodeMetrics.IDLE_TIMEOUT.toNanos() / 2;
            for (int i = 0; i < 3; i++) {
                long t0 = System.nanoTime();
                HttpResponse<String> r = send(m.url(), "GET");
                long took = System.nanoTime() - t0;
                assertEquals(200, r.statusCode());
                PrometheusText.check(r.body());
                assertTrue(took < bound, "a scrape beside stalled clients took " + took / 1_000_000 + " ms");
            }
            // the server closes each stalled connection: reading it ends (after whatever the server answered)
            long deadline = System.nanoTime() + NodeMetrics.IDLE_TIMEOUT.toNanos() + TimeUnit.SECONDS.toNanos(15);
            for (Socket s : stalled) {
                long left = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
                s.setSoTimeout((int) left);
                try {
                    while (s.getInputStream().read(new byte[256]) >= 0) {
                        assertTrue(System.nanoTime() < deadline, "the server keeps answering a stalled client");
                    }
                } catch (SocketTimeoutException e) {
                    throw new AssertionError("a stalled connection is still open 15 s past the idle timeout ("
                        + NodeMetrics.IDLE_TIMEOUT.toSeconds() + " s)", e);
                } catch (SocketException reset) {
                    // closed with a reset: closed all the same
                }
            }
        } finally {
            for (Socket s : stalled) {
                s.close();
            }
        }
    }
}
