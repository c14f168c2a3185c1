package io.troupe.collectives.compress;

import org.agrona.UnsafeApi;

/**
 * bfloat16 conversions over native memory: the top 16 bits of a float32, rounded to nearest even
 * (NaN stays NaN). Allocation-free.
 */
public final class Bf16 {
    private Bf16() {
    }

    /** float32 to bfloat16 bits, round to nearest even. */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7F800000) == 0x7F800000 && (bits & 0x007FFFFF) != 0) {
            return (short) ((bits >>> 16) | 0x40); // quiet NaN
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    public static float toFloat(short b) {
        return Float.intBitsToFloat((b & 0xFFFF) << 16);
    }

    /** Writes {@code n} bf16 values at {@code dst} from {@code n} floats at {@code src}. */
    public static void encode(long src, long dst, long n) {
        for (long i = 0; i < n; i++) {
            UnsafeApi.putShort(dst + (i << 1), fromFloat(UnsafeApi.getFloat(src + (i << 2))));
        }
    }

    /** {@code dst[i] = float(src[i])}. */
    public static void decode(long src, long dst, long n) {
        for (long i = 0; i < n; i++) {
            UnsafeApi.putFloat(dst + (i << 2), toFloat(UnsafeApi.getShort(src + (i << 1))));
        }
    }

    /** {@code dst[i] += float(src[i])}. */
    public static void decodeAdd(long src, long dst, long n) {
        for (long i = 0; i < n; i++) {
            long d = dst + (i << 2);
            UnsafeApi.putFloat(d, UnsafeApi.getFloat(d) + toFloat(UnsafeApi.getShort(src + (i << 1))));
        }
    }

    /** Rounds {@code n} floats to bf16-representable values in place. */
    public static void roundInPlace(long x, long n) {
        for (long i = 0; i < n; i++) {
            long a = x + (i << 2);
            UnsafeApi.putFloat(a, toFloat(fromFloat(UnsafeApi.getFloat(a))));
        }
    }
}
