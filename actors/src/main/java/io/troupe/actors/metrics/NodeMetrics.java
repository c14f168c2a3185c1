package io.troupe.actors.metrics;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.RefusedInputs;
import io.troupe.actors.cluster.TroupeNode;
import io.troupe.runtime.transport.DropReason;
import io.troupe.runtime.transport.PeerTraffic;
import io.troupe.runtime.transport.TransportNode;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.EnumMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * One node's metrics, served in Prometheus text format at {@code http://HOST:PORT/metrics}
 * ({@code troupe.metrics}): the JVM (memory, GC, threads, classes, CPU, uptime), what the node refused
 * from the network by reason, the data-plane frames its receivers dropped by reason, and the
 * training of every job submitted through this node's job gateway (step time, tokens/s, loss,
 * validation loss, bubble, all-reduce wait, steps committed, recoveries by cause and their time,
 * jobs ended, whether the last epoch keeps in-memory snapshots and why not), the JVM's direct-memory
 * limit, and the tensor bytes its workers sent to and received from each peer rank. The endpoint binds
 * the node's own address, never the wildcard. docs/deploy.md lists every metric.
 *
 * <p>Threading: meters are updated on an actor thread from the node's event stream and read by the
 * endpoint's single HTTP thread; Micrometer's meters are thread-safe.
 */
