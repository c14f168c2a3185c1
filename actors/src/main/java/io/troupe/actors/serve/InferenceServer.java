package io.troupe.actors.serve;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.infer.BatchScheduler;
import io.troupe.models.infer.DecodingModel;
import io.troupe.models.infer.DeviceKvCachedGpt;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.KvPrecision;
import io.troupe.models.infer.PagedKvCache;
import io.troupe.models.infer.RowSplitter;
import io.troupe.runtime.device.Device;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.stream.javadsl.Sink;

/**
 * A running model server: the weights, a paged KV cache sized by the budget, the scheduler actor
 * (the guardian of its own actor system), its decode-loop threads, and the HTTP binding.
 * {@link #close} unbinds, stops the actor system and the executor.
 */
public final class InferenceServer implements AutoCloseable {
    /**
     * Batches smaller than this run their rows on the step thread alone. Each split layer hands rows to
     * another thread and waits for them (29 hand-offs a step for the small model); under a full decode
     * batch the cores are busy with the HTTP streams as well, and splitting a 16-row step cost about 20%
     * more model CPU per token than running it on one thread ({@code scripts/bench serve}, docs/serving.md),
     * so only prefill-sized batches are split.
     */
    private static final int MIN_SPLIT_ROWS = 64;
    private final ActorSystem<SchedulerActor.Command> system;
    private final ExecutorService ownExecutor;
    private final AutoCloseable owned;
    private final ServerBinding binding;
    private final DecodingModel model;
    private final CompletionRoutes routes;

    private InferenceServer(ActorSystem<SchedulerActor.Command> system, ExecutorService ownExecutor,
                            AutoCloseable owned, ServerBinding binding, DecodingModel model, CompletionRoutes routes) {
        this.routes = routes;
        this.system = system;
        this.ownExecutor = ownExecutor;
        this.owned = owned;
        this.binding = binding;
        this.model = model;
    }

    /** Starts serving {@code weights}; returns once the port is bound. */
    public static InferenceServer start(InferenceWeights weights, ServeSettings s) {
        return start(weights, s, null);
    }

    /**
     * As {@link #start(InferenceWeights, ServeSettings)}, running the model's steps on
     * {@code stepExecutor} (one step at a time) instead of a thread of its own when it is not null.
     */
    public static InferenceServer start(InferenceWeights weights, ServeSettings s, Executor stepExecutor) {
        return start(weights, s, stepExecutor, 1);
    }

    /**
     * As {@link #start(InferenceWeights, ServeSettings)} on {@code pipelineStages} pipeline stages
     * (layout 1xN; 1 runs the whole model on one step thread). The KV budget is shared by the stages.
     *
     * @throws IllegalArgumentException for fewer than 1 stage, or more stages than the model has blocks
     */
    public static InferenceServer start(InferenceWeights weights, ServeSettings s, int pipelineStages) {
        return start(weights, s, null, pipelineStages, StageLinks.from(ConfigFactory.load(), java.util.List.of()));
    }

    /**
     * As {@link #start(InferenceWeights, ServeSettings, int)} with stages 1..N-1 on the stage hosts
     * {@code links} names ({@code troupe serve-stage}, each with its own copy of the checkpoint
     * {@code weights} came from), or in this process when it names none. Returns once every stage is
     * wired and the port is bound.
     *
     * @throws IllegalStateException naming the host and the reason when the stage hosts cannot be wired
     *                               within {@code troupe.serve.stage-link.connect-timeout}
     */
    public static InferenceServer start(InferenceWeights weights, ServeSettings s, int pipelineStages,
                                        StageLinks links) {
        if (links.remote() && pipelineStages < 2) {
            throw new IllegalArgumentException("stage hosts serve stages 1..N-1 of a 1xN layout with N >= 2: layout 1x"
                + pipelineStages + " with " + links.hosts().size() + " stage host(s)");
        }
        return start(weights, s, null, pipelineStages, links);
    }

