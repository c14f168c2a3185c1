package io.troupe.models;

import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;

/**
 * Builds the initialised {@link StageModule} of one pipeline stage. The runtime calls it on the
 * worker that owns the stage, on that worker's device, so a factory travels between nodes by class
 * name: an implementation is a public class with a public no-argument constructor, present on every
 * node's class path (the job names it; the runtime looks it up by that name). GPT's factory is
 * {@code io.troupe.models.gpt.GptStages}; users supply their own to train another model with the
 * same schedules, data plane and collectives.
 *
 * <p>A factory must be deterministic: every replica of a stage is built from the same {@link Stage}
 * value and must start bitwise identical (seeded initialisation).
 */
@FunctionalInterface
public interface StageModuleFactory {

    /**
     * What one stage is.
     *
     * @param model      the model's shape (vocabulary, sequence length, width, layer count)
     * @param device     where the stage's tensors live
     * @param index      model stage index, 0 = takes token ids, {@code count - 1} = computes the loss
     * @param count      number of model stages
     * @param firstLayer first layer (block) of this stage
     * @param endLayer   one past its last layer
     * @param rows       sequences per micro-batch
     * @param seed       initialisation seed of the whole model
     */
    record Stage(ModelShape model, Device device, int index, int count, int firstLayer, int endLayer, int rows,
                 long seed) {
        public Stage {
            if (index < 0 || index >= count) {
                throw new IllegalArgumentException("stage index must be in [0, " + count + "): index=" + index);
            }
            if (firstLayer < 0 || endLayer < firstLayer || endLayer > model.nLayer()) {
                throw new IllegalArgumentException("layers [" + firstLayer + ", " + endLayer + ") outside the model's "
                    + model.nLayer() + " layers");
            }
            if (rows < 1) {
                throw new IllegalArgumentException("rows must be >= 1: rows=" + rows);
            }
        }

        public boolean first() {
            return index == 0;
        }

        public boolean last() {
            return index == count - 1;
        }
    }

    /** Builds and initialises the stage. */
    StageModule create(Stage stage);

    /**
     * Whether this factory's stages can be split by tensor parallelism. A layout with tp > 1 and a
     * factory that cannot is refused before any work ({@link #checkTensorParallel}).
     */
    default boolean supportsTensorParallel() {
        return false;
    }

    /**
     * Refuses a tp degree this model cannot be split by, with the numbers in the message (GPT: heads,
     * vocabulary and MLP width must divide by tp). Called before any work.
     *
     * @throws IllegalArgumentException naming the factory or the numbers
     */
    default void checkTensorParallel(ModelShape model, int tp) {
        if (tp > 1 && !supportsTensorParallel()) {
            throw new IllegalArgumentException("stage module factory " + getClass().getName()
                + " does not support tensor parallelism: tp=" + tp);
        }
    }

    /**
     * Builds and initialises the stage as member {@code group.index()} of a tensor-parallel group:
     * the member's shard of every split parameter, communicating through {@code group}; with
     * {@code sequenceParallel}, also the residual stream split by tokens (a factory that has no such
     * mode may ignore it). Every member is built from the same {@link Stage}. The default builds
     * {@link #create(Stage)} for a group of one and refuses larger groups.
     */
    default StageModule create(Stage stage, TensorParallelGroup group, boolean sequenceParallel) {
        if (group.size() == 1) {
            return create(stage);
        }
        checkTensorParallel(stage.model(), group.size());
        throw new IllegalArgumentException("stage module factory " + getClass().getName()
            + " supports tensor parallelism but does not build tp members: tp=" + group.size());
    }
}
