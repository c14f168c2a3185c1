package io.troupe.runtime.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * {@code scripts/bench gelu [--reps N]}: the CPU GELU's vectorised loop ({@code 0.5 x (1 + tanh(u))} with the
 * rational tanh {@code u P(u^2) / Q(u^2)} of the CPU backend, degrees 5/5) on a hot 512-float row, with P and Q
 * evaluated by Horner's rule in separate multiplies and adds (the earlier kernel) and in {@link Math#fma} (the
 * kernel now), alternating in the same run; prints ns per element of each, their ratio (p10 and median of the
 * repetitions) and the largest difference of the two results. Last line:
 * {@code gelu_tanh separate_ns=<p10> fma_ns=<p10> ratio=<fma/separate>}.
 */
public final class GeluTanhBench {
    private static final float SCALE = (float) Math.sqrt(2.0 / Math.PI);
    private static final float CUBIC = 0.044715f;
    // The coefficients of io.troupe.runtime.cpu.CpuGelu.
    private static final float P0 = 0.99999999982055088f;
    private static final float P1 = 0.14097189616748285f;
    private static final float P2 = 0.0044232774158112402f;
    private static final float P3 = 4.220661634258352e-05f;
    private static final float P4 = 1.1081031136207517e-07f;
    private static final float P5 = 3.6533972600017159e-11f;
    private static final float Q1 = 0.47430522863427627f;
    private static final float Q2 = 0.029191688174799734f;
    private static final float Q3 = 0.00050032528631662224f;
    private static final float Q4 = 2.5977566381048034e-06f;
    private static final float Q5 = 2.9381143443644578e-09f;
    private static final int ROW = 512;
    private static final int INNER = 200;

    private GeluTanhBench() {
    }

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "gelu", "usage: scripts/bench gelu [--reps N]", Set.of("reps"), Set.of());
        int reps = o.getInt("reps", 3000);
        Random r = new Random(1);
        float[] x = new float[ROW];
        float[] separate = new float[ROW];
        float[] fused = new float[ROW];
        for (int i = 0; i < ROW; i++) {
            x[i] = (float) (r.nextGaussian() * 0.6);
        }
        long[][] ns = new long[2][reps];
        for (int rep = -reps / 5; rep < reps; rep++) {
            long t0 = System.nanoTime();
            for (int k = 0; k < INNER; k++) {
                separate(x, separate);
            }
            long t1 = System.nanoTime();
            for (int k = 0; k < INNER; k++) {
                fused(x, fused);
            }
            long t2 = System.nanoTime();
            if (rep >= 0) {
                ns[0][rep] = t1 - t0;
                ns[1][rep] = t2 - t1;
            }
        }
        double maxDiff = 0;
        for (int i = 0; i < ROW; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(separate[i] - fused[i]));
        }
        Arrays.sort(ns[0]);
        Arrays.sort(ns[1]);
        double perElement = (double) INNER * ROW;
        double s10 = ns[0][reps / 10] / perElement;
        double f10 = ns[1][reps / 10] / perElement;
        System.out.printf(Locale.ROOT, "gelu, hot %d-float row: separate mul+add %.3f ns/element, fma %.3f ns/element"
                + " (p10); fma/separate p10 %.3f, median %.3f; max |difference| %.2e%n", ROW, s10, f10, f10 / s10,
            ns[1][reps / 2] / (double) ns[0][reps / 2], maxDiff);
        System.out.printf(Locale.ROOT, "gelu_tanh separate_ns=%.3f fma_ns=%.3f ratio=%.3f%n", s10, f10, f10 / s10);
    }

    private static void separate(float[] x, float[] y) {
        for (int i = 0; i < x.length; i++) {
            float xi = x[i];
            float c = SCALE * (xi + CUBIC * xi * xi * xi);
            float z = c * c;
            float p = ((((P5 * z + P4) * z + P3) * z + P2) * z + P1) * z + P0;
            float q = ((((Q5 * z + Q4) * z + Q3) * z + Q2) * z + Q1) * z + 1f;
            y[i] = 0.5f * xi * (1f + c * p / q);
        }
    }

    private static void fused(float[] x, float[] y) {
        for (int i = 0; i < x.length; i++) {
            float xi = x[i];
            float c = SCALE * (xi + CUBIC * xi * xi * xi);
            float z = c * c;
            float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(P5, z, P4), z, P3), z, P2), z, P1), z, P0);
            float q = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Q5, z, Q4), z, Q3), z, Q2), z, Q1), z, 1f);
            y[i] = 0.5f * xi * (1f + c * p / q);
        }
    }
}
