package io.troupe.models;

import io.troupe.models.parallel.TensorParallelPlacement;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;

/**
 * A pipeline stage: the unit a stage actor owns. The single-device model is one stage holding
 * everything; a pipeline calls its stages in turn. Micro-batches live in numbered activation
 * slots, so a schedule may run several forwards before their backwards.
 *
 * <p>Contract:
 * <ul>
 *   <li>{@link #forward}: the first stage takes token ids (I32, rows*T), the others activations
 *       (rows, T, C) which are copied in; the last stage also takes targets (I32) and returns
 *       {@code null} (the loss is read with {@link #loss}); other stages return their output
 *       activations, valid until the slot's backward.</li>
 *   <li>{@link #backwardInput} (B) computes the gradient of the stage input (returned; {@code null}
 *       on the first stage; valid until the next backward call) and keeps what the weight gradient
 *       needs; {@link #backwardWeight} (W) accumulates parameter gradients and frees the slot.
 *       {@link #backward} runs both.</li>
 *   <li>Parameter gradients accumulate across slots until {@link #zeroGrads()}.</li>
 *   <li>{@link #parameters()} names every parameter tensor inside {@link #params()}: the optimizer
 *       reads weight decay from it, checkpoints store and restore parameters by these names (so a
 *       checkpoint written under one layout restores under another), and initialisation is the
 *       module's own business ({@link StageModuleFactory} builds initialised stages).</li>
 *   <li>Slot {@code -1} is reserved for evaluation forwards that are never followed by a backward.</li>
 * </ul>
 * A runtime builds its stages through a {@link StageModuleFactory}, so users may train their own
 * modules instead of GPT.
 * Threading: one thread (the worker's device executor) calls a stage.
 */
public interface StageModule extends AutoCloseable {

    boolean isFirst();

    /** The device holding this stage's tensors. */
    Device device();

    /** Every parameter tensor inside {@link #params()}, with its name, shape and local offset. */
    List<ParamSpec> parameters();

    /**
     * How parameter {@code i} of {@link #parameters()} is held across a tensor-parallel group: split
     * (this member holds a shard) or replicated (every member holds it; it counts once in the global
     * gradient norm). The default, for modules that are never split, is replicated.
     */
    default TensorParallelPlacement tensorParallelPlacement(int i) {
        return new TensorParallelPlacement.Replicated(false);
    }

    boolean isLast();

    /** The flat parameter buffer: the same tensor for the stage's whole life (the optimizer holds it). */
    Tensor params();

    /** The flat gradient buffer, same layout as {@link #params()}; the same tensor for the stage's whole life. */
    Tensor grads();

    void zeroGrads();

    Tensor forward(int slot, Tensor input, Tensor targets);

    /** Mean cross-entropy of the slot's micro-batch (last stage only). */
    double loss(int slot);

    /**
     * @param gradOutput gradient of this stage's output ({@code null} on the last stage)
     * @param lossScale  d(total loss)/d(per-token loss) for the last stage, e.g. 1/(global rows*T)
     */
    Tensor backwardInput(int slot, Tensor gradOutput, float lossScale);

    void backwardWeight(int slot);

    /**
     * {@link #backwardWeight} that also tells {@code parameterDone} the index (into
     * {@link #parameters()}) of every parameter whose gradient this call has finished adding to, as
     * soon as it has: a data-parallel runtime starts all-reducing a bucket of gradients while the
     * rest of the weight gradient is still being computed. Each index is reported exactly once. The
     * default reports every parameter after the whole call, last parameter first; modules that
     * compute layer by layer report earlier.
     */
    default void backwardWeight(int slot, java.util.function.IntConsumer parameterDone) {
        backwardWeight(slot);
        for (int i = parameters().size() - 1; i >= 0; i--) {
            parameterDone.accept(i);
        }
    }

    /**
     * Bytes this stage holds now for activations kept between forward and backward (every slot it
     * has allocated; slots are kept for reuse). 0 when the module does not say.
     */
    default long activationBytes() {
        return 0;
    }

    /**
     * Asks the stage to recompute activations in backward instead of keeping them from forward
     * (before its first forward). The default keeps everything and refuses any other mode.
     *
     * @throws IllegalArgumentException naming the mode when the module cannot recompute it
     */
    default void recompute(io.troupe.models.memory.Recompute mode) {
        if (mode != io.troupe.models.memory.Recompute.NONE) {
            throw new IllegalArgumentException("this stage module keeps every activation: recompute="
                + mode.optionName() + " is not available for " + getClass().getName());
        }
    }

    /**
     * Bytes this stage holds now for micro-batches between their forward and their weight gradient
     * (plus any shared workspace): the live part of {@link #activationBytes}, which a trace samples
     * over a step. 0 when the module does not say.
     */
    default long activationBytesLive() {
        return 0;
    }

    /**
     * Bytes of activation workspace shared by every slot (included in {@link #activationBytes}); 0
     * when the module does not say.
     */
    default long activationBytesShared() {
        return 0;
    }

    /**
     * ZeRO stage 2: asks the stage to keep its gradients in a smaller buffer laid out as the
     * returned arena describes (from then on {@link #grads()} is that buffer, and the
     * {@code parameterDone} of the weight-gradient passes receives indices into the arena's
     * pieces, not parameters), with buckets of at most about {@code bucketElements} floats. Before
     * the first forward. {@code null}: the module keeps its whole gradient buffer (the default).
     */
    default io.troupe.models.memory.GradientArena shardGradients(long bucketElements) {
        return null;
    }

    /**
     * ZeRO stage 2 with buckets the runtime chose: as {@link #shardGradients(long)}, but bucket
     * {@code b} is the flat range {@code [bucketStartElements[b], + bucketNumels[b])} of the whole
     * gradient buffer (whole parameters; buckets in the order the weight-gradient pass completes
     * them), imaged at the start of the window. {@code null}: the module keeps its whole buffer.
     */
    default io.troupe.models.memory.GradientArena shardGradients(long[] bucketStartElements, long[] bucketNumels) {
        return null;
    }

    /**
     * ZeRO stage 2: the width, in elements, of the rows in which the weight-gradient pass can form
     * parameter {@code i}'s gradient block by block ({@link #shardGradients(long[], long[])} may
     * then cut it between buckets at those rows); 0 when it forms the gradient whole (the default).
     */
    default int gradientRowElements(int i) {
        return 0;
    }

    /** Bytes one micro-batch's activation slot takes (for the memory plan before the first step); 0 when unknown. */
    default long activationBytesPerSlot() {
        return 0;
    }

    default Tensor backward(int slot, Tensor gradOutput, float lossScale) {
        Tensor g = backwardInput(slot, gradOutput, lossScale);
        backwardWeight(slot);
        return g;
    }

    /**
     * B then W of the slot as one call, for schedules that do not split them: {@code parameterDone}
     * as in {@link #backwardWeight(int, java.util.function.IntConsumer)}; returns what
     * {@link #backwardInput} returns. A module may interleave the two layer by layer (full
     * recomputation does, so each layer's recomputed activations serve both at once); a caller
     * then has the input gradient only when the call returns.
     */
    default Tensor backward(int slot, Tensor gradOutput, float lossScale,
                            java.util.function.IntConsumer parameterDone) {
        Tensor g = backwardInput(slot, gradOutput, lossScale);
        backwardWeight(slot, parameterDone);
        return g;
    }

    @Override
    void close();
}
