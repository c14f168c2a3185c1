package io.troupe.models.memory;

import java.util.Locale;

/**
 * Bytes one rank holds, by what for: parameters, gradients, optimizer state (AdamW's moments, only
 * the owned ranges under ZeRO), activations kept from forward for backward (the slots allocated:
 * they are kept and reused, so after a step this is the highest the step needed), and
 * communication buffers (received activations and gradients between stages).
 */
public record RankMemory(long paramBytes, long gradBytes, long optimizerBytes, long activationBytes, long commBytes) {
    private static final double MIB = 1024.0 * 1024.0;

    public RankMemory {
        if (paramBytes < 0 || gradBytes < 0 || optimizerBytes < 0 || activationBytes < 0 || commBytes < 0) {
            throw new IllegalArgumentException("byte counts must be >= 0: " + paramBytes + ", " + gradBytes + ", "
                + optimizerBytes + ", " + activationBytes + ", " + commBytes);
        }
    }

    public long totalBytes() {
        return paramBytes + gradBytes + optimizerBytes + activationBytes + commBytes;
    }

    public double totalMib() {
        return totalBytes() / MIB;
    }

    /** The sum of two ranks' (or two parts of one rank's) bytes. */
    public RankMemory plus(RankMemory o) {
        return new RankMemory(paramBytes + o.paramBytes, gradBytes + o.gradBytes, optimizerBytes + o.optimizerBytes,
            activationBytes + o.activationBytes, commBytes + o.commBytes);
    }

    /** Category by category, the larger of the two (the busiest rank's figure in each). */
    public RankMemory max(RankMemory o) {
        return new RankMemory(Math.max(paramBytes, o.paramBytes), Math.max(gradBytes, o.gradBytes),
            Math.max(optimizerBytes, o.optimizerBytes), Math.max(activationBytes, o.activationBytes),
            Math.max(commBytes, o.commBytes));
    }

    /** {@code memory per rank: params 1.2 MiB, grads 1.2 MiB, optimizer 2.4 MiB, activations 3.0 MiB, comm 0.5 MiB}. */
    public String line() {
        return String.format(Locale.ROOT,
            "memory per rank: params %.1f MiB, grads %.1f MiB, optimizer %.1f MiB, activations %.1f MiB, comm %.1f MiB",
            paramBytes / MIB, gradBytes / MIB, optimizerBytes / MIB, activationBytes / MIB, commBytes / MIB);
    }

    @Override
    public String toString() {
        return line();
    }
}
