package io.troupe.actors.serve;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.infer.BatchScheduler;
import io.troupe.models.infer.InferenceWeights;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.PagedKvCache;
import java.time.Duration;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;

/**
 * A running model server: the weights, a paged KV cache sized by the budget, the scheduler actor
 * (the guardian of its own actor system), one step-executor thread, and the HTTP binding.
 * {@link #close} unbinds, stops the actor system and the executor.
 */
public final class InferenceServer implements AutoCloseable {
    private final ActorSystem<SchedulerActor.Command> system;
    private final ExecutorService ownExecutor;
    private final ServerBinding binding;
    private final KvCachedGpt model;

    private InferenceServer(ActorSystem<SchedulerActor.Command> system, ExecutorService ownExecutor,
                            ServerBinding binding,
                            KvCachedGpt model) {
        this.system = system;
        this.ownExecutor = ownExecutor;
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
        int blocks = PagedKvCache.blocksForBudget(weights.config(), s.kvBlockTokens(), s.kvCacheMib());
        KvCachedGpt model = new KvCachedGpt(weights, new PagedKvCache(weights.config(), s.kvBlockTokens(), blocks));
        BatchScheduler scheduler = new BatchScheduler(model,
            new BatchScheduler.Limits(s.maxBatch(), s.tokenBudget(), s.maxQueue()));
        ServeMetrics metrics = new ServeMetrics(blocks);
        ExecutorService own = stepExecutor == null ? Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "troupe-serve-step");
            t.setDaemon(true);
            return t;
        }) : null;
        Executor exec = stepExecutor == null ? own : stepExecutor;
        Config config = ConfigFactory.parseString("""
            pekko.loglevel = WARNING
            pekko.stdout-loglevel = WARNING
            pekko.actor.provider = local
            pekko.http.server.remote-address-header = off
            """).withFallback(ConfigFactory.load());
        ActorSystem<SchedulerActor.Command> system = ActorSystem.create(
            SchedulerActor.create(scheduler, exec, metrics, s.retryAfterS()), "troupe-serve", config);
        try {
            CompletionRoutes routes = new CompletionRoutes(system, system, metrics, weights.config().name(),
                weights.config().seqLen(), weights.config().vocabSize(), s.deadlineMs());
            ServerBinding binding = Http.get(system).newServerAt(s.host(), s.port()).bind(routes.route())
                .toCompletableFuture().get(30, TimeUnit.SECONDS);
            return new InferenceServer(system, own, binding, model);
        } catch (Exception e) {
            system.terminate();
            if (own != null) {
                own.shutdownNow();
            }
            throw new IllegalStateException("cannot serve on " + s.host() + ":" + s.port() + ": " + e.getMessage(), e);
        }
    }

    /** The bound port (useful with port 0). */
    public int port() {
        return binding.localAddress().getPort();
    }

    public KvCachedGpt model() {
        return model;
    }

    /** Completes when the server's actor system has terminated. */
    public java.util.concurrent.CompletionStage<org.apache.pekko.Done> whenTerminated() {
        return system.getWhenTerminated();
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
    }
}
