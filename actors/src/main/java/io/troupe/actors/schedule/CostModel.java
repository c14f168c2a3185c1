package io.troupe.actors.schedule;

import java.util.Arrays;

/**
 * How long actions take and how long messages travel, for the simulator and the validator.
 *
 * <ul>
 *   <li>Per rank F, B and W times in microseconds for the rank's whole share of layers; with v
 *       virtual stages each chunk takes 1/v of it. BW costs B + W.</li>
 *   <li>Jitter: each action's time is multiplied by {@code 1 + jitter * u}, u uniform in [-1, 1],
 *       drawn from a hash of (seed, rank, type, micro-batch, virtual stage), so every schedule sees the
 *       same cost for the same action, whatever order it runs it in. A fused BW gets the B and the W
 *       draws of its micro-batch, so it costs exactly what the split B and W cost.</li>
 *   <li>Stragglers: a rank's F, B and W times are multiplied by a factor.</li>
 *   <li>Links: a message between ranks arrives after {@code latencyUs + bytes / bandwidthBytesPerUs};
 *       messages within a rank arrive at once. Sending does not occupy the device.</li>
 *   <li>Activations: bytes per micro-batch (all chunks of a rank together), also the size of each
 *       activation and gradient message; per chunk it is 1/v of that.</li>
 * </ul>
 *
 * Immutable; the {@code with...} methods return modified copies.
 */
public final class CostModel {
    private final double[] forwardUs;
    private final double[] backwardUs;
    private final double[] weightUs;
    private final double jitterFraction;
    private final long seed;
    private final double latencyUs;
    private final double bandwidthBytesPerUs;
    private final long[] activationBytes;

    private CostModel(double[] forwardUs, double[] backwardUs, double[] weightUs, double jitterFraction, long seed,
                      double latencyUs, double bandwidthBytesPerUs, long[] activationBytes) {
        this.forwardUs = forwardUs;
        this.backwardUs = backwardUs;
        this.weightUs = weightUs;
        this.jitterFraction = jitterFraction;
        this.seed = seed;
        this.latencyUs = latencyUs;
        this.bandwidthBytesPerUs = bandwidthBytesPerUs;
        this.activationBytes = activationBytes;
    }

    /**
     * Same F, B, W time on every rank, no jitter, free instant links, 1 MiB of activations per
     * micro-batch.
     */
    public static CostModel uniform(int stages, double forwardUs, double backwardUs, double weightUs) {
        if (stages < 1) {
            throw new IllegalArgumentException("cost model needs stages >= 1: stages=" + stages);
        }
        requireTime("forwardUs", forwardUs);
        requireTime("backwardUs", backwardUs);
        requireTime("weightUs", weightUs);
        double[] f = new double[stages];
        double[] b = new double[stages];
        double[] w = new double[stages];
        Arrays.fill(f, forwardUs);
        Arrays.fill(b, backwardUs);
        Arrays.fill(w, weightUs);
        return new CostModel(f, b, w, 0.0, 0L, 0.0, Double.POSITIVE_INFINITY, new long[] {1L << 20});
    }

    /**
     * Measured per-rank times (e.g. from profiling real stages), no jitter, free instant links,
     * 1 MiB of activations per micro-batch.
     */
    public static CostModel perStage(double[] forwardUs, double[] backwardUs, double[] weightUs) {
        if (forwardUs.length < 1 || backwardUs.length != forwardUs.length || weightUs.length != forwardUs.length) {
            throw new IllegalArgumentException("one F, B and W time per stage: F=" + forwardUs.length + ", B="
                + backwardUs.length + ", W=" + weightUs.length);
        }
        for (int i = 0; i < forwardUs.length; i++) {
            requireTime("forwardUs", forwardUs[i]);
            requireTime("backwardUs", backwardUs[i]);
            requireTime("weightUs", weightUs[i]);
        }
        return new CostModel(forwardUs.clone(), backwardUs.clone(), weightUs.clone(), 0.0, 0L, 0.0,
            Double.POSITIVE_INFINITY, new long[] {1L << 20});
    }

    /** Random per-action jitter of up to {@code ±fraction} of each time, reproducible from {@code seed}. */
    public CostModel withJitter(double fraction, long seed) {
        if (!(fraction >= 0.0 && fraction < 1.0)) {
            throw new IllegalArgumentException("jitter fraction must be in [0, 1): jitter=" + fraction);
        }
        return new CostModel(forwardUs, backwardUs, weightUs, fraction, seed, latencyUs, bandwidthBytesPerUs,
                activationBytes);
    }

    /**
     * Every rank split by tensor parallelism over {@code tp} devices: its F, B and W compute take
     * 1/tp of the time, and each F and each B also waits {@code forwardCommUs} / {@code backwardCommUs}
     * for its tp all-reduces (measured, e.g. the {@code tp collectives} track of a run's trace, or
     * given). W needs no communication. The tp devices of a rank run in step, so the pipeline sees
     * one rank with these costs.
     */
    public CostModel withTensorParallel(int tp, double forwardCommUs, double backwardCommUs) {
        if (tp < 1) {
            throw new IllegalArgumentException("tp must be >= 1: tp=" + tp);
        }
        requireTime("tp forward communication", forwardCommUs);
        requireTime("tp backward communication", backwardCommUs);
        double[] f = forwardUs.clone();
        double[] b = backwardUs.clone();
        double[] w = weightUs.clone();
        for (int i = 0; i < f.length; i++) {
            f[i] = f[i] / tp + forwardCommUs;
            b[i] = b[i] / tp + backwardCommUs;
            w[i] = w[i] / tp;
        }
        return new CostModel(f, b, w, jitterFraction, seed, latencyUs, bandwidthBytesPerUs, activationBytes);
    }