public final class NodeMetrics implements AutoCloseable {
    /** The Prometheus text format's content type. */
    static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final HttpServer server;
    private final ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "troupe-metrics-http");
        t.setDaemon(true);
        return t;
    });
    private final JvmGcMetrics gc = new JvmGcMetrics();
    private final ActorRef<JobEvent> listener;
    private final TroupeNode node;

    private final Timer stepTime;
    private final Timer allReduceWait;
    private final Counter stepsCommitted;
    private final Counter jobsFinished;
    private final Counter jobsFailed;
    private final EnumMap<RecoveryCause, Counter> recoveries = new EnumMap<>(RecoveryCause.class);
    private final Timer recoveryTime;
    private final AtomicLong lossBits = new AtomicLong(Double.doubleToRawLongBits(Double.NaN));
    private final AtomicLong valLossBits = new AtomicLong(Double.doubleToRawLongBits(Double.NaN));
    private final AtomicLong tokensPerSec = new AtomicLong();
    private final AtomicLong bubbleBits = new AtomicLong(Double.doubleToRawLongBits(Double.NaN));
    private final AtomicLong snapshotsOn = new AtomicLong(-1);
    private final EnumMap<SnapshotsOffCause, Counter> snapshotsOff = new EnumMap<>(SnapshotsOffCause.class);

    private NodeMetrics(TroupeNode node, MetricsSettings settings) throws IOException {
        this.node = node;
        new JvmMemoryMetrics().bindTo(registry);
        gc.bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ClassLoaderMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
        RefusedInputs refused = node.refusedInputs();
        for (RefusedInputs.Reason r : RefusedInputs.Reason.values()) {
            FunctionCounter.builder("troupe.refused.inputs", refused, x -> x.count(r)).tag("reason", r.name())
                .description("control-plane inputs refused from the network, by reason").register(registry);
        }
        for (DropReason r : DropReason.values()) {
            FunctionCounter.builder("troupe.frames.dropped", node, n -> n.transport() == null ? 0
                    : n.transport().framesDropped(r)).tag("reason", r.name())
                .description("data-plane frames dropped by this node's receivers, by reason").register(registry);
        }
        for (RecoveryCause c : RecoveryCause.values()) {
            recoveries.put(c, Counter.builder("troupe.recoveries").tag("reason", c.name())
                .description("recoveries of jobs submitted through this node, by cause").register(registry));
        }
        for (SnapshotsOffCause c : SnapshotsOffCause.values()) {
            snapshotsOff.put(c, Counter.builder("troupe.snapshots.off").tag("reason", c.name())
                .description("epochs of jobs submitted through this node run without in-memory snapshots, by cause")
                .register(registry));
        }
        Gauge.builder("troupe.snapshots.enabled", snapshotsOn, AtomicLong::get)
            .description("whether the last epoch started keeps in-memory snapshots: 1 yes, 0 no, -1 none started")
            .register(registry);
        Gauge.builder("troupe.direct.memory.max", () -> io.troupe.actors.cluster.snapshot.DirectMemory.limitBytes())
            .baseUnit("bytes").description("this JVM's direct-memory limit (-XX:MaxDirectMemorySize, else the maximum "
                + "heap), which holds the in-memory snapshot slots; -1 unknown")
            .register(registry);
        recoveryTime = Timer.builder("troupe.recovery.time")
            .description("from a fault noticed to the first step committed after it").register(registry);
        stepTime = Timer.builder("troupe.step.time").description("wall time of a committed step").register(registry);
        allReduceWait = Timer.builder("troupe.allreduce.wait")
            .description("longest wait of any rank for its data-parallel all-reduce after backward, per step")
            .register(registry);
        stepsCommitted = Counter.builder("troupe.steps.committed").description("steps every rank applied")
            .register(registry);
        jobsFinished = Counter.builder("troupe.jobs.finished").register(registry);
        jobsFailed = Counter.builder("troupe.jobs.failed").register(registry);
        Gauge.builder("troupe.loss", lossBits, v -> Double.longBitsToDouble(v.get()))
            .description("training loss of the last committed step")
            .register(registry);
        Gauge.builder("troupe.validation.loss", valLossBits, v -> Double.longBitsToDouble(v.get()))
            .description("the last validation loss").register(registry);
        Gauge.builder("troupe.tokens.per.second", tokensPerSec, AtomicLong::get)
            .description("tokens per second of the last committed step, 0 once a job ended").register(registry);
        Gauge.builder("troupe.bubble.ratio", bubbleBits, v -> Double.longBitsToDouble(v.get()))
            .description("idle / (busy + idle) of the last committed step").register(registry);

        listener = node.system().systemActorOf(Behaviors.<JobEvent>receiveMessage(e -> {
            onEvent(e);
            return Behaviors.same();
        }), "metrics-" + System.nanoTime(), Props.empty());
        node.system().eventStream().tell(new EventStream.Subscribe<>(JobEvent.class, listener));

        server = HttpServer.create(new InetSocketAddress(settings.hostname(), settings.port()), 16);
        server.createContext(MetricsSettings.PATH, this::serve);
        server.setExecutor(executor);
        server.start();
    }

    /**
     * Answers a request: GET the metrics, HEAD their headers; another method 405 with {@code Allow}; a path below
     * or beside {@code /metrics} (which the context's prefix match would take) 404.
     */
    private void serve(HttpExchange exchange) throws IOException {
        try (exchange) {
            String method = exchange.getRequestMethod();
            if (!exchange.getRequestURI().getPath().equals(MetricsSettings.PATH)) {
                exchange.sendResponseHeaders(404, -1);
                return;
            }
            if (!method.equals("GET") && !method.equals("HEAD")) {
                exchange.getResponseHeaders().set("Allow", "GET, HEAD");
                exchange.sendResponseHeaders(405, -1);
                return;
            }
            registerPeerTraffic();
            byte[] body = registry.scrape().getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", CONTENT_TYPE);
            if (method.equals("HEAD")) {
                exchange.getResponseHeaders().set("Content-Length", Integer.toString(body.length));
                exchange.sendResponseHeaders(200, -1);
                return;
            }
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        }
    }

    /**
     * Registers a byte counter for every (rank, peer) the node's data plane has counted so far (peers appear as
     * jobs start; registering one already there is a lookup). Called before each scrape.
     */
    private void registerPeerTraffic() {
        TransportNode transport = node.transport();
        if (transport == null) {
            return;
        }
        PeerTraffic traffic = transport.traffic();
        for (PeerTraffic.Counter c : traffic.sent()) {
            FunctionCounter.builder("troupe.data.sent", c, PeerTraffic.Counter::bytes).baseUnit("bytes")
                .tag("rank", Integer.toString(c.rank())).tag("peer", Integer.toString(c.peer()))
                .description("tensor bytes this node's worker of this rank sent to the peer rank").register(registry);
        }
        for (PeerTraffic.Counter c : traffic.received()) {
            FunctionCounter.builder("troupe.data.received", c, PeerTraffic.Counter::bytes).baseUnit("bytes")
                .tag("rank", Integer.toString(c.rank())).tag("peer", Integer.toString(c.peer()))
                .description("tensor bytes this node's worker of this rank accepted from the peer rank")
                .register(registry);
        }
    }

    /**
     * Starts serving a node's metrics.
     *
     * @throws IllegalStateException naming the address when the endpoint cannot bind
     */
    public static NodeMetrics start(TroupeNode node, MetricsSettings settings) {
        try {
            return new NodeMetrics(node, settings);
        } catch (IOException | UncheckedIOException e) {
            throw new IllegalStateException("metrics endpoint cannot bind " + settings.hostname() + ":"
                + settings.port()
                + " (troupe.metrics): " + e.getMessage(), e);
        }
    }

    /** The endpoint's URL, with the port actually bound. */
    public String url() {
        InetSocketAddress a = server.getAddress();
        return "http://" + a.getHostString() + ":" + a.getPort() + MetricsSettings.PATH;
    }

    /** The current metrics in Prometheus text format. */
    public String scrape() {
        return registry.scrape();
    }

    private void onEvent(JobEvent e) {
        if (e instanceof JobEvent.StepCompleted s) {
            stepsCommitted.increment();
            stepTime.record(Duration.ofNanos((long) (s.stepMs() * 1e6)));
            allReduceWait.record(Duration.ofNanos((long) (s.allReduceMs() * 1e6)));
            lossBits.set(Double.doubleToRawLongBits(s.loss()));
            if (!Double.isNaN(s.valLoss())) {
                valLossBits.set(Double.doubleToRawLongBits(s.valLoss()));
            }
            tokensPerSec.set(Math.round(s.tokensPerSec()));
            bubbleBits.set(Double.doubleToRawLongBits(s.bubble()));
        } else if (e instanceof JobEvent.Started st) {
            snapshotsOn.set(st.snapshotsOn() ? 1 : 0);
            if (!st.snapshotsOn()) {
                snapshotsOff.get(SnapshotsOffCause.of(st.snapshots())).increment();
            }
        } else if (e instanceof JobEvent.Recovering r) {
            recoveries.get(RecoveryCause.of(r.reason())).increment();
        } else if (e instanceof JobEvent.Recovered r) {
            recoveryTime.record(Duration.ofNanos((long) (r.detectToCommitMs() * 1e6)));
        } else if (e instanceof JobEvent.Finished) {
            jobsFinished.increment();
            tokensPerSec.set(0);                 // the job ended: no step runs at its last rate
        } else if (e instanceof JobEvent.Failed) {
            jobsFailed.increment();
            tokensPerSec.set(0);
        }
    }

    /** Stops the endpoint and the event subscription. */
    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
        node.system().eventStream().tell(new EventStream.Unsubscribe<>(listener));
        gc.close();
        registry.close();
    }
}
