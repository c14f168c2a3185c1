package io.troupe.actors.engine;

import io.troupe.models.ModelShape;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptStages;
import io.troupe.models.memory.GradientArena;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import java.util.function.Predicate;

/**
 * Test fixture: GPT's stages ({@link GptStages}, every other call passed on unchanged) that decline ZeRO 2's gradient
 * slices: both {@code shardGradients} return {@code null}, so each stage keeps its whole gradient buffer, while
 * {@code gradientRowElements} still reports GPT's rows (a module may say how it could cut a weight and still keep
 * its buffer whole). A runtime must then train the stage as under zero 1. {@link FirstStageOnly}'s first model
 * stage declines and its other stages are GPT's.
 */
public class WholeGradientGptStages implements StageModuleFactory {
    private final GptStages gpt = new GptStages();
    private final Predicate<Stage> declines;

    /** Every stage keeps its whole gradient buffer. */
    public WholeGradientGptStages() {
        this(stage -> true);
    }

    private WholeGradientGptStages(Predicate<Stage> declines) {
        this.declines = declines;
    }

    /** Only the first model stage keeps its whole gradient buffer; the others are GPT's, slices and all. */
    public static final class FirstStageOnly extends WholeGradientGptStages {
        public FirstStageOnly() {
            super(Stage::first);
        }
    }

    @Override
    public StageModule create(Stage stage) {
        StageModule built = gpt.create(stage);
        return declines.test(stage) ? new WholeGradientStage(built) : built;
    }

    @Override
    public StageModule create(Stage stage, TensorParallelGroup group, boolean sequenceParallel) {
        StageModule built = gpt.create(stage, group, sequenceParallel);
        return declines.test(stage) ? new WholeGradientStage(built) : built;
    }

    @Override
    public boolean supportsTensorParallel() {
        return gpt.supportsTensorParallel();
    }

    @Override
    public void checkTensorParallel(ModelShape model, int tp) {
        gpt.checkTensorParallel(model, tp);
    }

    /** GPT's stage keeping its whole gradient buffer. */
    private static final class WholeGradientStage extends ForwardingStageModule {
        WholeGradientStage(StageModule gpt) {
            super(gpt);
        }

        @Override
        public GradientArena shardGradients(long bucketElements) {
            return null;
        }

        @Override
        public GradientArena shardGradients(long[] bucketStartElements, long[] bucketNumels) {
            return null;
        }
    }
}
