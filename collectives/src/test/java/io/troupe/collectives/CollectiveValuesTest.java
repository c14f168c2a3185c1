package io.troupe.collectives;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.collectives.compress.Bf16;
import io.troupe.collectives.compress.Int8Codec;
import io.troupe.runtime.transport.TransportEndpoint;
import org.agrona.UnsafeApi;
import org.junit.jupiter.api.Test;

/**
 * Values and codecs: validation naming the bad value, bf16 rounding, int8 error bound (key layouts: CollectiveKeyTest).
 */
class CollectiveValuesTest {
    private static final TransportEndpoint EP = TransportEndpoint.parse("n1@127.0.0.1:4000/1001");

    @Test
    void shouldRejectBadGroupsNamingTheValue() {
        TransportEndpoint[] two = {EP, EP};
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> new CollectiveGroup(1, 0, new int[] {3, 3}, 0, two)).getMessage().contains("[3, 3]"));
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> new CollectiveGroup(1, 0, new int[] {0, 1}, 2, two)).getMessage().contains("myIndex=2"));
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> new CollectiveGroup(1, 256, new int[] {0, 1}, 0, two)).getMessage().contains("groupId=256"));
        assertTrue(assertThrows(IllegalArgumentException.class,
            () -> new CollectiveGroup(1, 0, new int[] {0}, 0, two)).getMessage().contains("endpoints=2"));
        CollectiveGroup g = new CollectiveGroup(4, 2, new int[] {5, 7}, 1, two);
        assertEquals(7, g.myRank());
        assertEquals(0, g.indexOf(5));
        assertEquals(-1, g.indexOf(6));
        assertEquals(g, new CollectiveGroup(4, 2, new int[] {5, 7}, 1, two));
    }

    @Test
    void shouldRejectBadSettingsNamingTheValue() {
        CollectiveSettings d = CollectiveSettings.defaults();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> d.withTimeoutNs(0)).getMessage()
            .contains("timeoutNs=0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> d.withPipelineBytes(1000)).getMessage()
            .contains("pipelineBytes=1000"));
        assertEquals(CollectiveSettings.DEFAULT_SMALL_MAX_BYTES, d.smallMaxBytes());
    }

    @Test
    void shouldRoundBf16ToNearestEven() {
        assertEquals(1.0f, Bf16.toFloat(Bf16.fromFloat(1.0f)));
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1)
        assertEquals(1.0f, Bf16.toFloat(Bf16.fromFloat(1 + 0x1p-8f)));
        assertEquals(1 + 0x1p-7f, Bf16.toFloat(Bf16.fromFloat(1 + 0x1p-8f + 0x1p-12f)));
        assertTrue(Float.isNaN(Bf16.toFloat(Bf16.fromFloat(Float.NaN))));
        assertEquals(Float.POSITIVE_INFINITY, Bf16.toFloat(Bf16.fromFloat(Float.POSITIVE_INFINITY)));
        ReduceKernels k = new ReduceKernels();
        int n = 10_000;
        long raw = UnsafeApi.allocateMemory(n * 8L + 128);
        long f = (raw + 63) & -64L;
        long h = f + n * 4L;
        try {
            for (int i = 0; i < n; i++) {
                UnsafeApi.putFloat(f + 4L * i, (float) Math.sin(i) * i);
            }
            k.encodeBf16(f, h, n);
            for (int i = 0; i < n; i++) {
                assertEquals(Bf16.fromFloat((float) Math.sin(i) * i), UnsafeApi.getShort(h + 2L * i), "element " + i);
            }
        } finally {
            UnsafeApi.freeMemory(raw);
        }
    }

    /** The fused kernel against its reference (add, then divide): bitwise equal on random data, odd lengths. */
    @Test
    void shouldAddAndDivideInOnePassBitwiseLikeAddThenDivide() {
        ReduceKernels k = new ReduceKernels();
        java.util.SplittableRandom random = new java.util.SplittableRandom(42);
        int n = 3 * ReduceKernels.BLOCK + 77;
        long raw = UnsafeApi.allocateMemory(n * 12L + 128);
        long src = (raw + 63) & -64L;
        long fused = src + n * 4L;
        long reference = fused + n * 4L;
        try {
            for (int divisor : new int[] {2, 3, 4, 7}) {
                for (int i = 0; i < n; i++) {
                    float d = (float) random.nextDouble(-1e3, 1e3);
                    UnsafeApi.putFloat(src + 4L * i, (float) random.nextDouble(-1e3, 1e3));
                    UnsafeApi.putFloat(fused + 4L * i, d);
                    UnsafeApi.putFloat(reference + 4L * i, d);
                }
                k.addIntoAndDivide(fused, src, n, divisor);
                k.addInto(reference, src, n);
                k.divide(reference, n, divisor);
                double maxDiff = 0;
                for (int i = 0; i < n; i++) {
                    float a = UnsafeApi.getFloat(fused + 4L * i);
                    float b = UnsafeApi.getFloat(reference + 4L * i);
                    maxDiff = Math.max(maxDiff, Math.abs((double) a - b));
                    assertEquals(Float.floatToRawIntBits(b), Float.floatToRawIntBits(a), "element " + i + ", divisor "
                        + divisor);
                }
                System.out.println("addIntoAndDivide vs addInto+divide, divisor " + divisor + ": max diff " + maxDiff);
            }
        } finally {
            UnsafeApi.freeMemory(raw);
        }
    }

    /** The out-of-place add (ring forwarding) against a plain scalar loop: bitwise equal, dst untouched. */
    @Test
    void shouldAddIntoAnotherBufferBitwiseLikeAScalarLoop() {
        ReduceKernels k = new ReduceKernels();
        java.util.SplittableRandom random = new java.util.SplittableRandom(43);
        int n = 2 * ReduceKernels.BLOCK + 501;
        long raw = UnsafeApi.allocateMemory(n * 12L + 128);
        long src = (raw + 63) & -64L;
        long dst = src + n * 4L;
        long out = dst + n * 4L;
        try {
            float[] before = new float[n];
            for (int i = 0; i < n; i++) {
                UnsafeApi.putFloat(src + 4L * i, (float) random.nextGaussian() * 100);
                before[i] = (float) random.nextGaussian() * 100;
                UnsafeApi.putFloat(dst + 4L * i, before[i]);
            }
            k.addTo(out, dst, src, n);
            for (int i = 0; i < n; i++) {
                float expected = before[i] + UnsafeApi.getFloat(src + 4L * i);
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(UnsafeApi.getFloat(out + 4L
                    * i)),
                    "element " + i);
                assertEquals(Float.floatToRawIntBits(before[i]), Float.floatToRawIntBits(UnsafeApi.getFloat(dst + 4L
                    * i)),
                    "dst unchanged at " + i);
            }
        } finally {
            UnsafeApi.freeMemory(raw);
        }
    }

    @Test
    void shouldQuantiseInt8WithinHalfAStepAndKeepTheResidual() {
        int n = 1000;
        long raw = UnsafeApi.allocateMemory(n * 4L * 3 + Int8Codec.encodedBytes(n) + 256);
        long x = (raw + 63) & -64L;
        long out = x + n * 4L;
        long residual = out + n * 4L;
        long enc = residual + n * 4L;
        try {
            for (int i = 0; i < n; i++) {
                UnsafeApi.putFloat(x + 4L * i, (float) Math.cos(i * 0.37) * (1 + i % 7));
                UnsafeApi.putFloat(out + 4L * i, 0f);
            }
            Int8Codec.encode(x, n, enc, residual);
            Int8Codec.decodeAdd(enc, n, out);
            double worst = 0;
            for (int b = 0; b < Int8Codec.blocks(n); b++) {
                float scale = UnsafeApi.getFloat(enc + 4L * b);
                for (int i = b * Int8Codec.BLOCK; i < Math.min(n, (b + 1) * Int8Codec.BLOCK); i++) {
                    float xi = UnsafeApi.getFloat(x + 4L * i);
                    float di = UnsafeApi.getFloat(out + 4L * i);
                    worst = Math.max(worst, Math.abs(xi - di) / scale);
                    assertEquals(xi - di, UnsafeApi.getFloat(residual + 4L * i), 1e-6, "residual = x - D(C(x))");
                }
            }
            System.out.printf("int8: max |x - D(C(x))| = %.3f steps%n", worst);
            assertTrue(worst <= 0.5 + 1e-4, "within half a step: " + worst);
        } finally {
            UnsafeApi.freeMemory(raw);
        }
    }
}
