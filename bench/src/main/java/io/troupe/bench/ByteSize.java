package io.troupe.bench;

import java.util.Locale;

/**
 * Byte counts as the benchmarks' options take them: {@code 65504}, {@code 64k}, {@code 4m}, {@code 2g} (binary units).
 */
public final class ByteSize {
    private ByteSize() {
    }

    /**
     * {@code s} in bytes: digits, optionally followed by {@code k}, {@code m} or {@code g} (any case); never negative.
     */
    public static long parse(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        int shift = t.endsWith("k") ? 10 : t.endsWith("m") ? 20 : t.endsWith("g") ? 30 : 0;
        try {
            long v = Long.parseLong(shift == 0 ? t : t.substring(0, t.length() - 1));
            if (v < 0 || v > (Long.MAX_VALUE >> shift)) {
                throw new NumberFormatException("out of range");
            }
            return v << shift;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("size must look like 65504, 64k, 4m or 2g: size=" + s, e);
        }
    }
}
