package io.troupe.actors.serve;

import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.StepBatch;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.javadsl.ActorContext;

/** The whole model on one step executor, one step at a time. */
final class LocalStepRunner implements StepRunner {
    private final KvCachedGpt model;
    private final Executor executor;

    LocalStepRunner(KvCachedGpt model, Executor executor) {
        this.model = model;
        this.executor = executor;
    }

    @Override
    public int depth() {
        return 1;
    }

    @Override
    public KvCachedGpt allocatingModel() {
        return model;
    }

    @Override
    public void start(ActorContext<?> ctx) {
    }

    @Override
    public CompletionStage<float[]> run(StepBatch batch) {
        try {
            return CompletableFuture.supplyAsync(() -> model.forward(batch), executor);
        } catch (RuntimeException e) {           // the executor refused the step
            return CompletableFuture.failedFuture(e);
        }
    }

    @Override
    public void close() {
    }
}
