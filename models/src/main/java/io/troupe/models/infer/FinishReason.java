package io.troupe.models.infer;

/** Why a generation ended; {@link #wireName()} is the OpenAI-style {@code finish_reason}. */
public enum FinishReason {
    /** A stop string was produced. */
    STOP("stop"),
    /** max_tokens reached, or the model's context is full. */
    LENGTH("length"),
    /** The request's deadline passed. */
    DEADLINE("deadline"),
    /** The client went away or the request was cancelled. */
    CANCELLED("cancelled");

    private final String wireName;

    FinishReason(String wireName) {
        this.wireName = wireName;
    }

    public String wireName() {
        return wireName;
    }
}
