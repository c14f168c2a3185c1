package io.troupe.actors.cluster;

import io.troupe.actors.engine.ForwardingStageModule;
import io.troupe.models.ModelShape;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.tensor.Tensor;
import java.util.function.IntConsumer;

/**
 * Test fixture: GPT's stages ({@link GptStages}, every call passed on unchanged) whose build a test can make fail and
 * whose close it can look in on. {@link #failBuilds} makes every stage built from then on (in this JVM) throw
 * instead of being built; {@link #onClose} runs a test's check as a stage is about to free its tensors (its
 * parameters and gradients), before GPT's close frees them. Both are cleared by {@link #reset}. Thread-safe.
 * {@link #onParameterDone} has one stage run a test's check each time its weight gradient reports a parameter final,
 * before the report reaches the runtime's hook.
 */
public final class ProbedGptStages implements StageModuleFactory {
    private static volatile RuntimeException buildFailure;
    private static volatile Runnable closeProbe;

    private final GptStages gpt = new GptStages();

    /** Every stage built from now on throws {@code failure} rather than being built. */
    static void failBuilds(RuntimeException failure) {
        buildFailure = failure;
    }

    /** {@code probe} runs each time a stage is about to free its tensors (on the thread that closes it). */
    static void onClose(Runnable probe) {
        closeProbe = probe;
    }

    /**
     * {@code probe} runs each time {@code stage} (one of these) reports a parameter final (on the thread running its
     * weight gradient), before the report goes on; {@code null} removes it.
     */
    static void onParameterDone(StageModule stage, IntConsumer probe) {
        ((ProbedStage) stage).parameterProbe = probe;
    }

    /** Stages build and close as GPT's again. */
    static void reset() {
        buildFailure = null;
        closeProbe = null;
    }

    @Override
    public StageModule create(Stage stage) {
        return built(gpt.create(stageOrFail(stage)));
    }

    @Override
    public StageModule create(Stage stage, TensorParallelGroup group, boolean sequenceParallel) {
        return built(gpt.create(stageOrFail(stage), group, sequenceParallel));
    }

    private static Stage stageOrFail(Stage stage) {
        RuntimeException f = buildFailure;
        if (f != null) {
            throw f;
        }
        return stage;
    }

    private static StageModule built(StageModule gpt) {
        return new ProbedStage(gpt);
    }

    @Override
    public boolean supportsTensorParallel() {
        return gpt.supportsTensorParallel();
    }

    @Override
    public void checkTensorParallel(ModelShape model, int tp) {
        gpt.checkTensorParallel(model, tp);
    }

    /** GPT's stage, every call passed on; {@link #close()} runs the probe first, a report of a parameter its own. */
    private static final class ProbedStage extends ForwardingStageModule {
        private volatile IntConsumer parameterProbe;

        ProbedStage(StageModule gpt) {
            super(gpt);
        }

        @Override
        public void backwardWeight(int slot, IntConsumer parameterDone) {
            delegate.backwardWeight(slot, probed(parameterDone));
        }

        private IntConsumer probed(IntConsumer parameterDone) {
            IntConsumer probe = parameterProbe;
            return probe == null ? parameterDone : i -> {
                probe.accept(i);
                parameterDone.accept(i);
            };
        }

        @Override
        public Tensor backward(int slot, Tensor gradOutput, float lossScale, IntConsumer parameterDone) {
            return delegate.backward(slot, gradOutput, lossScale, probed(parameterDone));
        }

        @Override
        public void close() {
            Runnable probe = closeProbe;
            if (probe != null) {
                probe.run();
            }
            delegate.close();
        }
    }
}
