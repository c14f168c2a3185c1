package io.troupe.models.data;

/**
 * Deterministic batch sampling: row {@code b} of step {@code t} is a pure function of (seed, step,
 * row), so every parallel layout sees the same global batch and a run resumed at step {@code t}
 * continues exactly; no cursor is kept beyond the step.
 *
 * <p><b>Shuffled</b> ({@link #shuffled}, what training uses). With global batch size {@code B},
 * sequence length {@code T} and {@code N} tokens, the stream holds {@code W = (N - T) / T} windows
 * per epoch. Global sample {@code g = t*B + b} falls in epoch {@code e = g / W} at position
 * {@code i = g mod W}; it reads window {@code k = perm_e(i)} at
 * {@code start = offset_e + k*T}, where {@code perm_e} is a seeded permutation of {@code [0, W)}
 * (a 4-round Feistel network over the next even power of two, cycle-walked into range, keyed by
 * (seed, e)) and {@code offset_e} in {@code [0, T)} is drawn per epoch from (seed, e), so window
 * boundaries move from epoch to epoch. Every window of an epoch is read exactly once. No
 * permutation is materialised: memory is O(1) whatever the corpus size.
 *
 * <p><b>In order</b> ({@link #Batches(TokenStream, int)}, the parity recipe of the float64
 * reference): {@code start = ((t*B + b) * T) mod (N - T - 1)}.
 *
 * <p>Inputs are {@code stream[start, start+T)} and targets the same shifted by one. A layout with
 * {@code dp} replicas and {@code m} micro-batches per replica takes global rows
 * {@code [(d*m + j) * rowsPerMicro, ...)} for replica d, micro-batch j.
 */
public final class Batches {
    private static final long OFFSET_KEY = 0x6f66667365744b65L;

    private final TokenStream stream;
    private final int seqLen;
    private final boolean shuffled;
    private final long seed;
    private final long windows;
    private final long span;

    /** In-order sampling (the reference recipe); training uses {@link #shuffled}. */
    public Batches(TokenStream stream, int seqLen) {
        this(stream, seqLen, false, 0);
    }

    private Batches(TokenStream stream, int seqLen, boolean shuffled, long seed) {
        if (seqLen < 1 || stream.length() < 2L * seqLen + 1) {
            throw new IllegalArgumentException("corpus too short for seq_len=" + seqLen + ": " + stream.length()
                + " tokens in " + stream.description() + " (need >= " + (2L * seqLen + 1) + ")");
        }
        this.stream = stream;
        this.seqLen = seqLen;
        this.shuffled = shuffled;
        this.seed = seed;
        this.windows = (stream.length() - seqLen) / seqLen;
        this.span = stream.length() - seqLen - 1L;
    }

    /** Shuffled sampling keyed by {@code seed} (see the class comment). */
    public static Batches shuffled(TokenStream stream, int seqLen, long seed) {
        return new Batches(stream, seqLen, true, seed);
    }

    public int seqLen() {
        return seqLen;
    }

    /** Windows per epoch ({@code (N - T) / T}). */
    public long windowsPerEpoch() {
        return windows;
    }

    /** Epochs completed after {@code steps} steps of {@code batchSize} rows (fractional). */
    public double epochs(long steps, int batchSize) {
        return (double) steps * batchSize / windows;
    }

    /** Start offset of row {@code row} of step {@code step} for a global batch of {@code batchSize} rows. */
    public long start(long step, int batchSize, int row) {
        long g = step * batchSize + row;
        if (!shuffled) {
            return Math.floorMod(g * seqLen, span);
        }
        long epoch = g / windows;
        long key = mix(seed ^ mix(epoch + 1));
        long offset = Long.remainderUnsigned(mix(key ^ OFFSET_KEY), seqLen);
        return offset + permute(g % windows, windows, key) * seqLen;
    }

    /**
     * Fills {@code x} and {@code y} (each {@code rows * seqLen}) with global rows
     * {@code [firstRow, firstRow + rows)} of step {@code step}.
     */
    public void fill(long step, int batchSize, int firstRow, int rows, int[] x, int[] y) {
        for (int r = 0; r < rows; r++) {
            long start = start(step, batchSize, firstRow + r);
            for (int t = 0; t < seqLen; t++) {
                x[r * seqLen + t] = stream.token(start + t);
                y[r * seqLen + t] = stream.token(start + t + 1);
            }
        }
    }

    /** A bijection of {@code [0, n)} keyed by {@code key}: Feistel rounds over 2^bits, cycle-walked. */
    static long permute(long i, long n, long key) {
        int bits = Math.max(2, 64 - Long.numberOfLeadingZeros(n - 1));
        bits += bits & 1;
        int half = bits / 2;
        long mask = (1L << half) - 1;
        long x = i;
        do {
            long l = x >>> half;
            long r = x & mask;
            for (int round = 0; round < 4; round++) {
                long f = mix(key + round * 0x9E3779B97F4A7C15L + r) & mask;
                long nl = r;
                r = l ^ f;
                l = nl;
            }
            x = (l << half) | r;
        } while (x >= n);
        return x;
    }

    /** SplitMix64's finaliser. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
