package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.runtime.device.Device;
import io.troupe.runtime.tensor.DType;
import io.troupe.runtime.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Holds a reference device (the CPU backend) and a device under test, and makes twin tensors with
 * the same contents on both; compares them after an op, printing the largest difference. Closes
 * every tensor it made in {@link #closeTensors()}.
 */
final class TwinTensors {
    /** Two tensors with the same shape and (initially) the same contents, one per device. */
    record Twin(Tensor ref, Tensor dut) {
    }

    final Device ref;
    final Device dut;
    final Random rnd;
    private final List<Tensor> made = new ArrayList<>();

    TwinTensors(Device ref, Device dut, long seed) {
        this.ref = ref;
        this.dut = dut;
        this.rnd = new Random(seed);
    }

    float[] uniform(int n, float lo, float hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = lo + (hi - lo) * rnd.nextFloat();
        }
        return a;
    }

    int[] ints(int n, int bound) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = rnd.nextInt(bound);
        }
        return a;
    }

    Twin of(float[] host, int... shape) {
        Twin t = new Twin(track(ref.allocate(shape)), track(dut.allocate(shape)));
        ref.copyFromHost(host, t.ref());
        dut.copyFromHost(host, t.dut());
        return t;
    }

    Twin random(int... shape) {
        return of(uniform((int) Tensor.numelOf(shape), -1f, 1f), shape);
    }

    Twin ids(int[] host) {
        Twin t = new Twin(track(ref.allocate(DType.I32, host.length)), track(dut.allocate(DType.I32, host.length)));
        ref.copyFromHost(host, t.ref());
        dut.copyFromHost(host, t.dut());
        return t;
    }

    /** An output twin whose contents are NaN on both devices, so an element the op skips shows up. */
    Twin poisoned(int... shape) {
        Twin t = new Twin(track(ref.allocate(shape)), track(dut.allocate(shape)));
        ref.fill(t.ref(), Float.NaN);
        dut.fill(t.dut(), Float.NaN);
        return t;
    }

    Tensor track(Tensor t) {
        made.add(t);
        return t;
    }

    /**
     * Asserts {@code |dut - ref| <= atol + rtol * |ref|} elementwise (NaN anywhere fails) and prints
     * the largest absolute difference.
     */
    double assertClose(String what, Twin t, double atol, double rtol) {
        return assertClose(what, t.ref().toFloatArray(), t.dut().toFloatArray(), atol, rtol);
    }

    static double assertClose(String what, float[] expected, float[] actual, double atol, double rtol) {
        assertTrue(expected.length == actual.length, what + ": lengths differ");
        double maxDiff = 0;
        double maxRef = 0;
        int worst = -1;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double a = actual[i];
            assertTrue(!Double.isNaN(e), what + ": reference is NaN at " + i);
            assertTrue(!Double.isNaN(a), what + ": device under test left NaN at " + i + " (element not written?)");
            double d = Math.abs(a - e);
            maxRef = Math.max(maxRef, Math.abs(e));
            if (d > maxDiff) {
                maxDiff = d;
                worst = i;
            }
            if (d > atol + rtol * Math.abs(e)) {
                throw new AssertionError(String.format(Locale.ROOT, "%s: element %d differs: expected %.8g, got %.8g "
                    + "(|diff| %.3g > atol %.1g + rtol %.1g * |expected|)", what, i, e, a, d, atol, rtol));
            }
        }
        System.out.printf(Locale.ROOT, "%-40s max |diff| = %.3g (at %d, max |ref| = %.3g)%n", what, maxDiff, worst,
            maxRef);
        return maxDiff;
    }

    void closeTensors() {
        for (Tensor t : made) {
            t.close();
        }
        made.clear();
    }
}
