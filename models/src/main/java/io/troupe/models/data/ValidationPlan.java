package io.troupe.models.data;

/**
 * Which validation windows a pass reads, and how pass losses combine into the validation loss.
 * The validation stream of {@code N} tokens holds {@code W = (N - 1) / T} non-overlapping windows,
 * window {@code k} at {@code [k*T, k*T + T)} with targets shifted by one. A pass is one forward of
 * {@code rows} rows.
 *
 * <ul>
 * <li>{@code batches = n >= 1}: {@code n} batches of {@code batchSize} rows, i.e. the first
 *     {@code n * batchSize} windows; the loss is the mean over passes. When {@code n * batchSize >= W}
 *     that is every window, and the plan is that of {@link #ALL}: each window counts once, none twice.</li>
 * <li>{@code batches = }{@link #ALL}: every window exactly once. When {@code rows} does not divide
 *     {@code W}, the last {@code q = W mod rows} windows share a pass with {@code rows - q} copies
 *     of window 0, and one more pass of window 0 alone measures what those copies added, which is
 *     taken out: the loss is exactly the mean over the {@code W} windows.</li>
 * </ul>
 *
 * <p>A pass loss is the mean cross-entropy over its rows' tokens (what {@code loss()} of a model
 * returns). Immutable; safe to share between threads.
 */
public final class ValidationPlan {
    /** {@code batches} value for exact validation over every window. */
    public static final int ALL = 0;

    /** A model's mean cross-entropy over the rows of {@code x} (inputs) and {@code y} (targets). */
    @FunctionalInterface
    public interface PassLoss {
        double meanLoss(int[] x, int[] y);
    }

    private final TokenStream stream;
    private final int seqLen;
    private final int rows;
    private final long windows;
    private final boolean all;
    private final int fullPasses;
    private final int remainder;
    private final int passes;

    /**
     * @param batchSize rows of a validation batch (the training batch size); used when {@code batches >= 1}
     * @param rows      rows of one forward pass; must divide {@code batchSize}
     * @param batches   batches per validation, or {@link #ALL}; as many as cover every window, or more, read
     *                  every window once, as {@link #ALL} does
     */
    public ValidationPlan(TokenStream stream, int seqLen, int batchSize, int rows, int batches) {
        if (rows < 1 || batchSize % rows != 0) {
            throw new IllegalArgumentException("rows must divide batch_size: rows=" + rows
                + ", batch_size=" + batchSize);
        }
        if (batches < 0) {
            throw new IllegalArgumentException("eval_batches must be >= 1 or all: eval_batches=" + batches);
        }
        this.stream = stream;
        this.seqLen = seqLen;
        this.rows = rows;
        this.windows = (stream.length() - 1) / seqLen;
        if (windows < 1) {
            throw new IllegalArgumentException("validation split too short for seq_len=" + seqLen
                + ": " + stream.length() + " tokens in " + stream.description() + " (need >= " + (seqLen + 1L)
                + ": one window and its next token)");
        }
        this.all = batches == ALL || (long) batches * batchSize >= windows;
        long full = all ? windows / rows : (long) batches * (batchSize / rows);
        this.remainder = all ? (int) (windows % rows) : 0;
        long total = full + (remainder > 0 ? 2 : 0);
        if (total > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("validation needs " + total + " passes of " + rows + " rows; too many");
        }
        this.fullPasses = (int) full;
        this.passes = (int) total;
    }

    /** Every non-overlapping window of {@code stream}, {@code rows} at a time: the exact validation loss. */
    public static double meanLoss(TokenStream stream, int seqLen, int rows, PassLoss model) {
        return new ValidationPlan(stream, seqLen, rows, rows, ALL).meanLoss(model);
    }

    /** Non-overlapping windows in the stream ({@code (N - 1) / T}). */
    public long windows() {
        return windows;
    }

    /** Forward passes of {@link #rows()} rows this validation takes. */
    public int passes() {
        return passes;
    }

    public int rows() {
        return rows;
    }

    /** Fills {@code x} and {@code y} ({@code rows * seqLen} each) with the rows of pass {@code pass}. */
    public void fill(int pass, int[] x, int[] y) {
        for (int r = 0; r < rows; r++) {
            long w;
            if (!all) {
                w = ((long) pass * rows + r) % windows;
            } else if (pass < fullPasses) {
                w = (long) pass * rows + r;
            } else if (pass == fullPasses && r < remainder) {
                w = (long) pass * rows + r;
            } else {
                w = 0;
            }
            long start = w * seqLen;
            for (int t = 0; t < seqLen; t++) {
                x[r * seqLen + t] = stream.token(start + t);
                y[r * seqLen + t] = stream.token(start + t + 1);
            }
        }
    }

    /** The validation loss from every pass's mean loss ({@code passLoss.length == passes()}). */
    public double combine(double[] passLoss) {
        if (passLoss.length != passes) {
            throw new IllegalArgumentException("expected " + passes + " pass losses, got " + passLoss.length);
        }
        double sum = 0;
        for (int p = 0; p < fullPasses; p++) {
            sum += passLoss[p];
        }
        if (!all) {
            return sum / passes;
        }
        sum *= rows;
        if (remainder > 0) {
            sum += rows * passLoss[fullPasses] - (double) (rows - remainder) * passLoss[fullPasses + 1];
        }
        return sum / windows;
    }

    /** Runs every pass through {@code model} and combines them. */
    public double meanLoss(PassLoss model) {
        int[] x = new int[rows * seqLen];
        int[] y = new int[rows * seqLen];
        double[] losses = new double[passes];
        for (int p = 0; p < passes; p++) {
            fill(p, x, y);
            losses[p] = model.meanLoss(x, y);
        }
        return combine(losses);
    }
}
