package io.troupe.models.optim;

import io.troupe.models.ParamSpec;
import io.troupe.runtime.device.AdamWStep;
import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * AdamW over one flat parameter buffer: decoupled weight decay on tensors with dim >= 2 only
 * (Linear weights, embeddings, lm_head), none on biases and LayerNorm parameters. Moments live on
 * the parameters' device, in the same flat layout (so they checkpoint and shard like parameters).
 */
public final class AdamW implements AutoCloseable {
    private final AdamWConfig cfg;
    private final Device dev;
    private final Tensor m;
    private final Tensor v;
    private final List<Run> runs = new ArrayList<>();
    private long step;

    /** A maximal run of consecutive parameters with the same decay flag. */
    private record Run(long offset, long numel, boolean decay) {
    }

    public AdamW(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel) {
        this.cfg = cfg;
        this.dev = dev;
        this.m = dev.allocate((int) numel);
        this.v = dev.allocate((int) numel);
        for (ParamSpec s : specs) {
            Run prev = runs.isEmpty() ? null : runs.get(runs.size() - 1);
            if (prev != null && prev.decay == s.decay() && prev.offset + prev.numel == s.localOffset()) {
                runs.set(runs.size() - 1, new Run(prev.offset, prev.numel + s.numel(), prev.decay));
            } else {
                runs.add(new Run(s.localOffset(), s.numel(), s.decay()));
            }
        }
    }

    /** Applies one update with learning rate {@code lr}; the step counter advances first (t starts at 1). */
    public void step(Tensor params, Tensor grads, float lr) {
        step++;
        AdamWStep withDecay = new AdamWStep(lr, cfg.beta1(), cfg.beta2(), cfg.eps(), cfg.weightDecay(), step);
        AdamWStep noDecay = withDecay.withWeightDecay(0f);
        for (Run r : runs) {
            int n = (int) r.numel;
            dev.adamw(params.view(r.offset, n), grads.view(r.offset, n), m.view(r.offset, n), v.view(r.offset, n),
                r.decay ? withDecay : noDecay);
        }
    }

    public long stepCount() {
        return step;
    }

    /** Restores the counter (from a checkpoint). */
    public void setStepCount(long step) {
        this.step = step;
    }

    public Tensor firstMoment() {
        return m;
    }

    public Tensor secondMoment() {
        return v;
    }

    public AdamWConfig config() {
        return cfg;
    }

    @Override
    public void close() {
        m.close();
        v.close();
    }
}
