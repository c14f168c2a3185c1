package io.troupe.actors.engine;

import static io.troupe.actors.engine.StageWorker.nowUs;

import io.troupe.actors.schedule.Action;
import io.troupe.actors.trace.TimelineInterval;
import io.troupe.models.StageModule;
import io.troupe.models.data.Batches;
import io.troupe.models.parallel.tp.TensorParallelGroup;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;
import java.util.Map;

/**
 * Runs the training actions a {@link StageWorker}'s schedule picks (F, B, BW, W) on its chunks: a forward
 * of the first or last model stage stages the micro-batch's token ids and targets first, the last model
 * stage keeps the micro-batch's loss, activations go to the next stage and input gradients to the previous
 * one over the worker's stage link (each send recorded as a {@code send} interval on the worker's timeline),
 * and the micro-batch's activation slot is taken by its forward and freed by its weight gradient (or the
 * fused B and W). Owns the activation slots and the step's losses; the worker owns the device tensors.
 * Used only on the worker's compute thread.
 */
final class StageActions {
    private final PipelineJobSpec spec;
    private final int dpIndex;
    private final int ppIndex;
    private final TensorParallelGroup tensorParallel;
    private final StageChunks chunks;
    private final StageBuffers buffers;
    private final StageInputs inputs;
    private final Tensor tokens;
    private final Tensor targets;
    /** The worker's timeline of the step, which the sends join. */
    private final List<TimelineInterval> intervals;
    private final ActivationSlots slots;
    private final double[] losses;

    StageActions(PipelineJobSpec spec, int dpIndex, int ppIndex, TensorParallelGroup tensorParallel,
                 StageChunks chunks, StageBuffers buffers, StageInputs inputs, List<TimelineInterval> intervals) {
        this.spec = spec;
        this.dpIndex = dpIndex;
        this.ppIndex = ppIndex;
        this.tensorParallel = tensorParallel;
        this.chunks = chunks;
        this.buffers = buffers;
        this.inputs = inputs;
        this.tokens = inputs.tokens();
        this.targets = inputs.targets();
        this.intervals = intervals;
        this.slots = new ActivationSlots(spec.layout().virtualStages());
        this.losses = new double[spec.microbatches()];
    }

    /** The loss of micro-batch {@code mb} in the last step (on the worker holding the last model stage). */
    double loss(int mb) {
        return losses[mb];
    }

    /** Runs action {@code a} of step {@code step}; what it sends goes out over {@code link}. */
    void execute(long step, Action a, Batches train, long stepStartNs, StageLink link) {
        int v = a.virtualStage();
        int mb = a.microbatch();
        int g = v * spec.layout().pp() + ppIndex;
        int stages = spec.layout().modelStages();
        StageModule chunk = chunks.chunk(v);
        float lossScale = 1f / ((float) spec.train().batchSize() * spec.train().model().seqLen());
        switch (a.type()) {
            case F -> {
                int slot = slots.take(v, mb);
                if (g == 0 || g == stages - 1) {
                    int firstRow = (dpIndex * spec.microbatches() + mb) * spec.microBatchRows();
                    train.fill(step, spec.train().batchSize(), firstRow, spec.microBatchRows(), inputs.x(),
                        inputs.y());
                    inputs.load(g == 0, g == stages - 1);
                }
                Tensor out = chunk.forward(slot, g == 0 ? tokens : buffers.acquire(false, mb, v),
                    g == stages - 1 ? targets : null);
                if (g > 0) {
                    buffers.release(false, mb, v);   // the stage copied its input in
                }
                if (g == stages - 1) {
                    losses[mb] = chunk.loss(slot);
                } else {
                    double s0 = nowUs(stepStartNs);
                    buffers.send(link, false, dpIndex, (g + 1) % spec.layout().pp(), step, mb, v,
                        (g + 1) / spec.layout().pp(), out);
                    intervals.add(new TimelineInterval("send act(mb=" + mb + ")", "send", s0, nowUs(stepStartNs), "",
                        Map.of("microbatch", String.valueOf(mb), "bytes", String.valueOf(out.numel() * 4))));
                }
            }
            case B, BW -> {
                int slot = slots.of(v, mb);
                boolean last = g == stages - 1;
                // Full recomputation fuses B and W block by block (the gradient goes out after both).
                // With tp, the chunk that sends no gradient upstream (g = 0) fuses them too, so its tp
                // reductions overlap W; the others send B's gradient first, which their upstream waits on.
                boolean fused = a.type() == io.troupe.actors.schedule.ActionType.BW
                    && (spec.memory().recompute() == io.troupe.models.memory.Recompute.FULL
                    || (tensorParallel.size() > 1 && g == 0));
                Tensor gradOut = last ? null : buffers.acquire(true, mb, v);
                Tensor grad = fused ? chunk.backward(slot, gradOut, lossScale, chunks.weightHook(v))
                    : chunk.backwardInput(slot, gradOut, lossScale);
                if (!last) {
                    buffers.release(true, mb, v);
                }
                if (g > 0) {
                    double s0 = nowUs(stepStartNs);
                    buffers.send(link, true, dpIndex, (g - 1) % spec.layout().pp(), step, mb, v,
                        (g - 1) / spec.layout().pp(), grad);
                    intervals.add(new TimelineInterval("send grad(mb=" + mb + ")", "send", s0, nowUs(stepStartNs), "",
                        Map.of("microbatch", String.valueOf(mb), "bytes", String.valueOf(grad.numel() * 4))));
                }
                if (fused) {
                    slots.release(v, mb);
                } else if (a.type() == io.troupe.actors.schedule.ActionType.BW) {
                    weightGradient(v, mb);
                }
            }
            case W -> weightGradient(v, mb);
        }
    }

    /** W of (v, mb); the step's last one for chunk v reports finished parameters to the chunk's hook. */
    private void weightGradient(int v, int mb) {
        int slot = slots.of(v, mb);
        chunks.chunk(v).backwardWeight(slot, chunks.weightHook(v));
        slots.release(v, mb);
    }
}
