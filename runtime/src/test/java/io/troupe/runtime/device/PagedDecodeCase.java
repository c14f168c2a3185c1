package io.troupe.runtime.device;

import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * A random paged-decoding scenario for {@link Device#pagedKvWrite} and {@link Device#pagedAttention}:
 * a few sequences whose blocks are scattered over the cache, and steps whose rows mix prefill chunks
 * (several rows of one sequence, crossing block boundaries) with single decode rows. {@link #run}
 * executes it on a device; {@link #expected} is a dumb per-row loop in double precision over a
 * logical cache (keys and values by sequence and position, no blocks at all).
 */
public final class PagedDecodeCase {
    public final int heads;
    public final int headDim;
    public final int blockSize;
    public final int numBlocks;
    public final int maxBlocks;
    public final float scale;
    /** Per sequence: its physical blocks. */
    final int[][] tables;
    /** Per step: rows as (sequence, position). */
    final List<int[][]> steps = new ArrayList<>();
    /** Per step: (rows, 3 width) projections. */
    final List<float[]> qkv = new ArrayList<>();

    /**
     * Sequences of the given lengths, fed in steps: a prefill chunk of {@code chunk} rows per sequence
     * at a time until each has {@code prefill} positions, then one decode row per sequence and step.
     */
    public PagedDecodeCase(long seed, int heads, int headDim, int blockSize, int[] prefill, int chunk,
                           int decodeSteps) {
        this.heads = heads;
        this.headDim = headDim;
        this.blockSize = blockSize;
        this.scale = (float) (1.0 / Math.sqrt(headDim));
        Random rnd = new Random(seed);
        int longest = 0;
        for (int p : prefill) {
            longest = Math.max(longest, p + decodeSteps);
        }
        this.maxBlocks = (longest + blockSize - 1) / blockSize + 1;
        this.numBlocks = prefill.length * maxBlocks + 3;
        List<Integer> ids = new ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            ids.add(b);
        }
        Collections.shuffle(ids, rnd);
        tables = new int[prefill.length][maxBlocks];
        for (int s = 0, i = 0; s < prefill.length; s++) {
            for (int b = 0; b < maxBlocks; b++) {
                tables[s][b] = ids.get(i++);
            }
        }
        int[] next = new int[prefill.length];
        boolean more = true;
        while (more) {
            more = false;
            List<int[]> rows = new ArrayList<>();
            for (int s = 0; s < prefill.length; s++) {
                for (int j = 0; j < chunk && next[s] < prefill[s]; j++) {
                    rows.add(new int[] {s, next[s]++});
                }
                more |= next[s] < prefill[s];
            }
            addStep(rnd, rows);
        }
        for (int d = 0; d < decodeSteps; d++) {
            List<int[]> rows = new ArrayList<>();
            for (int s = 0; s < prefill.length; s++) {
                rows.add(new int[] {s, next[s]++});
            }
            addStep(rnd, rows);
        }
    }

    private PagedDecodeCase(PagedDecodeCase from) {
        this.heads = from.heads;
        this.headDim = from.headDim;
        this.blockSize = from.blockSize;
        this.scale = from.scale;
        this.maxBlocks = from.maxBlocks;
        this.numBlocks = from.numBlocks;
        this.tables = from.tables;
    }

    /**
     * The same scenario with only sequence {@code seq}'s rows (the same projections, the same blocks),
     * steps where it has none dropped: its outputs must be the bits it had among the others.
     */
    public PagedDecodeCase onlySequence(int seq) {
        PagedDecodeCase one = new PagedDecodeCase(this);
        int c3 = 3 * width();
        for (int st = 0; st < steps.size(); st++) {
            List<int[]> rows = new ArrayList<>();
            List<float[]> x = new ArrayList<>();
            int[][] r = steps.get(st);
            for (int i = 0; i < r.length; i++) {
                if (r[i][0] == seq) {
                    rows.add(r[i]);
                    x.add(Arrays.copyOfRange(qkv.get(st), i * c3, (i + 1) * c3));
                }
            }
            if (!rows.isEmpty()) {
                one.steps.add(rows.toArray(new int[0][]));
                float[] flat = new float[rows.size() * c3];
                for (int i = 0; i < x.size(); i++) {
                    System.arraycopy(x.get(i), 0, flat, i * c3, c3);
                }
                one.qkv.add(flat);
            }
        }
        return one;
    }

    /** The outputs of {@code seq}'s rows, step by step (steps without it dropped), from {@link #run}'s result. */
    public List<float[]> rowsOf(int seq, List<float[]> outs) {
        int c = width();
        List<float[]> picked = new ArrayList<>();
        for (int st = 0; st < steps.size(); st++) {
            int[][] r = steps.get(st);
            List<float[]> rows = new ArrayList<>();
            for (int i = 0; i < r.length; i++) {
                if (r[i][0] == seq) {
                    rows.add(Arrays.copyOfRange(outs.get(st), i * c, (i + 1) * c));
                }
            }
            if (!rows.isEmpty()) {
                float[] flat = new float[rows.size() * c];
                for (int i = 0; i < rows.size(); i++) {
                    System.arraycopy(rows.get(i), 0, flat, i * c, c);
                }
                picked.add(flat);
            }
        }
        return picked;
    }

    private void addStep(Random rnd, List<int[]> rows) {
        steps.add(rows.toArray(new int[0][]));
        float[] x = new float[rows.size() * 3 * width()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        qkv.add(x);
    }

    public int width() {
        return heads * headDim;
    }

    public int stepCount() {
        return steps.size();
    }

    /** Runs every step on {@code dev} (caches poisoned with NaN first); the attention output of each step. */
    public List<float[]> run(Device dev) {
        int c = width();
        long layer = PagedKvLayout.layerElements(numBlocks, blockSize, c);
        List<float[]> outs = new ArrayList<>();
        try (Tensor keys = dev.allocate((int) layer); Tensor values = dev.allocate((int) layer);
             PagedRows rows = new PagedRows(dev, maxBlocks)) {
            dev.fill(keys, Float.NaN);
            dev.fill(values, Float.NaN);
            for (int st = 0; st < steps.size(); st++) {
                int[][] r = steps.get(st);
                int n = r.length;
                int[] pos = new int[n];
                int[] rowTable = new int[n];
                for (int i = 0; i < n; i++) {
                    rowTable[i] = r[i][0];
                    pos[i] = r[i][1];
                }
                int[] flat = new int[tables.length * maxBlocks];
                for (int s = 0; s < tables.length; s++) {
                    System.arraycopy(tables[s], 0, flat, s * maxBlocks, maxBlocks);
                }
                rows.set(n, pos, rowTable, tables.length, flat);
                try (Tensor q = dev.allocate(n, 3 * c); Tensor out = dev.allocate(n, c)) {
                    dev.copyFromHost(qkv.get(st), q);
                    dev.fill(out, Float.NaN);
                    dev.pagedKvWrite(q, keys, values, rows, c, blockSize);
                    dev.pagedAttention(q, keys, values, out, rows, heads, headDim, blockSize, scale);
                    float[] o = new float[n * c];
                    dev.copyToHost(out, o);
                    outs.add(o);
                }
            }
            dev.synchronize();
        }
        return outs;
    }

    /** The dumb loop: per step, every row's key and value into a logical cache, then each row attends. */
    public List<float[]> expected() {
        int c = width();
        List<List<float[]>> k = new ArrayList<>();
        List<List<float[]>> v = new ArrayList<>();
        for (int s = 0; s < tables.length; s++) {
            k.add(new ArrayList<>());
            v.add(new ArrayList<>());
        }
        List<float[]> outs = new ArrayList<>();
        for (int st = 0; st < steps.size(); st++) {
            int[][] r = steps.get(st);
            float[] x = qkv.get(st);
            for (int i = 0; i < r.length; i++) {
                List<float[]> ks = k.get(r[i][0]);
                List<float[]> vs = v.get(r[i][0]);
                while (ks.size() <= r[i][1]) {
                    ks.add(null);
                    vs.add(null);
                }
                ks.set(r[i][1], Arrays.copyOfRange(x, i * 3 * c + c, i * 3 * c + 2 * c));
                vs.set(r[i][1], Arrays.copyOfRange(x, i * 3 * c + 2 * c, i * 3 * c + 3 * c));
            }
            float[] out = new float[r.length * c];
            for (int i = 0; i < r.length; i++) {
                List<float[]> ks = k.get(r[i][0]);
                List<float[]> vs = v.get(r[i][0]);
                int count = r[i][1] + 1;
                for (int h = 0; h < heads; h++) {
                    double[] w = new double[count];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int u = 0; u < count; u++) {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += (double) x[i * 3 * c + h * headDim + d] * ks.get(u)[h * headDim + d];
                        }
                        w[u] = dot * scale;
                        max = Math.max(max, w[u]);
                    }
                    double sum = 0;
                    for (int u = 0; u < count; u++) {
                        w[u] = Math.exp(w[u] - max);
                        sum += w[u];
                    }
                    for (int d = 0; d < headDim; d++) {
                        double acc = 0;
                        for (int u = 0; u < count; u++) {
                            acc += w[u] * vs.get(u)[h * headDim + d];
                        }
                        out[i * c + h * headDim + d] = (float) (acc / sum);
                    }
                }
            }
            outs.add(out);
        }
        return outs;
    }

    /** The largest |a - b| / (1 + |b|) over every step; NaN anywhere gives infinity. */
    public static double maxRelDiff(List<float[]> a, List<float[]> b) {
        double worst = 0;
        for (int s = 0; s < a.size(); s++) {
            float[] x = a.get(s);
            float[] y = b.get(s);
            if (x.length != y.length) {
                return Double.POSITIVE_INFINITY;
            }
            for (int i = 0; i < x.length; i++) {
                double d = Math.abs((double) x[i] - y[i]) / (1 + Math.abs(y[i]));
                if (Double.isNaN(d)) {
                    return Double.POSITIVE_INFINITY;
                }
                worst = Math.max(worst, d);
            }
        }
        return worst;
    }

    /**
     * {@link Device#linearRowInvariant} of {@code x} (rows x k) by {@code w} (n x k) plus {@code b} (null: no
     * bias) on {@code dev}, its output poisoned with NaN first; the result on the host.
     */
    public static float[] linear(Device dev, int rows, int n, int k, float[] x, float[] w, float[] b) {
        try (Tensor tx = dev.allocate(rows, k); Tensor tw = dev.allocate(n, k); Tensor tb = dev.allocate(n);
             Tensor out = dev.allocate(rows, n)) {
            dev.copyFromHost(x, tx);
            dev.copyFromHost(w, tw);
            dev.copyFromHost(b == null ? new float[n] : b, tb);
            dev.fill(out, Float.NaN);
            dev.linearRowInvariant(rows, n, k, tx, tw, b == null ? null : tb, out);
            float[] o = new float[rows * n];
            dev.copyToHost(out, o);
            dev.synchronize();
            return o;
        }
    }

    /** {@code n} standard normal floats from {@code rnd}. */
    public static float[] gaussian(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }
}
