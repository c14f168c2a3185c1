package io.troupe.runtime.bench;

import io.troupe.actors.cli.Options;
import io.troupe.bench.BenchOptions;
import io.troupe.bench.Median;
import io.troupe.runtime.cpu.CpuDevice;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Locale;
import java.util.Random;
import java.util.Set;

/**
 * {@code scripts/bench gelu [--rows N] [--cols N] [--reps N]}: the CPU backend's GELU forward and backward
 * ({@link CpuDevice#gelu}, {@link CpuDevice#geluBackward}: the logistic form {@code x / (1 + e^(-2u))}, branch
 * free) against the kernel it replaced, kept here as the baseline: {@code 0.5 x (1 + tanh u)} with a rational
 * tanh in the vectorised loop, and every element with |x| > 1.8, where that form cancels, recomputed by a scalar
 * pass in double. Both run on one thread over a (rows, cols) matrix of normal pre-activations, one call at a time
 * and alternating, for standard deviations 0.3, 0.7 and 1.5 (a trained MLP's pre-activations sit in between; the
 * old kernel's cost grew with the share of tails). Prints ns per element (medians) and the largest difference of
 * the two results. Last line: {@code gelu fwd_ratio=<new/old at std 0.7> bwd_ratio=<...> (std 0.3 / 1.5: ...)}.
 */
public final class GeluBench {
    private static final String USAGE = "usage: scripts/bench gelu [--rows N] [--cols N] [--reps N]";
    private static final double[] STDS = {0.3, 0.7, 1.5};

    private GeluBench() {
    }

    public static void main(String[] args) {
        Options o = BenchOptions.parse(args, "gelu", USAGE, Set.of("rows", "cols", "reps"), Set.of());
        int rows = o.getInt("rows", 1024);
        int cols = o.getInt("cols", 512);
        int reps = o.getInt("reps", 300);
        int n = rows * cols;
        double[][] ratios = new double[STDS.length][2];
        try (CpuDevice dev = new CpuDevice(1); Tensor x = dev.allocate(DType.F32, n);
             Tensor g = dev.allocate(DType.F32, n); Tensor y = dev.allocate(DType.F32, n)) {
            System.out.printf(Locale.ROOT, "gelu: (%d, %d) on %s, %d repetitions, each form timed call by call%n",
                rows, cols, dev.name(), reps);
            Random rnd = new Random(11);
            float[] hx = new float[n];
            float[] hg = new float[n];
            float[] oldY = new float[n];
            float[] newY = new float[n];
            for (int s = 0; s < STDS.length; s++) {
                for (int i = 0; i < n; i++) {
                    hx[i] = (float) (rnd.nextGaussian() * STDS[s]);
                    hg[i] = (float) rnd.nextGaussian();
                }
                dev.copyFromHost(hx, x);
                dev.copyFromHost(hg, g);
                double[][] ns = new double[4][reps];
                for (int r = -reps / 3; r < reps; r++) {
                    for (int j = 0; j < 2; j++) {
                        boolean useNew = (r + j) % 2 == 0;
                        long t0 = System.nanoTime();
                        if (useNew) {
                            dev.gelu(x, y, n);
                        } else {
                            TanhTailGelu.forward(hx, oldY, n);
                        }
                        long t1 = System.nanoTime();
                        if (useNew) {
                            dev.geluBackward(x, g, y, n);
                        } else {
                            TanhTailGelu.backward(hx, hg, oldY, n);
                        }
                        long t2 = System.nanoTime();
                        if (r >= 0) {
                            int v = useNew ? 1 : 0;
                            ns[v][r] = (t1 - t0) / (double) n;
                            ns[2 + v][r] = (t2 - t1) / (double) n;
                        }
                    }
                }
                dev.gelu(x, y, n);
                dev.copyToHost(y, newY);
                TanhTailGelu.forward(hx, oldY, n);
                double diff = maxDiff(oldY, newY);
                dev.geluBackward(x, g, y, n);
                dev.copyToHost(y, newY);
                TanhTailGelu.backward(hx, hg, oldY, n);
                double diffB = maxDiff(oldY, newY);
                double[] m = new double[4];
                for (int k = 0; k < 4; k++) {
                    m[k] = Median.of(ns[k]);
                }
                ratios[s][0] = m[1] / m[0];
                ratios[s][1] = m[3] / m[2];
                System.out.printf(Locale.ROOT, "std %.1f: forward old %.3f new %.3f ns/element (x%.3f), backward old"
                    + " %.3f new %.3f (x%.3f); max |difference| forward %.2e, backward %.2e%n", STDS[s], m[0], m[1],
                    ratios[s][0], m[2], m[3], ratios[s][1], diff, diffB);
            }
        }
        System.out.printf(Locale.ROOT, "gelu fwd_ratio=%.3f bwd_ratio=%.3f (std 0.3: %.3f / %.3f, std 1.5: %.3f /"
            + " %.3f)%n", ratios[1][0], ratios[1][1], ratios[0][0], ratios[0][1], ratios[2][0], ratios[2][1]);
    }

