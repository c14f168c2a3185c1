package io.troupe.models.memory;

/** Activation recomputation: what a stage keeps from forward for backward. */
public enum Recompute {
    /** Keep every activation. */
    NONE,
    /** Recompute the attention scores and probabilities in backward. */
    SELECTIVE,
    /** Keep each block's input only; recompute the block in backward. */
    FULL;

    /** The name as written in options and config ({@code none}, {@code selective}, {@code full}). */
    public String optionName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    /** @throws IllegalArgumentException naming the value and the choices */
    public static Recompute parse(String name) {
        for (Recompute r : values()) {
            if (r.optionName().equals(name)) {
                return r;
            }
        }
        throw new IllegalArgumentException("unknown recompute mode '" + name + "': expected none, selective or full");
    }
}
