package io.troupe.collectives;

import org.agrona.UnsafeApi;

/**
 * The elementwise loops of the collectives over native float32 memory. Addition is commutative in
 * IEEE 754, so {@code a + b} and {@code b + a} give the same bits: what fixes a result is the
 * grouping the algorithm chooses, never which side a value is on. Allocation-free.
 */
public final class ReduceKernels {
    private ReduceKernels() {
    }

    /** {@code dst[i] += src[i]} for {@code n} floats. */
    public static void addInto(long dst, long src, long n) {
        long i = 0;
        for (; i + 4 <= n; i += 4) {
            long d = dst + (i << 2);
            long s = src + (i << 2);
            float a0 = UnsafeApi.getFloat(d) + UnsafeApi.getFloat(s);
            float a1 = UnsafeApi.getFloat(d + 4) + UnsafeApi.getFloat(s + 4);
            float a2 = UnsafeApi.getFloat(d + 8) + UnsafeApi.getFloat(s + 8);
            float a3 = UnsafeApi.getFloat(d + 12) + UnsafeApi.getFloat(s + 12);
            UnsafeApi.putFloat(d, a0);
            UnsafeApi.putFloat(d + 4, a1);
            UnsafeApi.putFloat(d + 8, a2);
            UnsafeApi.putFloat(d + 12, a3);
        }
        for (; i < n; i++) {
            long d = dst + (i << 2);
            UnsafeApi.putFloat(d, UnsafeApi.getFloat(d) + UnsafeApi.getFloat(src + (i << 2)));
        }
    }

    /** {@code x[i] /= divisor} for {@code n} floats. */
    public static void divide(long x, long n, float divisor) {
        for (long i = 0; i < n; i++) {
            long a = x + (i << 2);
            UnsafeApi.putFloat(a, UnsafeApi.getFloat(a) / divisor);
        }
    }

    /** Copies {@code bytes} bytes (regions must not overlap). */
    public static void copy(long src, long dst, long bytes) {
        if (bytes > 0 && src != dst) {
            UnsafeApi.copyMemory(src, dst, bytes);
        }
    }
}
