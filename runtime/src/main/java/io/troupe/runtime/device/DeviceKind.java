package io.troupe.runtime.device;

import java.util.Locale;

/** What the user asks for with {@code --device}. */
public enum DeviceKind {
    CPU,
    CUDA,
    AUTO;

    /** Parses {@code cpu|cuda|auto}, naming the bad value otherwise. */
    public static DeviceKind parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown device '" + s + "': expected cpu, cuda or auto", e);
        }
    }
}
