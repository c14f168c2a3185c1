package io.troupe.actors.serve;

import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.StepBatch;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.javadsl.ActorContext;

/**
 * Runs the model's forward of planned steps off the scheduler actor's thread, for pipeline stages
 * ({@link PipelineStepRunner}); the whole model on one stage runs in a {@link DecodeLoop}. Up to
 * {@link #depth} steps may be in flight; their results complete in the order the steps were run.
 */
interface StepRunner extends AutoCloseable {
    /** Steps that may be in flight at once (1, or the number of pipeline stages). */
    int depth();

    /** The model that allocates KV blocks and whose config the scheduler plans with (the first stage). */
    KvCachedGpt allocatingModel();

    /** Called once from the scheduler actor's setup; spawns whatever actors the runner needs. */
    void start(ActorContext<?> ctx);

    /** Starts the forward of {@code batch}, valid until the result completes; the result is its logits. */
    CompletionStage<float[]> run(StepBatch batch);

    /** Why no step can run now (a pipeline stage is lost), or null. */
    default String down() {
        return null;
    }

    /**
     * Why no request can be served now and new ones are refused at once rather than queued (a pipeline whose
     * stages refuse each other's frames), or null: while {@link #down} only, requests wait for the pipeline.
     */
    default String refuses() {
        return null;
    }

    /**
     * True when a failed step or a lost stage is recovered from: the scheduler returns its running
     * sequences to the queue, waits for {@link #recover}, and recomputes them. False: a failed step
     * ends the requests it held.
     */
    default boolean recovers() {
        return false;
    }

    /**
     * Who to tell (any thread) when the runner starts refusing to serve ({@link #refuses} turns non-null, with that
     * reason): the requests held cannot be served either, and are answered at once with that reason.
     */
    default void onRefuses(java.util.function.Consumer<String> listener) {
    }

    /** Who to tell (any thread) when the runner finds a stage lost between steps. */
    default void onDown(java.util.function.Consumer<String> listener) {
    }

    /** Runs {@code up} (any thread) once steps can run again: at once if nothing is down. */
    default void recover(Runnable up) {
        up.run();
    }

    @Override
    void close();
}
