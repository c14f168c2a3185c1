package io.troupe.actors.engine;

import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.memory.GradientArena;
import io.troupe.models.memory.RankMemory;
import io.troupe.models.optim.AdamW;
import io.troupe.models.optim.StepTail;
import io.troupe.models.parallel.tp.TensorParallelGradients;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * The model chunks of one {@link StageWorker} (one {@link StageModule} per virtual stage), their
 * optimizers, the step parts {@link StepTail} updates, the packed owned gradients of ZeRO stage 2 in one
 * process, and the gradient hooks a data-parallel runtime registers, with the count of weight-gradient
 * passes that decides when a chunk's gradients are final. It owns the chunks, optimizers and owned
 * gradients and frees them through {@link #closeOwned}.
 *
 * <p>Threading: built by the worker's constructor; sharded and given hooks before the first step;
 * otherwise used only on the worker's compute thread (its step and evaluation loops).
 */
final class StageChunks {
    private static final IntConsumer NO_HOOK = i -> { };

    private final PipelineJobSpec spec;
    private final Device device;
    private final StageModule[] chunks;
    private final AdamW[] optimizers;
    private final IntConsumer[] gradientHooks;
    private final int[] weightsDone;
    private final IntConsumer[] everyWeightHooks;
    /** ZeRO 2 in one process: per chunk, the packed gradients of the ranges its optimizer owns. */
    private final Tensor[] ownedGradients;
    private List<StepTail.Part> stepParts = List.of();

    /** Room for {@code spec}'s virtual stages; nothing is built until {@link #build}. */
    StageChunks(PipelineJobSpec spec, Device device) {
        this.spec = spec;
        this.device = device;
        int v = spec.layout().virtualStages();
        this.chunks = new StageModule[v];
        this.optimizers = new AdamW[v];
        this.gradientHooks = new IntConsumer[v];
        this.weightsDone = new int[v];
        this.everyWeightHooks = new IntConsumer[v];
        this.ownedGradients = new Tensor[v];
    }

    /**
     * Builds chunk by chunk the module of model stage {@code g = modelStage(c)} and its optimizer (under
     * ZeRO 1/2 holding the moments of replica {@code dpIndex}'s reduce-scatter segment only). What was
     * built before a failure stays here for {@link #closeOwned}.
     */
    void build(int dpIndex, int ppIndex, TensorParallelGroup tensorParallel, long seed) {
        int stages = spec.layout().modelStages();
        List<StepTail.Part> parts = new ArrayList<>();
        StageModuleFactory factory = StageModuleFactories.named(spec.moduleFactory());
        for (int c = 0; c < chunks.length; c++) {
            int g = c * spec.layout().pp() + ppIndex;
            StageModule chunk = factory.create(new StageModuleFactory.Stage(spec.train().model(), device, g,
                stages, spec.partition().startBlock(g), spec.partition().endBlock(g), spec.microBatchRows(), seed),
                tensorParallel, spec.sequenceParallel());
            chunks[c] = chunk;
            chunk.recompute(spec.memory().recompute());
            long numel = chunk.params().numel();
            if (spec.zeroSharded()) {
                // ZeRO 1/2: moments of this replica's reduce-scatter segment only.
                int dp = spec.layout().dp();
                long start = io.troupe.collectives.Communicator.segmentStart(numel, dp, dpIndex);
                long end = io.troupe.collectives.Communicator.segmentStart(numel, dp, dpIndex + 1);
                optimizers[c] = AdamW.ranges(spec.train().adamw(), device, chunk.parameters(), numel,
                    new long[] {start},
                    new long[] {end - start});
            } else {
                optimizers[c] = new AdamW(spec.train().adamw(), device, chunk.parameters(), numel);
            }
            parts.add(new StepTail.Part(device, chunk.params(), chunk.grads(), optimizers[c]));
        }
        this.stepParts = List.copyOf(parts);
    }

    int count() {
        return chunks.length;
    }

    StageModule chunk(int v) {
        return chunks[v];
    }

    AdamW optimizer(int v) {
        return optimizers[v];
    }

    List<StepTail.Part> stepParts() {
        return stepParts;
    }

    Tensor ownedGradients(int v) {
        return ownedGradients[v];
    }

    void onGradientsFinal(int v, IntConsumer hook) {
        gradientHooks[v] = hook;
    }

    void onEveryWeightGradient(int v, IntConsumer hook) {
        everyWeightHooks[v] = hook;
    }

    /** Zeroes every gradient (owned packed ones too) and the weight-gradient counts: a step's start. */
    void zeroGradients() {
        for (StageModule c : chunks) {
            c.zeroGrads();
        }
        for (Tensor owned : ownedGradients) {
            if (owned != null) {
                device.fill(owned, 0f);
            }
        }
        Arrays.fill(weightsDone, 0);
    }

    /** Counts a W of chunk v; the step's last one gets the chunk's hook, the others a no-op. */
    IntConsumer weightHook(int v) {
        if (everyWeightHooks[v] != null) {
            return everyWeightHooks[v];
        }
        IntConsumer hook = gradientHooks[v];
        return hook != null && ++weightsDone[v] == spec.microbatches() ? hook : NO_HOOK;
    }

    /** See {@link StageWorker#shardOptimizer}. */
    void shardOptimizer(int v, long[] starts, long[] numels) {
        StageModule chunk = chunks[v];
        AdamW old = optimizers[v];
        optimizers[v] = AdamW.ranges(spec.train().adamw(), device, chunk.parameters(), chunk.params().numel(), starts,
            numels);
        old.close();
        List<StepTail.Part> parts = new ArrayList<>(stepParts);
        parts.set(v, new StepTail.Part(device, chunk.params(), chunk.grads(), optimizers[v]));
        stepParts = List.copyOf(parts);
    }

    /** See {@link StageWorker#shardGradients(long)}. */
    GradientArena[] shardGradients(long bucketElements) {
        GradientArena[] arenas = new GradientArena[chunks.length];
        for (int c = 0; c < chunks.length; c++) {
            arenas[c] = chunks[c].shardGradients(bucketElements);
            keepOwnedGradients(c, arenas[c]);
        }
        return arenas;
    }

    /** See {@link StageWorker#shardGradients(int, long[], long[])}. */
    GradientArena shardGradients(int v, long[] bucketStartElements, long[] bucketNumels) {
        GradientArena arena = chunks[v].shardGradients(bucketStartElements, bucketNumels);
        keepOwnedGradients(v, arena);
        return arena;
    }

    private void keepOwnedGradients(int c, GradientArena arena) {
        if (arena == null) {
            return;
        }
        ownedGradients[c] = device.allocate((int) optimizers[c].stateNumel());
        device.fill(ownedGradients[c], 0f);
        List<StepTail.Part> parts = new ArrayList<>(stepParts);
        parts.set(c, new StepTail.Part(device, chunks[c].params(), ownedGradients[c], optimizers[c]));
        stepParts = List.copyOf(parts);
    }

    /** Sums over the tp group the per-member partial gradients; see {@link StageWorker#reducePartialGradients}. */
    void reducePartialGradients(TensorParallelGroup tensorParallel) {
        for (StageModule c : chunks) {
            TensorParallelGradients.reducePartialGradients(c, tensorParallel);
        }
    }

    /** See {@link StageWorker#normParts}. */
    List<StepTail.Part> normParts(int tpIndex) {
        if (tpIndex == 0) {
            return stepParts();
        }
        List<StepTail.Part> out = new ArrayList<>();
        for (int c = 0; c < chunks.length; c++) {
            StepTail.Part chunk = stepParts().get(c);
            for (Tensor counted : TensorParallelGradients.normViews(chunks[c], tpIndex)) {
                out.add(new StepTail.Part(chunk.device(), chunk.params(), counted, chunk.optimizer()));
            }
        }
        return out;
    }

    /** See {@link StageWorker#ownedNormParts}. */
    List<StepTail.Part> ownedNormParts(int tpIndex) {
        List<StepTail.Part> out = new ArrayList<>();
        for (int c = 0; c < chunks.length; c++) {
            for (StepTail.Part owned : stepParts().get(c).ownedGradients()) {
                if (tpIndex == 0) {
                    out.add(owned);
                    continue;
                }
                long base = chunks[c].grads().offsetElements();
                long start = owned.grads().offsetElements() - base;
                long end = start + owned.grads().numel();
                for (Tensor v : TensorParallelGradients.normViews(chunks[c], tpIndex)) {
                    long lo = Math.max(start, v.offsetElements() - base);
                    long hi = Math.min(end, v.offsetElements() - base + v.numel());
                    if (lo < hi) {
                        out.add(new StepTail.Part(owned.device(), owned.params(),
                            chunks[c].grads().view(lo, (int) (hi - lo)), owned.optimizer()));
                    }
                }
            }
        }
        return out;
    }

    /** The live activation bytes of every chunk. */
    long activationBytesLive() {
        long live = 0;
        for (StageModule c : chunks) {
            live += c.activationBytesLive();
        }
        return live;
    }

    /** See {@link StageWorker#memory}; {@code commBytes} are the worker's receive buffers. */
    RankMemory memory(long commBytes) {
        long params = 0;
        long grads = 0;
        long optimizer = 0;
        long activations = 0;
        for (int c = 0; c < chunks.length; c++) {
            params += chunks[c].params().numel() * 4;
            grads += chunks[c].grads().numel() * 4 + (ownedGradients[c] == null ? 0 : ownedGradients[c].numel() * 4);
            optimizer += optimizers[c].stateBytes();
            activations += chunks[c].activationBytes();
        }
        return new RankMemory(params, grads, optimizer, activations, commBytes);
    }

    /** The activation bytes of {@code liveSlots} micro-batch slots per chunk; see {@link StageWorker#plannedMemory}. */
    long plannedActivationBytes(int liveSlots) {
        long act = 0;
        for (StageModule c : chunks) {
            act += c.activationBytesPerSlot() * liveSlots + c.activationBytesShared();
        }
        return act;
    }

    /**
     * Frees chunk by chunk from the last its packed owned gradients, its optimizer and its module; what was
     * never built is skipped and every part is tried even after one throws.
     *
     * @param failure the failure so far, or {@code null}
     * @return {@code failure} with the failures of these parts added ({@link Closing})
     */
    Throwable closeOwned(Throwable failure) {
        Throwable f = failure;
        for (int c = chunks.length - 1; c >= 0; c--) {
            f = Closing.close(f, ownedGradients[c]);
            f = Closing.close(f, optimizers[c]);
            f = Closing.close(f, chunks[c]);
        }
        return f;
    }
}
