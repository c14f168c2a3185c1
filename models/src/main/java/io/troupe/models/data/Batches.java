package io.troupe.models.data;

/**
 * Deterministic batch sampling: row {@code b} of step {@code t} is a pure function of (stream,
 * step, row), so every parallel layout sees the same global batch. With global batch size
 * {@code B} and sequence length {@code T}: {@code w = t*B + b; start = (w*T) mod (N - T - 1)};
 * inputs are {@code stream[start, start+T)} and targets are shifted by one.
 *
 * <p>A layout with {@code dp} replicas and {@code m} micro-batches per replica takes global rows
 * {@code [(d*m + j) * rowsPerMicro, ...)} for replica d, micro-batch j.
 */
public final class Batches {
    private final TokenStream stream;
    private final int seqLen;
    private final long span;

    public Batches(TokenStream stream, int seqLen) {
        if (stream.length() < seqLen + 2) {
            throw new IllegalArgumentException("corpus too short for seq_len=" + seqLen + ": " + stream.length()
                + " tokens in " + stream.description());
        }
        this.stream = stream;
        this.seqLen = seqLen;
        this.span = stream.length() - seqLen - 1L;
    }

    public int seqLen() {
        return seqLen;
    }

    /** Start offset of row {@code row} of step {@code step} for a global batch of {@code batchSize} rows. */
    public long start(long step, int batchSize, int row) {
        long w = step * batchSize + row;
        return Math.floorMod(w * seqLen, span);
    }

    /**
     * Fills {@code x} and {@code y} (each {@code rows * seqLen}) with global rows
     * {@code [firstRow, firstRow + rows)} of step {@code step}.
     */
    public void fill(long step, int batchSize, int firstRow, int rows, int[] x, int[] y) {
        for (int r = 0; r < rows; r++) {
            int start = (int) start(step, batchSize, firstRow + r);
            for (int t = 0; t < seqLen; t++) {
                x[r * seqLen + t] = stream.token(start + t);
                y[r * seqLen + t] = stream.token(start + t + 1);
            }
        }
    }
}
