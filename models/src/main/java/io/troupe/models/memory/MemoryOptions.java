package io.troupe.models.memory;

/**
 * How a job trades memory: the ZeRO stage (0: every data-parallel replica holds all optimizer
 * state and gradients; 1: AdamW's moments are split over the dp group; 2: the reduced gradients
 * too, reduce-scattered bucket by bucket while backward runs), activation recomputation, and the
 * wire format of the data-parallel gradient reduction (bf16 under any zero stage, int8 with error
 * feedback under zero 0 only).
 */
public record MemoryOptions(int zero, Recompute recompute, GradCompression gradCompression) {
    /** Nothing split, nothing recomputed, float32 on the wire. */
    public static final MemoryOptions NONE = new MemoryOptions(0, Recompute.NONE, GradCompression.NONE);

    public MemoryOptions {
        if (zero < 0 || zero > 2) {
            throw new IllegalArgumentException("unknown zero stage " + zero + ": expected 0, 1 or 2");
        }
        java.util.Objects.requireNonNull(recompute, "recompute");
        java.util.Objects.requireNonNull(gradCompression, "gradCompression");
        if (zero > 0 && gradCompression == GradCompression.INT8_EF) {
            // bf16 runs on the reduce-scatter too; int8-ef's residuals are kept per all-reduce bucket.
            throw new IllegalArgumentException("int8-ef gradient compression runs on the all-reduce of zero 0 only "
                + "(zero 1 and 2 take none or bf16): zero=" + zero + ", grad-compression="
                + gradCompression.optionName());
        }
    }

    /**
     * From the option values ({@code --zero}, {@code --recompute}, {@code --grad-compression});
     * errors name the bad one.
     */
    public static MemoryOptions parse(int zero, String recompute, String gradCompression) {
        return new MemoryOptions(zero, Recompute.parse(recompute), GradCompression.parse(gradCompression));
    }

    public MemoryOptions withZero(int stage) {
        return new MemoryOptions(stage, recompute, gradCompression);
    }
}
