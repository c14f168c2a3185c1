package io.troupe.models.memory;

/** What the data-parallel gradient reduction puts on the wire. */
public enum GradCompression {
    /** float32: exact. */
    NONE("none"),
    /** bfloat16: half the bytes, rounded. */
    BF16("bf16"),
    /** int8 blocks with a float32 scale each, with error feedback (residuals kept per bucket, checkpointed). */
    INT8_EF("int8-ef");

    private final String optionName;

    GradCompression(String optionName) {
        this.optionName = optionName;
    }

    /** The name as written in options and config. */
    public String optionName() {
        return optionName;
    }

    /** @throws IllegalArgumentException naming the value and the choices */
    public static GradCompression parse(String name) {
        for (GradCompression c : values()) {
            if (c.optionName.equals(name)) {
                return c;
            }
        }
        throw new IllegalArgumentException("unknown gradient compression '" + name
            + "': expected none, bf16 or int8-ef");
    }

    /** The collectives' wire format for this choice. */
    public io.troupe.collectives.Compression wire() {
        return switch (this) {
            case NONE -> io.troupe.collectives.Compression.NONE;
            case BF16 -> io.troupe.collectives.Compression.BF16;
            case INT8_EF -> io.troupe.collectives.Compression.INT8_ERROR_FEEDBACK;
        };
    }
}
