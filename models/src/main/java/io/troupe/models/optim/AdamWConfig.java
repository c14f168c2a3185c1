package io.troupe.models.optim;

/** AdamW hyper-parameters; defaults follow the parity recipe (torch 1.13 semantics). */
public record AdamWConfig(float beta1, float beta2, float eps, float weightDecay) {
    public AdamWConfig {
        if (!(beta1 >= 0 && beta1 < 1)) {
            throw new IllegalArgumentException("beta1 must be in [0, 1): beta1=" + beta1);
        }
        if (!(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("beta2 must be in [0, 1): beta2=" + beta2);
        }
        if (!(eps > 0)) {
            throw new IllegalArgumentException("eps must be > 0: eps=" + eps);
        }
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("weight_decay must be >= 0: weight_decay=" + weightDecay);
        }
    }

    public static AdamWConfig defaults() {
        return new AdamWConfig(0.9f, 0.95f, 1e-8f, 0.1f);
    }
}
