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
 *
 * <p>A segment optimizer ({@link #segment}, ZeRO stage 1/2) holds the moments of the elements
 * {@code [segmentStart, segmentStart + segmentNumel)} of the flat buffer only, and
 * {@link #step} takes the parameters and gradients of that range (views of the same length); the
 * update of each element is the same arithmetic as the whole-buffer optimizer's.
 */
public final class AdamW implements AutoCloseable {
    private final AdamWConfig cfg;
    private final Device dev;
    private final Tensor m;
    private final Tensor v;
    private final List<Run> runs = new ArrayList<>();
    private final long segmentStart;
    private final long segmentNumel;
    private long step;

    /** A maximal run of consecutive parameters with the same decay flag. */
    private record Run(long offset, long numel, boolean decay) {
    }

    public AdamW(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel) {
        this(cfg, dev, specs, numel, 0, numel);
    }

    /**
     * The optimizer of elements {@code [start, start + count)} of a flat buffer of {@code numel}
     * elements laid out by {@code specs} (a ZeRO shard): moments of {@code count} elements; runs cut
     * at the segment's ends, offsets relative to {@code start}.
     */
    public static AdamW segment(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel, long start, long count) {
        return new AdamW(cfg, dev, specs, numel, start, count);
    }

    private AdamW(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel, long start, long count) {
        if (start < 0 || count < 1 || start + count > numel) {
            throw new IllegalArgumentException("optimizer segment must lie in the buffer: start=" + start + ", count="
                + count + ", numel=" + numel);
        }
        this.cfg = cfg;
        this.dev = dev;
        this.segmentStart = start;
        this.segmentNumel = count;
        this.m = dev.allocate((int) count);
        this.v = dev.allocate((int) count);
        long end = start + count;
        for (ParamSpec s : specs) {
            long lo = Math.max(start, s.localOffset());
            long hi = Math.min(end, s.localOffset() + s.numel());
            if (lo >= hi) {
                continue;
            }
            long off = lo - start;
            Run prev = runs.isEmpty() ? null : runs.get(runs.size() - 1);
            if (prev != null && prev.decay == s.decay() && prev.offset + prev.numel == off) {
                runs.set(runs.size() - 1, new Run(prev.offset, prev.numel + hi - lo, prev.decay));
            } else {
                runs.add(new Run(off, hi - lo, s.decay()));
            }
        }
    }

    /** First element of the flat buffer this optimizer updates (0 unless a segment). */
    public long segmentStart() {
        return segmentStart;
    }

    /** Elements this optimizer updates and holds moments for. */
    public long segmentNumel() {
        return segmentNumel;
    }

    /** Bytes of the two moments. */
    public long stateBytes() {
        return 8 * segmentNumel;
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
