package io.troupe.actors.engine;

import io.troupe.models.data.ValidationPlan;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * Forward-only validation through one {@link StageWorker}'s chunks, in step with the other stages of its
 * replica: evaluation micro-batches take ids past the training ones and an activation slot of their own,
 * arrive through the worker's inbox and buffers, and leave over its stage link. Owns nothing; it frees
 * the evaluation's receive buffers when a pass set ends. Used only on the worker's compute thread,
 * between steps.
 */
final class StageEvaluation {
    /** Activation slot reserved for evaluation forwards (never followed by a backward). */
    private static final int EVAL_SLOT = -1;

    private final PipelineJobSpec spec;
    private final int dpIndex;
    private final int ppIndex;
    private final Device device;
    private final StageChunks chunks;
    private final StageBuffers buffers;
    private final StageInbox inbox;
    private final StageInputs inputs;

    StageEvaluation(PipelineJobSpec spec, int dpIndex, int ppIndex, Device device, StageChunks chunks,
                    StageBuffers buffers, StageInbox inbox, StageInputs inputs) {
        this.spec = spec;
        this.dpIndex = dpIndex;
        this.ppIndex = ppIndex;
        this.device = device;
        this.chunks = chunks;
        this.buffers = buffers;
        this.inbox = inbox;
        this.inputs = inputs;
    }

    /** See {@link StageWorker#evaluate}; activations go out over {@code link}. */
    double evaluate(long step, ValidationPlan plan, StageLink link) {
        int rows = spec.microBatchRows();
        if (plan.rows() != rows) {
            throw new IllegalArgumentException("validation plan of " + plan.rows() + " rows for micro-batches of "
                + rows);
        }
        int stages = spec.layout().modelStages();
        int pp = spec.layout().pp();
        boolean hasLast = false;
        double[] passLoss = new double[plan.passes()];
        List<StageEvent> deferred = new ArrayList<>();
        try {
            for (int p = 0; p < passLoss.length; p++) {
                int id = spec.microbatches() + p;
                for (int v = 0; v < chunks.count(); v++) {
                    int g = v * pp + ppIndex;
                    boolean last = g == stages - 1;
                    if (g == 0 || last) {
                        plan.fill(p, inputs.x(), inputs.y());
                        inputs.load(g == 0, last);
                    }
                    Tensor in = g == 0 ? inputs.tokens() : awaitInput(step, id, v, deferred, link);
                    Tensor out = chunks.chunk(v).forward(EVAL_SLOT, in, last ? inputs.targets() : null);
                    if (g > 0) {
                        buffers.release(false, id, v);
                    }
                    if (last) {
                        hasLast = true;
                        passLoss[p] = chunks.chunk(v).loss(EVAL_SLOT);
                    } else {
                        buffers.send(link, false, dpIndex, (g + 1) % pp, step, id, v, (g + 1) / pp, out);
                        buffers.sendAll(link);
                    }
                }
            }
        } finally {
            inbox.addAll(deferred);
            releaseEvalBuffers();
        }
        return hasLast ? plan.combine(passLoss) : Double.NaN;
    }

    private Tensor awaitInput(long step, int id, int v, List<StageEvent> deferred, StageLink link) {
        while (true) {
            StageEvent e = inbox.await(link);
            if (e == null) {
                throw new IllegalStateException("validation after step " + step + ": worker dp=" + dpIndex + " pp="
                    + ppIndex
                    + " waited " + spec.stepTimeoutMs() + " ms for the activation of evaluation micro-batch " + id);
            }
            if (e.failure() != null) {
                throw e.failure();
            }
            if (!e.gradient() && e.microbatch() == id && e.virtualStage() == v) {
                buffers.upload(false, id, v);
                return buffers.acquire(false, id, v);
            }
            deferred.add(e);
        }
    }

    private void releaseEvalBuffers() {
        device.synchronize();
        buffers.closeFrom(spec.microbatches());
    }
}