    private static InferenceServer start(InferenceWeights weights, ServeSettings s, Executor stepExecutor,
                                         int pipelineStages) {
        return start(weights, s, stepExecutor, pipelineStages, StageLinks.from(ConfigFactory.load(),
            java.util.List.of()));
    }

    private static InferenceServer start(InferenceWeights weights, ServeSettings s, Executor stepExecutor,
                                         int pipelineStages, StageLinks links) {
        if (pipelineStages < 1 || pipelineStages > weights.config().nLayer()) {
            throw new IllegalArgumentException("pipeline stages must be in [1, n_layer=" + weights.config().nLayer()
                + "]: stages=" + pipelineStages);
        }
        int blocks = PagedKvCache.blocksForBudget(weights.config(), s.kvBlockTokens(), s.kvCacheMib(), s.kvPrecision());
        requireSizes(weights, s, blocks, Runtime.getRuntime().maxMemory());
        if (pipelineStages > 1) {
            return startPipelined(weights, s, pipelineStages, blocks, links);
        }
        return startOneStage(weights, s, stepExecutor, new ServeMetrics(blocks));
    }

    /**
     * Refuses sizes no server of these weights can use, before anything is allocated: a KV cache that
     * with the weights does not fit the heap ({@code heapBytes}, -Xmx; it is allocated at start, for the
     * layers these weights hold), or a max batch above the cache's blocks (every running sequence holds
     * one block at least, so such a batch can never fill).
     *
     * @throws IllegalArgumentException naming the setting, its value and the limit
     */
    static void requireSizes(InferenceWeights weights, ServeSettings s, int blocks, long heapBytes) {
        var cfg = weights.config();
        long cacheBytes = (long) blocks * PagedKvCache.bytesPerBlock(cfg, s.kvBlockTokens(), s.kvPrecision())
            / cfg.nLayer() * (weights.endBlock() - weights.firstBlock());
        if (cacheBytes > heapBytes - weights.weightBytes()) {
            throw new IllegalArgumentException(String.format(java.util.Locale.ROOT, "kv-cache-mib must fit the heap"
                + " beside the weights: kv-cache-mib=%d needs %d MiB here, the weights %d MiB, the heap limit (-Xmx)"
                + " is %d MiB", s.kvCacheMib(), cacheBytes >> 20, weights.weightBytes() >> 20, heapBytes >> 20));
        }
        requireBatchFits(s, blocks);
    }

    /** Refuses a max batch that a cache of {@code blocks} could never run (a running sequence holds a block). */
    private static void requireBatchFits(ServeSettings s, int blocks) {
        if (s.maxBatch() > blocks) {
            throw new IllegalArgumentException("max-batch must be at most the KV cache's blocks (each running"
                + " sequence holds one at least): max-batch=" + s.maxBatch() + ", blocks=" + blocks + " (kv-cache-mib="
                + s.kvCacheMib() + ", kv-block-tokens=" + s.kvBlockTokens() + ")");
        }
    }

    /**
     * The whole model on one stage, its step loop reporting to {@code metricsFor(blocks)}: a test
     * passes metrics whose calls fail, to see the loop survive failures outside the forward.
     */
    static InferenceServer startOneStage(InferenceWeights weights, ServeSettings s,
                                         java.util.function.IntFunction<ServeMetrics> metricsFor) {
        int blocks = PagedKvCache.blocksForBudget(weights.config(), s.kvBlockTokens(), s.kvCacheMib(), s.kvPrecision());
        return startOneStage(weights, s, null, metricsFor.apply(blocks));
    }

