package io.troupe.runtime.transport;

/** What a tensor frame carries. The wire code is stable; never reuse one. */
public enum FrameKind {
    ACTIVATION(1),
    GRADIENT(2),
    COLLECTIVE_CHUNK(3),
    CONTROL(4),
    /**
     * A tagged one-byte frame a sender with an auth key offers on its UDP publication before its first tensor, and
     * that is never delivered: once it passed its tag the receiver knows the publication a key holder's, so even the
     * first tensor, damaged on the way, is reported at once rather than waited for.
     */
    HELLO(5);

    private final int code;

    FrameKind(int code) {
        this.code = code;
    }

    /** The code written in {@link TensorFrameDescriptor#KIND_OFFSET}. */
    public int code() {
        return code;
    }

    /** Decodes a wire code without allocating; {@code null} for an unknown code (callers count and drop). */
    public static FrameKind fromCode(int code) {
        switch (code) {
            case 1: return ACTIVATION;
            case 2: return GRADIENT;
            case 3: return COLLECTIVE_CHUNK;
            case 4: return CONTROL;
            case 5: return HELLO;
            default: return null;
        }
    }
}
