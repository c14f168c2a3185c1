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
 * <p>A sharded optimizer ({@link #ranges}, ZeRO stage 1/2) owns some element ranges of the flat
 * buffer only and holds their moments packed, range after range; {@link #step} still takes the
 * whole parameter and gradient buffers and updates the owned ranges, each element with the same
 * arithmetic as the whole-buffer optimizer.
 */
public final class AdamW implements AutoCloseable {
    private final AdamWConfig cfg;
    private final Device dev;
    private final Tensor m;
    private final Tensor v;
    private final List<Run> runs = new ArrayList<>();
    private final long[] rangeStarts;
    private final long[] rangeNumels;
    private final long stateNumel;
    private long step;

    /** A maximal run of consecutive owned parameter elements with the same decay flag. */
    private record Run(long offset, long momentOffset, long numel, boolean decay) {
    }

    public AdamW(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel) {
        this(cfg, dev, specs, numel, new long[] {0}, new long[] {numel});
    }

    /**
     * The optimizer of the element ranges {@code [starts[i], starts[i] + counts[i])} of a flat
     * buffer of {@code numel} elements laid out by {@code specs} (a ZeRO shard): ascending,
     * disjoint, non-empty ranges; moments of their total length.
     */
    public static AdamW ranges(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel, long[] starts,
                               long[] counts) {
        return new AdamW(cfg, dev, specs, numel, starts.clone(), counts.clone());
    }

    private AdamW(AdamWConfig cfg, Device dev, List<ParamSpec> specs, long numel, long[] starts, long[] counts) {
        if (starts.length != counts.length || starts.length == 0) {
            throw new IllegalArgumentException("optimizer ranges need as many starts as counts, at least one: starts="
                + starts.length + ", counts=" + counts.length);
        }
        long total = 0;
        long prevEnd = 0;
        for (int i = 0; i < starts.length; i++) {
            if (starts[i] < prevEnd || counts[i] < 1 || starts[i] + counts[i] > numel) {
                throw new IllegalArgumentException("optimizer ranges must be ascending, disjoint, non-empty and inside "
                    + "the buffer: range " + i + " = [" + starts[i] + ", +" + counts[i] + "), numel=" + numel);
            }
            prevEnd = starts[i] + counts[i];
            total += counts[i];
        }
        this.cfg = cfg;
        this.dev = dev;
        this.rangeStarts = starts;
        this.rangeNumels = counts;
        this.stateNumel = total;
        this.m = dev.allocate((int) total);
        this.v = dev.allocate((int) total);
        long momentBase = 0;
        for (int i = 0; i < starts.length; i++) {
            long start = starts[i];
            long end = start + counts[i];
            for (ParamSpec s : specs) {
                long lo = Math.max(start, s.localOffset());
                long hi = Math.min(end, s.localOffset() + s.numel());
                if (lo >= hi) {
                    continue;
                }
                long mo = momentBase + lo - start;
                Run prev = runs.isEmpty() ? null : runs.get(runs.size() - 1);
                if (prev != null && prev.decay == s.decay() && prev.offset + prev.numel == lo
                    && prev.momentOffset + prev.numel == mo) {
                    runs.set(runs.size() - 1,
                        new Run(prev.offset, prev.momentOffset, prev.numel + hi - lo, prev.decay));
                } else {
                    runs.add(new Run(lo, mo, hi - lo, s.decay()));
                }
            }
            momentBase += counts[i];
        }
    }

    /**
     * Applies one update with learning rate {@code lr} to the owned ranges of {@code params} (the
     * whole flat buffer) from {@code grads}: the same layout, or, when it has exactly
     * {@link #stateNumel} elements and the optimizer owns less than the whole buffer, the owned
     * ranges' gradients packed like the moments (ZeRO 2's slice). The step counter advances first
     * (t starts at 1).
     */
    public void step(Tensor params, Tensor grads, float lr) {
        boolean packed = grads.numel() != params.numel();
        if (packed && grads.numel() != stateNumel) {
            throw new IllegalArgumentException("gradients must be whole (" + params.numel()
                + ") or packed owned ranges ("
                + stateNumel + "): numel=" + grads.numel());
        }
        step++;
        AdamWStep withDecay = new AdamWStep(lr, cfg.beta1(), cfg.beta2(), cfg.eps(), cfg.weightDecay(), step);
        AdamWStep noDecay = withDecay.withWeightDecay(0f);
        for (Run r : runs) {
            int n = (int) r.numel;
            dev.adamw(params.view(r.offset, n), grads.view(packed ? r.momentOffset : r.offset, n),
                m.view(r.momentOffset, n),
                v.view(r.momentOffset, n), r.decay ? withDecay : noDecay);
        }
    }

    /** First elements of the owned ranges of the flat buffer (one range {@code [0, numel)} unless sharded). */
    public long[] rangeStarts() {
        return rangeStarts.clone();
    }

    /** Lengths of the owned ranges. */
    public long[] rangeNumels() {
        return rangeNumels.clone();
    }

    /** Elements this optimizer updates and holds moments for. */
    public long stateNumel() {
        return stateNumel;
    }

    /** Bytes of the two moments. */
    public long stateBytes() {
        return 8 * stateNumel;
    }

    /** The owned ranges of {@code whole} (the flat layout), packed range after range as the moments are. */
    public float[] pack(float[] whole) {
        float[] out = new float[(int) stateNumel];
        int at = 0;
        for (int i = 0; i < rangeStarts.length; i++) {
            System.arraycopy(whole, (int) rangeStarts[i], out, at, (int) rangeNumels[i]);
            at += (int) rangeNumels[i];
        }
        return out;
    }

    /** Writes {@code packed} (moment layout) into the owned ranges of {@code whole} (the flat layout). */
    public void unpack(float[] packed, float[] whole) {
        int at = 0;
        for (int i = 0; i < rangeStarts.length; i++) {
            System.arraycopy(packed, at, whole, (int) rangeStarts[i], (int) rangeNumels[i]);
            at += (int) rangeNumels[i];
        }
    }

    public long stepCount() {
        return step;
    }

    /** Restores the counter (from a checkpoint). */
    public void setStepCount(long step) {
        this.step = step;
    }

    /** The first moments of the owned ranges, packed. */
    public Tensor firstMoment() {
        return m;
    }

    /** The second moments of the owned ranges, packed. */
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
