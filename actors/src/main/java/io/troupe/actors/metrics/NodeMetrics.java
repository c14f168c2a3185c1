package io.troupe.actors.metrics;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
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
import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.EnumMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpMethod;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.Allow;
import org.apache.pekko.http.javadsl.settings.ServerSettings;

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
 * <p>The endpoint is served by Pekko HTTP on the node's actor system, which holds no thread for a connection while
 * it waits for bytes: a client that connects and sends part of a request, or nothing, delays no other scrape. Such a
 * connection is closed once it has passed no bytes for {@link #IDLE_TIMEOUT}, and at most {@link #MAX_CONNECTIONS}
 * are open at once (more wait in the listen backlog), each with Pekko's bounded request parsing, so stalled clients
 * hold bounded memory and no thread.
 *
 * <p>Threading: meters are updated on an actor thread from the node's event stream and read by the
 * endpoint's handler on the actor system's dispatcher; Micrometer's meters are thread-safe.
 */
public final class NodeMetrics implements AutoCloseable {
    /** The Prometheus text format's content type. */
    static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
    /** How long a connection may pass no bytes either way before it is closed, a request half sent or none. */
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(10);
    /** The most connections open at once; a scrape needs one, and a scraper rarely holds more than a few. */
    static final int MAX_CONNECTIONS = 32;
    /** Longest the endpoint waits for its socket to bind, and for its connections to end on close. */
    private static final Duration BIND_WAIT = Duration.ofSeconds(10);
    private static final ContentType TEXT_FORMAT = ContentTypes.parse(CONTENT_TYPE);
    private static final long NAN_BITS = Double.doubleToRawLongBits(Double.NaN);
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final ServerBinding binding;
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
    private final AtomicLong lossBits = new AtomicLong(NAN_BITS);
    private final AtomicLong valLossBits = new AtomicLong(NAN_BITS);
    /** The id of the job whose epoch started last ("" before any; read and written on the listener's thread). */
    private String startedJob = "";
    private final AtomicLong tokensPerSec = new AtomicLong();
    private final AtomicLong bubbleBits = new AtomicLong(NAN_BITS);
    private final AtomicLong snapshotsOn = new AtomicLong(-1);
    private final EnumMap<SnapshotsOffCause, Counter> snapshotsOff = new EnumMap<>(SnapshotsOffCause.class);

    private NodeMetrics(TroupeNode node, MetricsSettings settings) {
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
            .description("the last validation loss of the job running, NaN before its first and once it ended")
            .register(registry);
        Gauge.builder("troupe.tokens.per.second", tokensPerSec, AtomicLong::get)
            .description("tokens per second of the last committed step, 0 once a job ended").register(registry);
        Gauge.builder("troupe.bubble.ratio", bubbleBits, v -> Double.longBitsToDouble(v.get()))
            .description("idle / (busy + idle) of the last committed step").register(registry);

        listener = node.system().systemActorOf(Behaviors.<JobEvent>receiveMessage(e -> {
            onEvent(e);
            return Behaviors.same();
        }), "metrics-" + System.nanoTime(), Props.empty());
        node.system().eventStream().tell(new EventStream.Subscribe<>(JobEvent.class, listener));

        java.util.concurrent.CompletableFuture<ServerBinding> bound = null;
        try {
            bound = Http.get(node.system()).newServerAt(settings.hostname(), settings.port())
                .withSettings(serverSettings(node.system().settings().config())).bindSync(this::answer)
                .toCompletableFuture();
            binding = bound.get(BIND_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException | InterruptedException | RuntimeException e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            if (bound != null) {
                bound.thenAccept(ServerBinding::unbind);   // a bind that completes after all serves nothing
            }
            closeMeters();
            throw new IllegalStateException("metrics endpoint cannot bind " + settings.hostname() + ":"
                + settings.port() + " (troupe.metrics): " + reason(e), bindFailure(e));
        }
    }

    /**
     * The HTTP settings of the endpoint, over the actor system's: {@link #IDLE_TIMEOUT}, {@link #MAX_CONNECTIONS},
     * a request answered within half the idle timeout, a closing connection given as long to finish, and URIs
     * parsed as scrapers send them (a federating Prometheus asks for {@code ?match[]=...}).
     */
    private static ServerSettings serverSettings(Config system) {
        long idleMs = IDLE_TIMEOUT.toMillis();
        return ServerSettings.create(ConfigFactory.parseString("""
            pekko.http.server.idle-timeout = %d ms
            pekko.http.server.request-timeout = %d ms
            pekko.http.server.linger-timeout = %d ms
            pekko.http.server.max-connections = %d
            pekko.http.server.remote-address-header = off
            pekko.http.server.parsing.uri-parsing-mode = relaxed
            """.formatted(idleMs, idleMs / 2, idleMs / 2, MAX_CONNECTIONS)).withFallback(system));
    }

    /**
     * Answers a request: GET the metrics, HEAD their headers; another method 405 with {@code Allow}; another path
     * 404. A request's body, which none of these reads, is discarded.
     */
    private HttpResponse answer(HttpRequest request) {
        request.discardEntityBytes(node.system());
        if (!request.getUri().path().equals(MetricsSettings.PATH)) {
            return HttpResponse.create().withStatus(StatusCodes.NOT_FOUND);
        }
        HttpMethod method = request.method();
        if (!method.equals(HttpMethods.GET) && !method.equals(HttpMethods.HEAD)) {
            return HttpResponse.create().withStatus(StatusCodes.METHOD_NOT_ALLOWED)
                .addHeader(Allow.create(HttpMethods.GET, HttpMethods.HEAD));
        }
        registerPeerTraffic();
        // a HEAD is answered with the same entity: its headers, Content-Length included, are sent without the body
        return HttpResponse.create().withEntity(HttpEntities.create(TEXT_FORMAT,
            registry.scrape().getBytes(StandardCharsets.UTF_8)));
    }

    /** The address already in use, or what else failed the bind (the cause of a failed future). */
    private static Throwable bindFailure(Throwable e) {
        Throwable c = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        for (Throwable t = c; t != null; t = t.getCause()) {
            if (t instanceof BindException) {
                return t;
            }
        }
        return c;
    }

    private static String reason(Throwable e) {
        Throwable c = bindFailure(e);
        return e instanceof TimeoutException ? "no answer within " + BIND_WAIT.toSeconds() + " s"
            : c.getClass().getSimpleName() + ": " + c.getMessage();
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
        return new NodeMetrics(node, settings);
    }

    /** The endpoint's URL, with the port actually bound. */
    public String url() {
        InetSocketAddress a = binding.localAddress();
        return "http://" + a.getHostString() + ":" + a.getPort() + MetricsSettings.PATH;
    }

    /** The current metrics in Prometheus text format. */
    public String scrape() {
        return registry.scrape();
    }

    private void onEvent(JobEvent e) {
        // an event's counter is raised last: a scrape that shows it counted shows what the event set (its gauges)
        if (e instanceof JobEvent.StepCompleted s) {
            stepTime.record(Duration.ofNanos((long) (s.stepMs() * 1e6)));
            allReduceWait.record(Duration.ofNanos((long) (s.allReduceMs() * 1e6)));
            lossBits.set(Double.doubleToRawLongBits(s.loss()));
            if (!Double.isNaN(s.valLoss())) {
                valLossBits.set(Double.doubleToRawLongBits(s.valLoss()));
            }
            tokensPerSec.set(Math.round(s.tokensPerSec()));
            bubbleBits.set(Double.doubleToRawLongBits(s.bubble()));
            stepsCommitted.increment();
        } else if (e instanceof JobEvent.Started st) {
            if (!st.jobId().equals(startedJob)) {
                startedJob = st.jobId();
                valLossBits.set(NAN_BITS);     // another job: it has not validated yet
            }
            snapshotsOn.set(st.snapshotsOn() ? 1 : 0);
            if (!st.snapshotsOn()) {
                snapshotsOff.get(SnapshotsOffCause.of(st.snapshots())).increment();
            }
        } else if (e instanceof JobEvent.Recovering r) {
            recoveries.get(RecoveryCause.of(r.reason())).increment();
        } else if (e instanceof JobEvent.Recovered r) {
            recoveryTime.record(Duration.ofNanos((long) (r.detectToCommitMs() * 1e6)));
        } else if (e instanceof JobEvent.Finished) {
            jobEnded();
            jobsFinished.increment();
        } else if (e instanceof JobEvent.Failed) {
            jobEnded();
            jobsFailed.increment();
        }
    }

    /**
     * A job ended: no step runs at its last rate, and its validation loss describes no job running (the next job's
     * first validation sets it again). The loss of its last step stays, as the last one trained.
     */
    private void jobEnded() {
        tokensPerSec.set(0);
        valLossBits.set(NAN_BITS);
    }

    /** Stops the endpoint (its connections too, bounded by a few seconds) and the event subscription. */
    @Override
    public void close() {
        try {
            binding.terminate(Duration.ofSeconds(2)).toCompletableFuture()
                .get(BIND_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
            // stopping regardless: the listening socket is unbound first
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        closeMeters();
    }

    private void closeMeters() {
        node.system().eventStream().tell(new EventStream.Unsubscribe<>(listener));
        gc.close();
        registry.close();
    }
}
