package io.troupe.runtime.tensor;

/** Element types a {@link Tensor} can hold. Training math is float32; the others are for ids and compression. */
public enum DType {
    F32(4, 1),
    I32(4, 2),
    BF16(2, 3),
    I8(1, 4);

    private final int sizeBytes;
    private final int wireCode;

    DType(int sizeBytes, int wireCode) {
        this.sizeBytes = sizeBytes;
        this.wireCode = wireCode;
    }

    /** Bytes per element. */
    public int sizeBytes() {
        return sizeBytes;
    }

    /** Stable code used in wire frames and checkpoints; never reuse a code. */
    public int wireCode() {
        return wireCode;
    }

    /** Decodes {@link #wireCode()}; returns {@code null} for an unknown code (callers count and drop). */
    public static DType fromWireCode(int code) {
        for (DType t : values()) {
            if (t.wireCode == code) {
                return t;
            }
        }
        return null;
    }
}
