package io.troupe.collectives.compress;

import org.agrona.UnsafeApi;

/**
 * int8 block quantisation over native memory. A vector of {@code n} floats becomes
 * {@code blocks(n)} float32 scales followed by {@code n} int8 values; block {@code b} covers
 * elements {@code [b*BLOCK, min(n, (b+1)*BLOCK))} with scale {@code max|x| / 127} and
 * {@code q = round(x / scale)}. Allocation-free.
 *
 * <pre>
 *  +----------------------------+---------------------------+
 *  | scales: blocks(n) x f32 LE | values: n x int8          |
 *  +----------------------------+---------------------------+
 * </pre>
 */
public final class Int8Codec {
    /** Elements per scale. */
    public static final int BLOCK = 256;

    private Int8Codec() {
    }

    public static long blocks(long n) {
        return (n + BLOCK - 1) / BLOCK;
    }

    /** Bytes of the encoded form of {@code n} floats. */
    public static long encodedBytes(long n) {
        return blocks(n) * 4 + n;
    }

    /**
     * Encodes {@code n} floats at {@code src} into {@code dst}; when {@code residual != 0} also writes
     * {@code residual[i] = src[i] - decoded[i]} (the error-feedback residual; may alias {@code src}).
     */
    public static void encode(long src, long n, long dst, long residual) {
        long nb = blocks(n);
        long values = dst + nb * 4;
        for (long b = 0; b < nb; b++) {
            long lo = b * BLOCK;
            long hi = Math.min(n, lo + BLOCK);
            float max = 0f;
            for (long i = lo; i < hi; i++) {
                max = Math.max(max, Math.abs(UnsafeApi.getFloat(src + (i << 2))));
            }
            float scale = max / 127f;
            UnsafeApi.putFloat(dst + b * 4, scale);
            float inv = scale == 0f ? 0f : 1f / scale;
            for (long i = lo; i < hi; i++) {
                float x = UnsafeApi.getFloat(src + (i << 2));
                int q = Math.round(x * inv);
                q = Math.max(-127, Math.min(127, q));
                UnsafeApi.putByte(values + i, (byte) q);
                if (residual != 0) {
                    UnsafeApi.putFloat(residual + (i << 2), x - q * scale);
                }
            }
        }
    }

    /** {@code dst[i] += decoded[i]} for the encoded vector of {@code n} floats at {@code src}. */
    public static void decodeAdd(long src, long n, long dst) {
        long nb = blocks(n);
        long values = src + nb * 4;
        for (long b = 0; b < nb; b++) {
            float scale = UnsafeApi.getFloat(src + b * 4);
            long hi = Math.min(n, (b + 1) * BLOCK);
            for (long i = b * BLOCK; i < hi; i++) {
                long d = dst + (i << 2);
                UnsafeApi.putFloat(d, UnsafeApi.getFloat(d) + UnsafeApi.getByte(values + i) * scale);
            }
        }
    }
}