    private static InferenceServer startOneStage(InferenceWeights weights, ServeSettings s, Executor stepExecutor,
                                                 ServeMetrics metrics) {
        int blocks = metrics.kvBlocksTotal();
        KvCachedGpt model = new KvCachedGpt(weights, new PagedKvCache(weights.config(), s.kvBlockTokens(), blocks,
            weights.config().nLayer(), s.kvPrecision()));
        // a batch's rows are split over the cores (one pipeline stage per core does that for 1xN); with the step
        // thread isolated, over the cores it leaves to the rest of the process, on two cores none
        int cores = Runtime.getRuntime().availableProcessors();
        RowSplitter rows = new RowSplitter(s.isolateStepCore() ? Math.max(1, cores - 2) : cores, MIN_SPLIT_ROWS);
        model.splitRows(rows);
        BatchScheduler scheduler = new BatchScheduler(model, new BatchScheduler.Limits(s.maxBatch(), s.tokenBudget(),
            s.maxQueue()));
        scheduler.primeAhead(s.prefillAhead());         // used only with the prefill thread
        scheduler.cachePrefixes(s.prefixCache());
        // null: the decode loop runs the forward on its own thread ("troupe-serve-step")
        return bind(weights.config(), s, SchedulerActor.create(scheduler, stepExecutor, metrics, s.retryAfterS(),
            s.isolateStepCore(), s.prefillThread() && cores >= 2), metrics,
            null, rows, model, null, null);
    }

