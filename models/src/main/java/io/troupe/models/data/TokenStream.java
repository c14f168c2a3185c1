package io.troupe.models.data;

/** An immutable sequence of byte tokens (vocabulary 256) held in memory. */
public final class TokenStream {
    private final byte[] tokens;
    private final String description;

    public TokenStream(byte[] tokens, String description) {
        this.tokens = tokens;
        this.description = description;
    }

    public int length() {
        return tokens.length;
    }

    /** Token at {@code i} as an int in [0, 256). */
    public int token(int i) {
        return tokens[i] & 0xFF;
    }

    public String description() {
        return description;
    }

    /** A copy of tokens [from, to). */
    public byte[] slice(int from, int to) {
        return java.util.Arrays.copyOfRange(tokens, from, to);
    }
}
