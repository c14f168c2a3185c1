package io.troupe.runtime.device;

/**
 * One AdamW update's hyper-parameters (PyTorch 1.13 semantics, decoupled weight decay):
 * <pre>
 *   p *= 1 - lr*weightDecay
 *   m  = beta1*m + (1-beta1)*g
 *   v  = beta2*v + (1-beta2)*g^2
 *   p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 * </pre>
 *
 * @param step 1-based update count t
 */
public record AdamWStep(float lr, float beta1, float beta2, float eps, float weightDecay, long step) {
    public AdamWStep {
        if (step < 1) {
            throw new IllegalArgumentException("AdamW step must be >= 1: step=" + step);
        }
    }

    public AdamWStep withWeightDecay(float wd) {
        return new AdamWStep(lr, beta1, beta2, eps, wd, step);
    }
}
