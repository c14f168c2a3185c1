package io.troupe.models.optim;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.List;

/**
 * The tail of every training step, after the gradients of the global batch are complete (summed
 * over micro-batches and data-parallel replicas, already scaled by 1/tokens): the global gradient
 * norm, clipping to {@code maxNorm}, the learning rate of the step, and the optimizer update. The
 * single-device trainer, the in-process pipeline engine and the cluster worker all run this one
 * class, so they differ only in what they hand it.
 *
 * <p>Contract of {@link #apply}:
 * <ol>
 *   <li>The local sum of squares is {@code 0 + ss(p0) + ss(p1) + ...} over {@code normParts} in list
 *       order, each {@code ss} computed by the part's device in double precision.</li>
 *   <li>The global norm is {@code sqrt(reduction.sum(local))}; the {@link GradNormReduction} decides
 *       who adds what (a local identity on one device; an all-gather over the data plane in the
 *       cluster). Every participant gets the same norm.</li>
 *   <li>The clip factor is {@link GradClip#scaleFor}{@code (norm, maxNorm)}; the rate is
 *       {@code schedule.lr(step)} (0-based step).</li>
 *   <li>Each of {@code updateParts} has its gradients scaled by the clip factor (skipped when it is
 *       exactly 1) and then its optimizer applied at that rate. Parts are independent: the order of
 *       updates does not change any value.</li>
 * </ol>
 * Given the same inputs the result is bitwise the same whatever calls it; parallel layouts match
 * the single device to rounding of the reduction order only. ZeRO stage 1/2: every data-parallel
 * member's optimizer owns some ranges ({@link AdamW#ranges}); after the gradients were
 * reduce-scattered into them, the member passes its {@link Part#ownedGradients} as
 * {@code normParts} and its whole buffers as {@code updateParts}; the reduction adds the members'
 * sums (so the norm is the whole one, agreed from the slices), and the caller all-gathers the
 * updated parameter ranges afterwards. Tensor parallelism adds the sums of its split tensors
 * through the reduction.
 *
 * <p>Threading: called on the thread that owns the parts' devices; it does not synchronise the
 * devices (the caller does, when it reads the parameters).
 */
public final class StepTail {
    private final LrSchedule schedule;
    private final double maxNorm;
    private final GradNormReduction reduction;

    /**
     * One flat parameter buffer with its gradients and its optimizer (a model stage, a chunk of one,
     * or later an optimizer shard).
     */
    public record Part(Device device, Tensor params, Tensor grads, AdamW optimizer) {

        /**
         * The gradients this part counts in the global norm: the whole gradient buffer, or under
         * ZeRO the views of the ranges its optimizer owns ({@link AdamW#ranges}), which hold its
         * share of the reduced gradients once the reduce-scatter has run.
         */
        public List<Part> ownedGradients() {
            long[] starts = optimizer.rangeStarts();
            if (optimizer.stateNumel() == grads.numel()) {  // whole, or the owned ranges packed (ZeRO 2)
                return List.of(this);
            }
            long[] counts = optimizer.rangeNumels();
            List<Part> out = new java.util.ArrayList<>(starts.length);
            for (int i = 0; i < starts.length; i++) {
                out.add(new Part(device, params, grads.view(starts[i], (int) counts[i]), optimizer));
            }
            return out;
        }
    }

    /**
     * What one step's tail did.
     *
     * @param gradNorm     the global gradient norm before clipping
     * @param clipScale    the factor gradients were multiplied by (1 when within {@code maxNorm})
     * @param lr           the learning rate applied
     * @param reducedAtNs  {@link System#nanoTime()} when the norm's reduction returned (for timelines:
     *                     before it, communication; after it, the optimizer)
     */
    public record Result(double gradNorm, float clipScale, float lr, long reducedAtNs) {
    }

    /**
     * @param schedule  learning rate per step
     * @param maxNorm   global-norm clipping threshold ({@code <= 0}: no clipping)
     * @param reduction how local sums of squares become the global one
     */
    public StepTail(LrSchedule schedule, double maxNorm, GradNormReduction reduction) {
        this.schedule = schedule;
        this.maxNorm = maxNorm;
        this.reduction = reduction;
    }

    /** A single-participant tail: the local sum is the global one. */
    public static StepTail local(LrSchedule schedule, double maxNorm) {
        return new StepTail(schedule, maxNorm, GradNormReduction.LOCAL);
    }

    /**
     * Runs the tail of step {@code step} (see the class contract).
     *
     * @param normParts   the gradients this participant counts in the global norm, in the order they
     *                    are added (a replica whose gradients equal another's passes none)
     * @param updateParts the parameters this participant updates
     */
    public Result apply(long step, List<Part> normParts, List<Part> updateParts) {
        double local = 0;
        for (int i = 0; i < normParts.size(); i++) {
            Part p = normParts.get(i);
            local += GradClip.sumOfSquares(p.device(), p.grads());
        }
        double norm = Math.sqrt(reduction.sum(local));
        long reducedAtNs = System.nanoTime();
        float clip = GradClip.scaleFor(norm, maxNorm);
        float lr = schedule.lr(step);
        for (int i = 0; i < updateParts.size(); i++) {
            Part p = updateParts.get(i);
            if (clip != 1f) {
                p.device().scale(p.grads(), clip);
            }
            p.optimizer().step(p.params(), p.grads(), lr);
        }
        return new Result(norm, clip, lr, reducedAtNs);
    }
}
