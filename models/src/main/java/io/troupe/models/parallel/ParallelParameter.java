package io.troupe.models.parallel;

import io.troupe.models.parallel.tp.TensorParallelSplit;
import java.util.Arrays;

/**
 * One parameter of the unsplit model and where it lives in a {@code dp × pp × tp} layout: its name
 * (the checkpoint key), its global shape, the model stage that holds it (pp), and its tensor-parallel
 * placement. Data-parallel replicas hold identical copies; a ZeRO stage 1/2 optimizer partitions the
 * rank's flat buffer of these shards over the dp group ({@link ParallelParameterLayout.Local#zeroSegment}).
 *
 * @param globalOffset element offset in the unsplit model's flat buffer (fixes initialisation)
 */
public record ParallelParameter(String name, int[] globalShape, long globalOffset, int modelStage,
                                TensorParallelPlacement tp) {

    public ParallelParameter {
        globalShape = globalShape.clone();
    }

    @Override
    public int[] globalShape() {
        return globalShape.clone();
    }

    public long globalNumel() {
        long n = 1;
        for (int d : globalShape) {
            n *= d;
        }
        return n;
    }

    /** The shape member {@code tp_i} holds (the same for every member). */
    public int[] localShape(int tpSize) {
        if (tp instanceof TensorParallelPlacement.Split s) {
            return s.split().localShape(name, globalShape, tpSize);
        }
        return globalShape.clone();
    }

    public long localNumel(int tpSize) {
        long n = 1;
        for (int d : localShape(tpSize)) {
            n *= d;
        }
        return n;
    }

    /** The split of the global tensor a member holds ({@code along(0)} with tp = 1 for a replicated one). */
    public TensorParallelSplit split() {
        return tp instanceof TensorParallelPlacement.Split s ? s.split() : TensorParallelSplit.along(0);
    }

    /** Whether member {@code tpIndex}'s copy counts in the global gradient norm (replicas count once, on member 0). */
    public boolean countsInGradientNorm(int tpIndex) {
        return tp instanceof TensorParallelPlacement.Split || tpIndex == 0;
    }

    /** Whether the gradient must be summed over the tp group before the optimizer step. */
    public boolean gradientReducedOverTensorParallelGroup() {
        return tp instanceof TensorParallelPlacement.Replicated r && r.gradientPartial();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ParallelParameter p && p.name.equals(name) && Arrays.equals(p.globalShape, globalShape)
            && p.globalOffset == globalOffset && p.modelStage == modelStage && p.tp.equals(tp);
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(globalShape);
    }

    @Override
    public String toString() {
        return name + Arrays.toString(globalShape) + "@stage" + modelStage + " " + tp;
    }
}
