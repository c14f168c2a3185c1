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
 * {@code scripts/bench bias-fold [--rows N] [--reps N]}: a linear layer's forward with bias on one CPU thread,
 * {@code Y (rows, out) = X W^T + b}, as {@link CpuDevice#matmulBias} runs it with the bias folded into the gemm
 * (rows started at the bias, beta = 1) against gemm then {@code biasAdd} (the baseline), measured in the same run,
 * for the small GPT's linears that fold (qkv and attention projection: k = 128). Before each call a 32 MiB
 * buffer is written, so the operands come from memory as in a training step. Each repetition runs both forms,
 * in alternating order, timed one call at a time; the figures are medians. Both forms' outputs are compared
 * bitwise ("same" or "DIFFERS"). Last line: {@code bias_fold rows=<n> unfolded_us=<sum> folded_us=<sum>
 * ratio=<folded/unfolded>}.
 */
public final class BiasFoldBench {
    private static final String USAGE = "usage: scripts/bench bias-fold [--rows N] [--reps N]";
    /** (out, in) of the small GPT's linears whose bias folds: qkv, attention projection. */
    private static final int[][] SHAPES = {{384, 128}, {128, 128}};

    private BiasFoldBench() {
    }

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "bias-fold", USAGE, Set.of("rows", "reps"), Set.of());
        int rows = o.getInt("rows", 1024);
        int reps = o.getInt("reps", 400);
        boolean before = CpuDevice.foldsBiasIntoGemm();
        double[] sum = new double[2];
        try (CpuDevice dev = new CpuDevice(1); Tensor evict = dev.allocate(DType.F32, 8 << 20)) {
            System.out.printf(Locale.ROOT, "bias-fold: Y = X W^T + b over %d rows, %s, %d repetitions%n", rows,
                dev.name(), reps);
            Random rnd = new Random(7);
            for (int[] s : SHAPES) {
                int n = s[0];
                int k = s[1];
                try (Tensor x = filled(dev, rnd, rows * k); Tensor w = filled(dev, rnd, n * k);
                     Tensor b = filled(dev, rnd, n); Tensor out = dev.allocate(DType.F32, rows * n)) {
                    double[][] us = new double[2][reps];
                    float[][] result = new float[2][rows * n];
                    for (int r = 0; r < reps; r++) {
                        for (int j = 0; j < 2; j++) {
                            int v = r % 2 == 0 ? j : 1 - j;              // 0 = gemm + biasAdd, 1 = folded
                            CpuDevice.foldBiasIntoGemm(v == 1);
                            dev.fill(evict, 0f);
                            long t0 = System.nanoTime();
                            dev.matmulBias(rows, n, k, x, w, b, out);
                            us[v][r] = (System.nanoTime() - t0) / 1e3;
                            if (r == 0) {
                                dev.copyToHost(out, result[v]);
                            }
                        }
                    }
                    double unfolded = median(us[0]);
                    double folded = median(us[1]);
                    sum[0] += unfolded;
                    sum[1] += folded;
                    System.out.printf(Locale.ROOT, "(%d x %d) k=%d: gemm+biasAdd %.1f us, folded %.1f us -> %.3f, %s%n",
                        rows, n, k, unfolded, folded, folded / unfolded,
                        Arrays.equals(result[0], result[1]) ? "same" : "DIFFERS");
                }
            }
        } finally {
            CpuDevice.foldBiasIntoGemm(before);
        }
        System.out.printf(Locale.ROOT, "bias_fold rows=%d unfolded_us=%.1f folded_us=%.1f ratio=%.3f%n", rows, sum[0],
            sum[1], sum[1] / sum[0]);
    }

    private static Tensor filled(CpuDevice dev, Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        Tensor t = dev.allocate(DType.F32, n);
        dev.copyFromHost(v, t);
        return t;
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
