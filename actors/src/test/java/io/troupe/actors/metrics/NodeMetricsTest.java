package io.troupe.actors.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import io.troupe.actors.cluster.NodeSettings;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.runtime.transport.DropReason;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A node's Prometheus endpoint, scraped over HTTP while a job runs on real cluster nodes on 127.0.0.1. */
@Timeout(180)
class NodeMetricsTest {
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static String scrape(String url) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url))
            .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode());
        return r.body();
    }

    private static double value(String text, String series) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(series) + " ([0-9.eE+-]+|NaN)$").matcher(text);
        assertTrue(m.find(), "no " + series + " in\n" + text);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void shouldServeTrainingRefusalAndJvmMetricsWhileAJobRuns() throws Exception {
        TransportNode transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        open.add(transport);
        NodeSettings base = NodeSettings.from(ConfigFactory.load()).withPort(0);
        TroupeNode first = TroupeNode.start(base.withRoles(List.of("worker", "coordinator"), 1).withSeeds(List.of()),
            ConfigFactory.load(), transport);
        open.add(first);
        open.add(TroupeNode.start(base.withRoles(List.of("worker"), 1).withSeeds(List.of(first.hostPort())),
            ConfigFactory.load(), transport));
        NodeMetrics metrics = NodeMetrics.start(first, new MetricsSettings(true, "127.0.0.1", 0));
        open.add(metrics);
        assertTrue(metrics.url().startsWith("http://127.0.0.1:") && metrics.url().endsWith("/metrics"), metrics.url());

        int steps = 150;
        CountDownLatch running = new CountDownLatch(3);
        JobHandle h = Troupe.using(first).submit(TrainingJob.builder().model("tiny").layout("1x2").schedule("1f1b")
            .microbatches(2).batchSize(4).steps(steps).lr(3e-3f, 3e-4f, 2).gradClip(1f).seed(5).stepTimeoutMs(30_000)
            .validation(0, 1).device("cpu").build()).onEvent(e -> {
                if (e instanceof JobEvent.StepCompleted) {
                    running.countDown();
                }
            });
        assertTrue(running.await(120, TimeUnit.SECONDS), "the job did not start");
        String during = scrape(metrics.url());
        System.out.println(during.lines().filter(l -> l.startsWith("troupe_")).reduce("", (a, b) -> a + b + "\n"));
        double committed = value(during, "troupe_steps_committed_total");
        assertTrue(committed >= 1 && committed < steps,
            "scraped while the job runs: " + committed + " steps committed");
        assertEquals(0, value(during, "troupe_jobs_finished_total"));
        assertTrue(value(during, "troupe_step_time_seconds_count") >= 1, during);
        assertTrue(value(during, "troupe_loss") > 1 && value(during, "troupe_loss") < 10, during);
        assertTrue(value(during, "troupe_tokens_per_second") > 0, during);
        double bubble = value(during, "troupe_bubble_ratio");
        assertTrue(bubble >= 0 && bubble <= 1, during);
        assertTrue(during.contains("troupe_allreduce_wait_seconds_count"), during);
        assertEquals(0, value(during, "troupe_refused_inputs_total{reason=\"OVERSIZED\"}"));
        assertTrue(during.contains("jvm_gc_pause_seconds") || during.contains("jvm_gc_memory_allocated_bytes_total"),
            during);
        assertTrue(during.contains("jvm_memory_used_bytes"), during);
        assertEquals(1, value(during, "troupe_snapshots_enabled"), "the job's epoch keeps in-memory snapshots");
        assertEquals(io.troupe.actors.cluster.snapshot.DirectMemory.limitBytes(),
            value(during, "troupe_direct_memory_max_bytes"));

        // bytes per peer: rank 0 (stage 0) sends activations to rank 1 and receives its gradients, and both grow
        String sent = "troupe_data_sent_bytes_total{peer=\"1\",rank=\"0\"}";
        String received = "troupe_data_received_bytes_total{peer=\"1\",rank=\"0\"}";
        double sentBefore = value(during, sent);
        double receivedBefore = value(during, received);
        assertTrue(sentBefore > 0 && receivedBefore > 0, during);
        assertTrue(value(during, "troupe_data_received_bytes_total{peer=\"0\",rank=\"1\"}") > 0, during);
        long bytesDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        String later = scrape(metrics.url());
        while (value(later, sent) <= sentBefore || value(later, received) <= receivedBefore) {
            assertTrue(System.nanoTime() < bytesDeadline, "per-peer bytes did not grow:\n" + later);
            Thread.sleep(100); // scraping again after the job moved on; the deadline bounds it
            later = scrape(metrics.url());
        }
        System.out.printf("bytes rank 0 -> 1: %.0f then %.0f; 1 -> 0: %.0f then %.0f%n", sentBefore,
            value(later, sent), receivedBefore, value(later, received));

        for (DropReason r : DropReason.values()) {
            assertEquals(transport.framesDropped(r),
                value(during, "troupe_frames_dropped_total{reason=\"" + r.name() + "\"}"), r.name());
        }
        assertEquals(0, value(during, "troupe_recoveries_total{reason=\"MEMBER_DOWNED\"}"));
        // A recovery's events as the gateway's relay publishes them on the node's event stream.
        first.system().eventStream().tell(new EventStream.Publish<>(new JobEvent.Recovering(1,
            "member pekko://troupe@10.0.0.2:25520 downed by the downing decision, hosting rank(s) [1]", 4, 1)));
        first.system().eventStream().tell(new EventStream.Publish<>(new JobEvent.Recovered(2, "1x2", 4, 5, 1500)));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        String recovered = scrape(metrics.url());
        while (value(recovered, "troupe_recovery_time_seconds_count") < 1) {
            assertTrue(System.nanoTime() < deadline, "the recovery was not counted:\n" + recovered);
            Thread.sleep(10); // the event stream's subscriber counts it; the deadline bounds the wait
            recovered = scrape(metrics.url());
        }
        assertEquals(1, value(recovered, "troupe_recoveries_total{reason=\"MEMBER_DOWNED\"}"));
        assertEquals(0, value(recovered, "troupe_recoveries_total{reason=\"DEADLINE\"}"));
        assertEquals(1.5, value(recovered, "troupe_recovery_time_seconds_sum"), 1e-9);
        // An epoch started without snapshots, as the coordinator words a node short of direct memory.
        first.system().eventStream().tell(new EventStream.Publish<>(new JobEvent.Started("0000002a", 3, 2,
            "rank 0 -> a",
            "off: node pekko://troupe@10.0.0.2:25520#7 needs 2048 bytes (0.0 MiB) of direct memory for its in-memory"
                + " snapshot slots, but its limit leaves them 1024 bytes (0.0 MiB): raise the JVM's"
                + " -XX:MaxDirectMemorySize (by default the maximum heap) on that node")));
        String off = scrape(metrics.url());
        while (value(off, "troupe_snapshots_off_total{reason=\"DIRECT_MEMORY\"}") < 1) {
            assertTrue(System.nanoTime() < deadline, "the epoch without snapshots was not counted:\n" + off);
            Thread.onSpinWait();
            off = scrape(metrics.url());
        }
        assertEquals(0, value(off, "troupe_snapshots_enabled"));
        assertEquals(0, value(off, "troupe_snapshots_off_total{reason=\"CONFIGURED_OFF\"}"));

        JobEvent end = h.await(Duration.ofSeconds(150));
        assertInstanceOf(JobEvent.Finished.class, end);
        String after = scrape(metrics.url());
        assertEquals(steps, value(after, "troupe_steps_committed_total"));
        assertEquals(1, value(after, "troupe_jobs_finished_total"));
        assertEquals(h.steps().get(steps - 1).loss(), value(after, "troupe_loss"), 1e-12);
    }
}
