package io.troupe.models.infer;

import io.troupe.models.data.TokenStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The exact validation loss of inference weights: the mean next-token cross-entropy over every
 * position of every non-overlapping window of a token stream. Window w takes inputs
 * {@code [w*T, (w+1)*T)} and targets shifted by one, for every w with {@code (w+1)*T + 1 <= N}
 * (T = the model's context); nothing is sampled, so the figure is the same on every run.
 */
public final class ValidationLoss {
    /** The loss with the count it averages. */
    public record Result(double loss, long windows, long tokens) {
    }

    private ValidationLoss() {
    }

    /** Evaluates on {@code threads} threads, {@code rowsPerStep} windows per forward step. */
    public static Result exact(InferenceWeights weights, TokenStream stream, int threads, int rowsPerStep) {
        if (threads < 1 || rowsPerStep < 1) {
            throw new IllegalArgumentException("threads and rows per step must be >= 1: threads=" + threads
                + ", rowsPerStep=" + rowsPerStep);
        }
        int t = weights.config().seqLen();
        long windows = (stream.length() - 1L) / t;
        if (windows < 1) {
            throw new IllegalArgumentException("validation stream of " + stream.length() + " tokens is shorter than one window of "
                + (t + 1) + ": " + stream.description());
        }
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread th = new Thread(r, "troupe-eval");
            th.setDaemon(true);
            return th;
        });
        try {
            List<Future<double[]>> parts = new ArrayList<>();
            for (int p = 0; p < threads; p++) {
                long from = windows * p / threads;
                long to = windows * (p + 1) / threads;
                parts.add(pool.submit(() -> sum(weights, stream, from, to, rowsPerStep)));
            }
            double total = 0;
            for (Future<double[]> f : parts) {
                total += f.get()[0];
            }
            long tokens = windows * t;
            return new Result(total / tokens, windows, tokens);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("evaluation interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("evaluation failed: " + e.getCause(), e.getCause());
        } finally {
            pool.shutdownNow();
        }
    }

    /** Summed cross-entropy (nats) over windows [from, to). */
    private static double[] sum(InferenceWeights weights, TokenStream stream, long from, long to, int rows) {
        int t = weights.config().seqLen();
        int v = weights.config().vocabSize();
        PagedKvCache cache = new PagedKvCache(weights.config(), t, rows);
        KvCachedGpt model = new KvCachedGpt(weights, cache);
        BlockTable[] tables = new BlockTable[rows];
        for (int r = 0; r < rows; r++) {
            tables[r] = new BlockTable();
            cache.ensureCapacity(tables[r], t);
        }
        StepBatch batch = new StepBatch();
        double total = 0;
        for (long w0 = from; w0 < to; w0 += rows) {
            int n = (int) Math.min(rows, to - w0);
            batch.clear();
            for (int r = 0; r < n; r++) {
                int start = (int) ((w0 + r) * t);
                for (int p = 0; p < t; p++) {
                    batch.add(stream.token(start + p), p, tables[r], true);
                }
            }
            float[] logits = model.forward(batch);
            for (int r = 0; r < n; r++) {
                int start = (int) ((w0 + r) * t);
                for (int p = 0; p < t; p++) {
                    total += crossEntropy(logits, (r * t + p) * v, v, stream.token(start + p + 1));
                }
            }
        }
        return new double[] {total};
    }

    /** -log softmax(row)[target], in double. */
    static double crossEntropy(float[] logits, int off, int v, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < v; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        return Math.log(sum) + max - logits[off + target];
    }
}
