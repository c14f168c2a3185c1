package io.troupe.runtime.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * {@code scripts/bench dw-gemm [--rows N] [--reps N]}: the weight-gradient product of a linear layer,
 * {@code dW (out, in) += dY^T X} with {@code dY (rows, out)} and {@code X (rows, in)}, on one CPU thread, for
 * the small GPT's linears (qkv, attention projection, fc, fc projection, head; {@code rows} = batch x seq,
 * default 1024), in every operand layout OpenBLAS accepts for the same result, against the forward product
 * of the same flops ({@code Y (rows, out) = X W^T}) measured in the same run:
 * <ul>
 *   <li>{@code T,N}: {@code dY} and {@code X} as the model keeps them (what the model calls);</li>
 *   <li>{@code N,N}: {@code dY^T} given, {@code T,T}: {@code X^T} given, {@code N,T}: both given (the
 *       transposes made before the timing: these rows bound what a transposed copy could buy);</li>
 *   <li>{@code forward}: the forward gemm with the same m, n, k, the time the weight gradient would take at
 *       the forward's speed.</li>
 * </ul>
 * Each repetition runs every variant once, round-robin, timed one call at a time, so load that comes and goes
 * falls on all; the figures are the 10th percentile and the median of the calls, and each ratio is to
 * {@code T,N}'s. Each variant's result is compared bitwise with {@code T,N}'s ("same" or "DIFFERS").
 * Last line: {@code dw_gemm rows=<n> tn_us=<sum of T,N medians> best_layout_ratio=<min over layouts>
 * forward_ratio=<forward / T,N over all shapes>}.
 */
public final class WeightGradientGemmBench {
    private static final String USAGE = "usage: scripts/bench dw-gemm [--rows N] [--reps N]";
    /** (out, in) of the small GPT's linears: qkv, attention projection, fc, fc projection, head. */
    private static final int[][] SHAPES = {{384, 128}, {128, 128}, {512, 128}, {128, 512}, {256, 128}};
    private static final String[] NAMES = {"T,N (model)", "N,N dY^T", "T,T X^T", "N,T both^T", "forward"};

    private WeightGradientGemmBench() {
    }

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "dw-gemm", USAGE, Set.of("rows", "reps"), Set.of());
        int rows = o.getInt("rows", 1024);
        int reps = o.getInt("reps", 300);
        CpuDevice dev = new CpuDevice(1);
        double[] layoutSum = new double[NAMES.length];
        System.out.printf(Locale.ROOT, "dw-gemm: dW (out, in) += dY^T X over %d rows, %s, %d repetitions%n", rows,
            dev.name(), reps);
        for (int[] shape : SHAPES) {
            double[] med = shape(dev, shape[0], shape[1], rows, reps);
            for (int v = 0; v < NAMES.length; v++) {
                layoutSum[v] += med[v];
            }
        }
        double best = Double.MAX_VALUE;
        for (int v = 1; v < 4; v++) {
            best = Math.min(best, layoutSum[v] / layoutSum[0]);
        }
        System.out.printf(Locale.ROOT, "all shapes, median us: T,N %.1f, N,N %.1f, T,T %.1f, N,T %.1f, forward %.1f%n",
            layoutSum[0], layoutSum[1], layoutSum[2], layoutSum[3], layoutSum[4]);
        System.out.printf(Locale.ROOT, "dw_gemm rows=%d tn_us=%.1f best_layout_ratio=%.3f forward_ratio=%.3f%n", rows,
            layoutSum[0], best, layoutSum[4] / layoutSum[0]);
        dev.close();
    }

    /** Times the variants for one (out, in) shape; returns each variant's median microseconds. */
    private static double[] shape(CpuDevice dev, int out, int in, int rows, int reps) {
        Random r = new Random(out * 31L + in);
        float[] dy = random(r, rows * out);
        float[] x = random(r, rows * in);
        try (Tensor dY = tensor(dev, dy, rows, out);
             Tensor xT = tensor(dev, x, rows, in);
             Tensor dYt = tensor(dev, transpose(dy, rows, out), out, rows);
             Tensor xTt = tensor(dev, transpose(x, rows, in), in, rows);
             Tensor dW = dev.allocate(DType.F32, out, in);
             Tensor w = tensor(dev, random(r, out * in), out, in);
             Tensor y = dev.allocate(DType.F32, rows, out)) {
            long[][] ns = new long[NAMES.length][reps];
            float[][] result = new float[NAMES.length][out * in];
            for (int rep = -10; rep < reps; rep++) {
                for (int v = 0; v < NAMES.length; v++) {
                    dev.fill(dW, 0f);
                    long t0 = System.nanoTime();
                    switch (v) {
                        case 0 -> dev.gemm(true, false, out, in, rows, 1f, dY, out, xT, in, 1f, dW, in);
                        case 1 -> dev.gemm(false, false, out, in, rows, 1f, dYt, rows, xT, in, 1f, dW, in);
                        case 2 -> dev.gemm(true, true, out, in, rows, 1f, dY, out, xTt, rows, 1f, dW, in);
                        case 3 -> dev.gemm(false, true, out, in, rows, 1f, dYt, rows, xTt, rows, 1f, dW, in);
                        default -> dev.gemm(false, true, rows, out, in, 1f, xT, in, w, in, 0f, y, out);
                    }
                    long dt = System.nanoTime() - t0;
                    if (rep >= 0) {
                        ns[v][rep] = dt;
                    }
                    if (rep == 0 && v < 4) {
                        dev.copyToHost(dW, result[v]);
                    }
                }
            }
            double[] med = new double[NAMES.length];
            System.out.printf(Locale.ROOT, "dW (%d, %d), k=%d:%n", out, in, rows);
            long[] base = ns[0].clone();
            Arrays.sort(base);
            for (int v = 0; v < NAMES.length; v++) {
                long[] s = ns[v].clone();
                Arrays.sort(s);
                med[v] = s[reps / 2] / 1e3;
                String same = v == 4 ? ""
                    : Arrays.equals(result[v], result[0]) ? "  result: same" : "  result: DIFFERS";
                System.out.printf(Locale.ROOT, "  %-12s p10 %8.1f us (x%.3f)  median %8.1f us (x%.3f)%s%n", NAMES[v],
                    s[reps / 10] / 1e3, s[reps / 10] / (double) base[reps / 10], med[v],
                    s[reps / 2] / (double) base[reps / 2], same);
            }
            return med;
        }
    }

    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = r.nextFloat() - 0.5f;
        }
        return a;
    }

    /** (cols, rows) = a^T for a of (rows, cols). */
    private static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        return t;
    }

    private static Tensor tensor(CpuDevice dev, float[] data, int rows, int cols) {
        Tensor t = dev.allocate(DType.F32, rows, cols);
        dev.copyFromHost(data, t);
        return t;
    }
}
