package io.troupe.models.optim;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;

/**
 * Global-norm gradient clipping. The norm is global: with several stages, each contributes its
 * {@link #sumOfSquares}, the caller reduces them (in a fixed order), and every stage scales by the
 * same {@link #scaleFor} factor.
 */
public final class GradClip {
    private GradClip() {
    }

    public static double sumOfSquares(Device dev, Tensor grads) {
        return dev.sumOfSquares(grads);
    }

    /** The factor that brings {@code globalNorm} down to {@code maxNorm} (1 when already within, or disabled). */
    public static float scaleFor(double globalNorm, double maxNorm) {
        if (maxNorm <= 0 || globalNorm <= maxNorm || !Double.isFinite(globalNorm)) {
            return 1f;
        }
        return (float) (maxNorm / (globalNorm + 1e-6));
    }
}
