package io.troupe.models.infer;

import java.util.Locale;

/**
 * How the paged KV cache holds keys and values. The attention computes in float32 either way; a
 * 16-bit cache halves the bytes each decoding step reads per cached position (the step's largest
 * memory stream beside the weights) and doubles the positions a memory budget holds.
 */
public enum KvPrecision {
    /** float32, the values as the model computes them. */
    F32(4),
    /**
     * bfloat16: the upper 16 bits of the float32, rounded to nearest even (8 bits of mantissa, the
     * float32 exponent range, so nothing overflows); read back exactly by a 16-bit shift.
     */
    BF16(2);

    private final int bytes;

    KvPrecision(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per cached value. */
    public int bytes() {
        return bytes;
    }

    /** Parses {@code f32} or {@code bf16}; anything else is refused naming the value. */
    public static KvPrecision parse(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "f32", "fp32", "float32" -> F32;
            case "bf16", "bfloat16" -> BF16;
            default -> throw new IllegalArgumentException("unknown KV cache dtype '" + s + "': expected f32 or bf16");
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** {@code x} as bfloat16 bits, rounded to nearest even; a NaN stays a (quiet) NaN. */
    public static short toBf16(float x) {
        int bits = Float.floatToRawIntBits(x);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    /** The float32 a bfloat16 holds, exactly. */
    public static float fromBf16(short h) {
        return Float.intBitsToFloat(h << 16);
    }
}
