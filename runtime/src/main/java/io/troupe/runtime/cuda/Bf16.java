package io.troupe.runtime.cuda;

/** bfloat16 conversions on the host, bit-identical to the device's {@code f32_to_bf16_bits}. */
public final class Bf16 {
    private Bf16() {
    }

    /** Round to nearest even; NaN stays a (quiet) NaN. */
    public static short fromFloat(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) {
            return (short) ((u >>> 16) | 0x40);
        }
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    public static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** The float nearest to {@code f} that bfloat16 can hold (what a BF16 operand really is). */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