    /**
     * Serves the whole model on one {@code device} through {@link DeviceKvCachedGpt} (a GPU, or the CPU
     * device's reference loops): {@code params} by name as a checkpoint holds them (float32), uploaded
     * once; the KV cache on the device, {@code kvCacheMib} of float32 blocks. The steps run on the loop's
     * thread one at a time, with no prefill thread and no row splitter (the device parallelises a step);
     * the weights are not quantized and the KV cache is float32 whatever the settings say. The server
     * owns {@code device} and closes it last.
     */
    public static InferenceServer startOnDevice(GptConfig config, Map<String, float[]> params, Device device,
                                                ServeSettings s) {
        int blocks = PagedKvCache.blocksForBudget(config, s.kvBlockTokens(), s.kvCacheMib(), KvPrecision.F32);
        try {
            requireBatchFits(s, blocks);
        } catch (IllegalArgumentException e) {
            device.close();
            throw e;
        }
        // the allocator only: keys and values live on the device
        PagedKvCache cache = new PagedKvCache(config, s.kvBlockTokens(), blocks, 0);
        DeviceKvCachedGpt model;
        BatchScheduler scheduler;
        try {
            model = new DeviceKvCachedGpt(config, params, cache, device);
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
        AutoCloseable owned = () -> {
            try {
                model.close();
            } finally {
                device.close();
            }
        };
        try {
            scheduler = new BatchScheduler(model, new BatchScheduler.Limits(s.maxBatch(), s.tokenBudget(),
                s.maxQueue()));
            scheduler.cachePrefixes(s.prefixCache());
        } catch (RuntimeException e) {
            closeQuietly(owned);
            throw e;
        }
        ServeMetrics metrics = new ServeMetrics(blocks);
        return bind(config, s, SchedulerActor.create(scheduler, null, metrics, s.retryAfterS(), s.isolateStepCore(),
            false), metrics, null, owned, model, null, null);
    }

    private static InferenceServer startPipelined(InferenceWeights weights, ServeSettings s, int stages, int blocks,
                                                  StageLinks links) {
        // in one process the stages talk over IPC; stage hosts need this node's UDP settings (troupe.transport)
        io.troupe.runtime.transport.TransportSettings ts = links.remote() ? links.transport()
            : io.troupe.runtime.transport.TransportSettings.defaults().withReceiveBudgetBytes(64L << 20);
        PipelineStepRunner runner = new PipelineStepRunner(weights, stages, s.kvBlockTokens(), blocks, s.kvPrecision(),
            links, ts);
        KvCachedGpt first = runner.allocatingModel();
        BatchScheduler scheduler;
        try {
            scheduler = new BatchScheduler(first, new BatchScheduler.Limits(s.maxBatch(), s.tokenBudget(),
                s.maxQueue()));
            scheduler.cachePrefixes(s.prefixCache());
        } catch (RuntimeException e) {
            runner.close();
            throw e;
        }
        ServeMetrics metrics = new ServeMetrics(blocks);
        metrics.readPipeline(runner::down);
        metrics.readStageMoves(runner::stageMoves);
        metrics.readStuckStages(runner::stuckStageLosses);
        metrics.readFramesDropped(reason -> {
            io.troupe.runtime.transport.TransportNode node = runner.dataPlane().current();
            return node == null ? 0 : node.framesDropped(reason); // counts anew after a relaunch, as after a restart
        });
        return bind(weights.config(), s, SchedulerActor.create(scheduler, runner, metrics, s.retryAfterS()), metrics,
            null, runner, first, links.remote() ? links : null, runner);
    }

    /** How long a connection may pass no bytes: a minute past the longest deadline a request may ask for. */
    static final long IDLE_TIMEOUT_MS = CompletionRequest.MAX_DEADLINE_MS + 60_000;

    /** The HTTP layer's idle timeout, as its actor system runs with it. */
    java.time.Duration idleTimeout() {
        return system.settings().config().getDuration("pekko.http.server.idle-timeout");
    }

    private static InferenceServer bind(GptConfig modelConfig, ServeSettings s,
                                        org.apache.pekko.actor.typed.Behavior<SchedulerActor.Command> guardian,
                                        ServeMetrics metrics, ExecutorService own, AutoCloseable owned,
                                        DecodingModel model, StageLinks links, PipelineStepRunner pipeline) {
        // fail-mixed-versions: pekko-discovery resolves at 1.2.1 beside Pekko 1.7.0 (see the pom); the
        // reference.conf of this build says off, but another jar's reference.conf may come first on a classpath
        // run-by-jvm-shutdown-hook: the owner stops the server in order (drain, then close); a JVM hook of Pekko's
        // would terminate the system under a drain
        // parsing.error-handler: what the HTTP layer refuses before routing is answered in the JSON error shape
        // idle-timeout: a connection is closed after this long with no bytes either way, a request in flight or
        // not; so it outlasts the longest deadline a request may ask for (Pekko's 60 s reset requests that
        // waited out a stalled pipeline, or the default 60 s deadline, before their answer came)
        Config config = ConfigFactory.parseString("""
            pekko.loglevel = WARNING
            pekko.stdout-loglevel = WARNING
            pekko.actor.provider = local
            pekko.http.server.remote-address-header = off
            pekko.http.server.request-timeout = infinite
            pekko.http.server.idle-timeout = %d ms
            pekko.fail-mixed-versions = off
            pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off
            pekko.http.server.parsing.error-handler = "%s"
            """.formatted(IDLE_TIMEOUT_MS, JsonParsingErrorHandler.class.getName()))
            .withFallback(ConfigFactory.load());
        if (links != null) {                      // stage hosts: the control plane reaches them over Artery
            config = links.pekko(config);
        }
        ActorSystem<SchedulerActor.Command> system;
        try {
            system = ActorSystem.create(guardian, "troupe-serve", config);
        } catch (RuntimeException e) {
            closeQuietly(owned);
            throw e;
        }
        try {
            if (pipeline != null && links != null) {
                pipeline.awaitWired(links.connectTimeout().toMillis());
            }
            CompletionRoutes routes = new CompletionRoutes(system, system, metrics, modelConfig.name(),
                modelConfig.seqLen(), modelConfig.vocabSize(), s.deadlineMs(),
                s.maxBatch() + s.maxQueue());
            if (pipeline != null) {
                routes.readPipeline(pipeline::down);
                if (links != null) {
                    routes.readStageHosts(pipeline::stageHostsJson);
                    routes.readLastLoss(pipeline::lastLoss);
                }
            }
            ServerBinding binding = bindConnections(system, routes.route(), s, metrics).toCompletableFuture()
                .get(30, TimeUnit.SECONDS);
            return new InferenceServer(system, own, owned, binding, model, routes);
        } catch (Exception e) {
            system.terminate();
            if (own != null) {
                own.shutdownNow();
            }
            closeQuietly(owned);
            if (e instanceof IllegalStateException ise && pipeline != null && links != null
                && pipeline.down() != null) {
                throw ise;                           // the stage hosts were not wired: the reason says why
            }
            throw new IllegalStateException("cannot serve on " + s.host() + ":" + s.port() + ": " + e.getMessage(), e);
        }
    }

    /**
     * Binds {@code route} connection by connection: each connection's requests carry its
     * {@link ConnectionScope}, and the end of its request stream (the client's FIN, a reset, or a
     * failure) cancels the requests it still has running. What the HTTP layer refuses before routing is counted
     * in {@code metrics} ({@link HttpLayerLog}).
     */
    private static CompletionStage<ServerBinding> bindConnections(ActorSystem<SchedulerActor.Command> system,
        Route route, ServeSettings s, ServeMetrics metrics) {
        Flow<HttpRequest, HttpResponse, NotUsed> handler = route.flow(system);
        Materializer materializer = Materializer.matFromSystem(system);
        // the HTTP layer logs as the system does, and its parsing error handler counts into these metrics
        HttpLayerLog log = new HttpLayerLog((org.apache.pekko.actor.ExtendedActorSystem) system.classicSystem(),
            metrics);
        return Http.get(system).newServerAt(s.host(), s.port()).logTo(log).connectionSource()
            .to(Sink.foreach(connection -> {
                ConnectionScope scope = new ConnectionScope(id -> system.tell(new SchedulerActor.Cancel(id)));
                connection.handleWith(Flow.of(HttpRequest.class)
                    .watchTermination((nu, ended) -> {
                        ended.whenComplete((done, failure) -> scope.clientClosed());
                        return nu;
                    })
                    .map(request -> request.addAttribute(ConnectionScope.KEY, scope))
                    .via(handler), materializer);
            }))
            .run(system);
    }

    /** The data plane of its pipeline stages, or null on one stage (a test closes its node's Aeron client). */
    DataPlane pipelineDataPlane() {
        return owned instanceof PipelineStepRunner p ? p.dataPlane() : null;
    }

    /** The bound port (useful with port 0). */
    public int port() {
        return binding.localAddress().getPort();
    }

    /** The forward the steps run (of the first stage, in a pipeline). */
    public DecodingModel model() {
        return model;
    }

    /** Completes when the server's actor system has terminated. */
    public java.util.concurrent.CompletionStage<org.apache.pekko.Done> whenTerminated() {
        return system.getWhenTerminated();
    }

    /**
     * Starts draining, as before a planned stop: from now on {@code GET /health} and every new
     * completion answer 503, while the completions accepted before (decoding or still queued) run to
     * their end and are answered in full. The future completes with true once none is left, or with
     * false when {@code timeout} passes first; {@link #close} then ends what is left (finish reason
     * {@code cancelled}). Draining cannot be undone.
     */
    public CompletableFuture<Boolean> drain(Duration timeout) {
        return routes.beginDrain().thenApply(v -> true)
            .completeOnTimeout(false, Math.max(0, timeout.toMillis()), TimeUnit.MILLISECONDS);
    }

    /** Completions accepted over HTTP and not yet answered in full (queued, decoding, or sending their end). */
    public long requestsInFlight() {
        return routes.inFlight();
    }

    @Override
    public void close() {
        try {
            binding.terminate(Duration.ofSeconds(2)).toCompletableFuture().get(5, TimeUnit.SECONDS);
        } catch (Exception ignored) {
            // shutting down regardless
        }
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception ignored) {
            // the executor is stopped below either way
        }
        if (ownExecutor != null) {
            ownExecutor.shutdownNow();
        }
        closeQuietly(owned);
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c != null) {
            try {
                c.close();
            } catch (Exception ignored) {
                // shutting down regardless
            }
        }
    }
}