    private static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }

    /**
     * The earlier CPU GELU, the baseline: rational tanh {@code u P(u^2) / Q(u^2)} (degrees 5/5, Horner's rule in
     * {@link Math#fma}) in a vectorised loop over staged blocks, a vectorised check for tails, and a scalar pass in
     * double over every element with |x| > 1.8.
     */
    static final class TanhTailGelu {
        private static final int BLOCK = 2048;
        private static final float SCALE = (float) Math.sqrt(2.0 / Math.PI);
        private static final float CUBIC = 0.044715f;
        private static final double SCALE_D = Math.sqrt(2.0 / Math.PI);
        private static final double CUBIC_D = 0.044715;
        private static final float X_TAIL = 1.8f;
        private static final int X_TAIL_BITS = Float.floatToRawIntBits(X_TAIL);
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
        private static final float[] X = new float[BLOCK];
        private static final float[] Y = new float[BLOCK];
        private static final float[] G = new float[BLOCK];
        private static final int[] BITS = new int[BLOCK];

        private TanhTailGelu() {
        }

        static void forward(float[] in, float[] out, int n) {
            for (int b = 0; b < n; b += BLOCK) {
                int m = Math.min(BLOCK, n - b);
                System.arraycopy(in, b, X, 0, m);
                boolean tails = hasTail(m);
                for (int i = 0; i < m; i++) {
                    float xi = X[i];
                    Y[i] = 0.5f * xi * (1f + tanh(SCALE * (xi + CUBIC * xi * xi * xi)));
                }
                if (tails) {
                    for (int i = 0; i < m; i++) {
                        float xi = X[i];
                        if (xi > X_TAIL || xi < -X_TAIL) {
                            Y[i] = (float) (0.5 * xi * onePlusTanh(xi));
                        }
                    }
                }
                System.arraycopy(Y, 0, out, b, m);
            }
        }

        static void backward(float[] in, float[] dout, float[] dinp, int n) {
            for (int b = 0; b < n; b += BLOCK) {
                int m = Math.min(BLOCK, n - b);
                System.arraycopy(in, b, X, 0, m);
                System.arraycopy(dout, b, G, 0, m);
                boolean tails = hasTail(m);
                for (int i = 0; i < m; i++) {
                    float xi = X[i];
                    Y[i] = tanh(SCALE * (xi + CUBIC * xi * xi * xi));
                }
                for (int i = 0; i < m; i++) {
                    float xi = X[i];
                    float t = Y[i];
                    Y[i] = (0.5f * (1f + t) + 0.5f * xi * (1f - t * t) * SCALE * (1f + 3f * CUBIC * xi * xi)) * G[i];
                }
                if (tails) {
                    for (int i = 0; i < m; i++) {
                        float xi = X[i];
                        if (xi > X_TAIL || xi < -X_TAIL) {
                            double xd = xi;
                            double u = SCALE_D * (xd + CUBIC_D * xd * xd * xd);
                            double e = Math.exp(-2 * Math.abs(u));
                            double sech2 = 4 * e / ((1 + e) * (1 + e));
                            double local = 0.5 * onePlusTanh(xi) + 0.5 * xd * sech2 * SCALE_D
                                * (1 + 3 * CUBIC_D * xd * xd);
                            Y[i] = (float) (local * G[i]);
                        }
                    }
                }
                System.arraycopy(Y, 0, dinp, b, m);
            }
        }

        private static boolean hasTail(int m) {
            for (int i = 0; i < m; i++) {
                BITS[i] = Float.floatToRawIntBits(X[i]);
            }
            int acc = 0;
            for (int i = 0; i < m; i++) {
                acc |= X_TAIL_BITS - (BITS[i] & 0x7fffffff);
            }
            return acc < 0;
        }

        private static double onePlusTanh(double x) {
            double u = SCALE_D * (x + CUBIC_D * x * x * x);
            double e = Math.exp(-2 * Math.abs(u));
            return u >= 0 ? 2 / (1 + e) : 2 * e / (1 + e);
        }

        private static float tanh(float c) {
            float z = c * c;
            float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(P5, z, P4), z, P3), z, P2), z, P1), z, P0);
            float q = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Q5, z, Q4), z, Q3), z, Q2), z, Q1), z, 1f);
            return c * p / q;
        }
    }
}