    /** Rank {@code stage} runs {@code factor} times slower. */
    public CostModel withStraggler(int stage, double factor) {
        if (stage < 0 || stage >= forwardUs.length) {
            throw new IllegalArgumentException(
                    "straggler stage out of range: stage=" + stage + ", stages=" + forwardUs.length);
        }
        if (!(factor > 0.0) || Double.isInfinite(factor)) {
            throw new IllegalArgumentException("straggler factor must be > 0: factor=" + factor);
        }
        double[] f = forwardUs.clone();
        double[] b = backwardUs.clone();
        double[] w = weightUs.clone();
        f[stage] *= factor;
        b[stage] *= factor;
        w[stage] *= factor;
        return new CostModel(f, b, w, jitterFraction, seed, latencyUs, bandwidthBytesPerUs, activationBytes);
    }

    /**
     * Point-to-point links with {@code latencyUs} and {@code bandwidthBytesPerUs} (1 GB/s = 1000
     * bytes/us); {@code Double.POSITIVE_INFINITY} bandwidth means size costs nothing.
     */
    public CostModel withLink(double latencyUs, double bandwidthBytesPerUs) {
        requireTime("latencyUs", latencyUs);
        if (!(bandwidthBytesPerUs > 0.0)) {
            throw new IllegalArgumentException("bandwidth must be > 0 bytes/us: bandwidth=" + bandwidthBytesPerUs);
        }
        return new CostModel(forwardUs, backwardUs, weightUs, jitterFraction, seed, latencyUs, bandwidthBytesPerUs,
                activationBytes);
    }

    /** Every micro-batch holds {@code bytes} of activations per rank. */
    public CostModel withActivationBytes(long bytes) {
        return withActivationBytes(new long[] {bytes});
    }

    /**
     * Micro-batch {@code i} holds {@code bytes[i % bytes.length]} of activations per rank, for
     * micro-batches of different lengths.
     */
    public CostModel withActivationBytes(long[] bytes) {
        if (bytes.length == 0) {
            throw new IllegalArgumentException("activation bytes must not be empty");
        }
        for (long b : bytes) {
            if (b < 0) {
                throw new IllegalArgumentException("activation bytes must be >= 0: bytes=" + b);
            }
        }
        return new CostModel(forwardUs, backwardUs, weightUs, jitterFraction, seed, latencyUs, bandwidthBytesPerUs,
                bytes.clone());
    }

    public int stages() {
        return forwardUs.length;
    }

    public double jitterFraction() {
        return jitterFraction;
    }

    public double latencyUs() {
        return latencyUs;
    }

    public double bandwidthBytesPerUs() {
        return bandwidthBytesPerUs;
    }

    /** Base (unjittered) time of {@code type} on {@code rank} for a whole micro-batch, all chunks. */
    public double baseUs(int rank, ActionType type) {
        return switch (type) {
            case F -> forwardUs[rank];
            case B -> backwardUs[rank];
            case W -> weightUs[rank];
            case BW -> backwardUs[rank] + weightUs[rank];
        };
    }

    /** Time of {@code action} on {@code rank} when the rank holds {@code virtualStages} chunks. */
    public double durationUs(int rank, Action action, int virtualStages) {
        int mb = action.microbatch();
        int v = action.virtualStage();
        double us = switch (action.type()) {
            case F -> forwardUs[rank] * jitter(rank, ActionType.F, mb, v);
            case B -> backwardUs[rank] * jitter(rank, ActionType.B, mb, v);
            case W -> weightUs[rank] * jitter(rank, ActionType.W, mb, v);
            case BW -> backwardUs[rank] * jitter(rank, ActionType.B, mb, v)
                    + weightUs[rank] * jitter(rank, ActionType.W, mb, v);
        };
        return us / virtualStages;
    }

    /** Activation bytes of one micro-batch on one rank, all chunks together. */
    public long activationBytes(int microbatch) {
        return activationBytes[microbatch % activationBytes.length];
    }

    /** Activation bytes of one micro-batch on one chunk: 1/v of {@link #activationBytes(int)}. */
    public long activationBytes(int microbatch, int virtualStages) {
        return activationBytes(microbatch) / virtualStages;
    }

    /** Transit time of a message of {@code bytes} from {@code fromRank} to {@code toRank}. */
    public double messageUs(int fromRank, int toRank, long bytes) {
        if (fromRank == toRank) {
            return 0.0;
        }
        return latencyUs + (Double.isInfinite(bandwidthBytesPerUs) ? 0.0 : bytes / bandwidthBytesPerUs);
    }

    private double jitter(int rank, ActionType type, int microbatch, int virtualStage) {
        if (jitterFraction == 0.0) {
            return 1.0;
        }
        long h = mix(seed ^ mix(((long) rank << 40) ^ ((long) type.ordinal() << 36)
                ^ ((long) virtualStage << 28) ^ microbatch));
        double u = (h >>> 11) * 0x1.0p-53;
        return 1.0 + jitterFraction * (2.0 * u - 1.0);
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    private static void requireTime(String name, double us) {
        if (!(us >= 0.0) || Double.isInfinite(us)) {
            throw new IllegalArgumentException(name + " must be a finite time >= 0: " + name + "=" + us);
        }
    }

    @Override
    public String toString() {
        return "CostModel[F=" + Arrays.toString(forwardUs) + ", B=" + Arrays.toString(backwardUs) + ", W="
                + Arrays.toString(weightUs) + ", jitter=" + jitterFraction + ", seed=" + seed + ", latencyUs="
                + latencyUs + ", bandwidthBytesPerUs=" + bandwidthBytesPerUs + "]";
    }
}
