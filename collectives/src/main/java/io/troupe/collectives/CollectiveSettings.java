package io.troupe.collectives;

import java.util.concurrent.TimeUnit;

/**
 * Immutable, validated settings of one communicator.
 *
 * @param timeoutNs      every collective must finish within this time after it starts running, else
 *                       it fails on this rank with a {@link CollectiveTimeoutException} (default 30 s)
 * @param smallMaxBytes  all-reduces of at most this many bytes use recursive doubling, larger ones the
 *                       ring (the crossover measured by {@code CollectivesBench}; default
 *                       {@link #DEFAULT_SMALL_MAX_BYTES})
 * @param pipelineBytes  the ring moves each segment in pieces of at most this many bytes, so
 *                       reducing one piece overlaps with sending the next (default 512 KiB)
 * @param algorithm      force an all-reduce algorithm; {@link CollectiveAlgorithm#AUTO} by default
 * @param compression    what all-reduces put on the wire (bf16 also reduce-scatters');
 *                       {@link Compression#NONE} by default
 */
public record CollectiveSettings(long timeoutNs, long smallMaxBytes, int pipelineBytes, CollectiveAlgorithm algorithm,
                                 Compression compression) {
    /**
     * Crossover from recursive doubling to ring, measured by {@code scripts/bench collectives}
     * (docs/bench-collectives.md).
     */
    public static final long DEFAULT_SMALL_MAX_BYTES = 256 * 1024;

    public CollectiveSettings {
        if (timeoutNs <= 0) {
            throw new IllegalArgumentException("timeoutNs must be positive: timeoutNs=" + timeoutNs);
        }
        if (smallMaxBytes < 0) {
            throw new IllegalArgumentException("smallMaxBytes must be non-negative: smallMaxBytes=" + smallMaxBytes);
        }
        if (pipelineBytes < 1024 || pipelineBytes % 64 != 0) {
            throw new IllegalArgumentException("pipelineBytes must be a multiple of 64, at least 1024: pipelineBytes="
                + pipelineBytes);
        }
        if (algorithm == null || compression == null) {
            throw new IllegalArgumentException("algorithm and compression must be set: algorithm=" + algorithm
                + ", compression=" + compression);
        }
    }

    public static CollectiveSettings defaults() {
        return new CollectiveSettings(TimeUnit.SECONDS.toNanos(30), DEFAULT_SMALL_MAX_BYTES, 512 * 1024,
            CollectiveAlgorithm.AUTO, Compression.NONE);
    }

    public CollectiveSettings withTimeoutNs(long ns) {
        return new CollectiveSettings(ns, smallMaxBytes, pipelineBytes, algorithm, compression);
    }

    public CollectiveSettings withSmallMaxBytes(long bytes) {
        return new CollectiveSettings(timeoutNs, bytes, pipelineBytes, algorithm, compression);
    }

    public CollectiveSettings withPipelineBytes(int bytes) {
        return new CollectiveSettings(timeoutNs, smallMaxBytes, bytes, algorithm, compression);
    }

    public CollectiveSettings withAlgorithm(CollectiveAlgorithm a) {
        return new CollectiveSettings(timeoutNs, smallMaxBytes, pipelineBytes, a, compression);
    }

    public CollectiveSettings withCompression(Compression c) {
        return new CollectiveSettings(timeoutNs, smallMaxBytes, pipelineBytes, algorithm, c);
    }
}
