package io.troupe.models.infer;

import java.util.Locale;

/** How the inference weights are held. */
public enum Quantization {
    /** float32 weights as trained. */
    NONE,
    /** int8 weight-only: one symmetric scale per output channel, activations in float32. */
    INT8;

    /** Parses {@code none} or {@code int8}; anything else is refused naming the value. */
    public static Quantization parse(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "none", "fp32" -> NONE;
            case "int8" -> INT8;
            default -> throw new IllegalArgumentException("unknown quantization '" + s + "': expected none or int8");
        };
    }
}
