package io.troupe.runtime.testkit;

import static org.junit.jupiter.api.Assertions.fail;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.Locale;
import java.util.Random;

/**
 * Seeded random inputs, host/device transfers and a closeness assertion that prints the max
 * differences, for tests that compare a backend against {@link ReferenceOps}.
 *
 * <p>Pass a {@code new Random(seed)} so a failure reproduces. Inputs are drawn as float32 and
 * widened with {@link #toDouble}, so the reference sees exactly the values the backend sees.
 */
public final class RandomTensors {
    private RandomTensors() {
    }

    /** {@code n} floats uniform in [lo, hi). */
    public static float[] uniform(Random rnd, int n, double lo, double hi) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return x;
    }

    /** {@code n} floats from N(mean, std^2). */
    public static float[] normal(Random rnd, int n, double mean, double std) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (mean + std * rnd.nextGaussian());
        }
        return x;
    }

    /** {@code n} doubles uniform in [lo, hi) (for double-precision reference tests). */
    public static double[] uniformDouble(Random rnd, int n, double lo, double hi) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = lo + (hi - lo) * rnd.nextDouble();
        }
        return x;
    }

    /** {@code n} ints uniform in [0, bound): token ids, targets. */
    public static int[] ints(Random rnd, int n, int bound) {
        int[] x = new int[n];
        for (int i = 0; i < n; i++) {
            x[i] = rnd.nextInt(bound);
        }
        return x;
    }

    public static double[] toDouble(float[] x) {
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i];
        }
        return out;
    }

    public static float[] toFloat(double[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (float) x[i];
        }
        return out;
    }

    /** A new F32 tensor of {@code shape} on {@code device} holding {@code data}. */
    public static Tensor tensor(Device device, float[] data, int... shape) {
        if (Tensor.numelOf(shape) != data.length) {
            throw new IllegalArgumentException("data length " + data.length + " does not fill shape of "
                + Tensor.numelOf(shape) + " elements");
        }
        Tensor t = device.allocate(DType.F32, shape);
        device.copyFromHost(data, t);
        return t;
    }

    /** A new I32 tensor of {@code shape} on {@code device} holding {@code data}. */
    public static Tensor intTensor(Device device, int[] data, int... shape) {
        if (Tensor.numelOf(shape) != data.length) {
            throw new IllegalArgumentException("data length " + data.length + " does not fill shape of "
                + Tensor.numelOf(shape) + " elements");
        }
        Tensor t = device.allocate(DType.I32, shape);
        device.copyFromHost(data, t);
        return t;
    }

    /** The tensor's elements as floats (waits for the device first). */
    public static float[] read(Tensor t) {
        t.device().synchronize();
        return t.toFloatArray();
    }

    /** Max differences between an expected and an actual array. */
    public record Diff(double maxAbs, double maxRel) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "max abs diff=%.3e, max rel diff=%.3e", maxAbs, maxRel);
        }
    }

    /**
     * Relative differences are {@code |a - e| / max(|e|, atol)}, so elements near zero do not
     * dominate.
     */
    public static Diff diff(double[] expected, float[] actual, double atol) {
        double maxAbs = 0;
        double maxRel = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(actual[i] - expected[i]);
            if (Double.isNaN(d)) {
                return new Diff(Double.NaN, Double.NaN);
            }
            maxAbs = Math.max(maxAbs, d);
            maxRel = Math.max(maxRel, relative(d, expected[i], atol));
        }
        return new Diff(maxAbs, maxRel);
    }

    private static double relative(double absDiff, double expected, double atol) {
        return absDiff == 0 ? 0 : absDiff / Math.max(Math.abs(expected), atol);
    }

    /**
     * Asserts {@code |actual[i] - expected[i]| <= atol + rtol*|expected[i]|} for every i (and that
     * lengths match), printing {@code what: max abs diff=..., max rel diff=...}; on failure names the
     * worst element.
     */
    public static void assertClose(String what, double[] expected, float[] actual, double atol, double rtol) {
        if (actual.length < expected.length) {
            fail(what + ": actual has " + actual.length + " elements, expected " + expected.length);
        }
        Diff diff = diff(expected, actual, atol);
        System.out.println(what + ": " + diff);
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(actual[i] - expected[i]);
            double excess = d - (atol + rtol * Math.abs(expected[i]));
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                fail(what + ": non-finite at index " + i + ": expected " + expected[i] + ", actual " + actual[i]);
            }
            if (excess > worstExcess) {
                worstExcess = excess;
                worst = i;
            }
        }
        if (worst >= 0) {
            fail(String.format(Locale.ROOT, "%s: %s exceeds atol=%.1e rtol=%.1e; worst at index %d of %d: "
                    + "expected %.9g, actual %.9g", what, diff, atol, rtol, worst, expected.length,
                expected[worst], actual[worst]));
        }
    }

    /** Scalar form of {@link #assertClose(String, double[], float[], double, double)}. */
    public static void assertClose(String what, double expected, double actual, double atol, double rtol) {
        double d = Math.abs(actual - expected);
        System.out.println(String.format(Locale.ROOT, "%s: expected %.12g, actual %.12g, abs diff=%.3e, rel diff=%.3e",
            what, expected, actual, d, d / Math.max(Math.abs(expected), atol)));
        if (!(d <= atol + rtol * Math.abs(expected))) {
            fail(String.format(Locale.ROOT, "%s: expected %.12g, actual %.12g exceeds atol=%.1e rtol=%.1e",
                what, expected, actual, atol, rtol));
        }
    }

    /** Double-vs-double form, for reference-against-finite-difference tests. */
    public static void assertClose(String what, double[] expected, double[] actual, double atol, double rtol) {
        if (actual.length != expected.length) {
            fail(what + ": actual has " + actual.length + " elements, expected " + expected.length);
        }
        double maxAbs = 0;
        double maxRel = 0;
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(actual[i] - expected[i]);
            if (!Double.isFinite(d)) {
                fail(what + ": non-finite at index " + i + ": expected " + expected[i] + ", actual " + actual[i]);
            }
            maxAbs = Math.max(maxAbs, d);
            maxRel = Math.max(maxRel, relative(d, expected[i], atol));
            double excess = d - (atol + rtol * Math.abs(expected[i]));
            if (excess > worstExcess) {
                worstExcess = excess;
                worst = i;
            }
        }
        Diff diff = new Diff(maxAbs, maxRel);
        System.out.println(what + ": " + diff);
        if (worst >= 0) {
            fail(String.format(Locale.ROOT, "%s: %s exceeds atol=%.1e rtol=%.1e; worst at index %d of %d: "
                    + "expected %.12g, actual %.12g", what, diff, atol, rtol, worst, expected.length,
                expected[worst], actual[worst]));
        }
    }
}
