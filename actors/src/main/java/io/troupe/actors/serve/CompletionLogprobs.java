package io.troupe.actors.serve;

import io.troupe.models.infer.Generation;

/**
 * The {@code logprobs} object of a completion in OpenAI's legacy form: {@code tokens} (each token as
 * text), {@code token_logprobs} (its log-probability under the model given the tokens before it),
 * {@code top_logprobs} (the most likely tokens at its position, most likely first, each with its
 * log-probability) and {@code text_offset} (where it starts in the completion's {@code text}). With
 * echo the list starts at the prompt's first token, which has no log-probability ({@code null} in
 * both lists); without, at the first generated token. A matched stop string is left out, as from the text.
 * A streamed completion's chunks each carry the object of the tokens their text is made of, offsets
 * counted from the completion's start.
 *
 * <p>Tokens are bytes: one below 128 is its character; another is written {@code "bytes:\xHH"} (the
 * convention of OpenAI's byte-level tokens), so every token of a position's alternatives has its own
 * key. {@code text_offset} counts code points (a Python string's index) and assumes the bytes are
 * UTF-8: a byte inside a character takes the character's offset.
 */
final class CompletionLogprobs {
    /** Code points of the text before the next range: where its {@code text_offset} starts. */
    private int codePoints;

    /** For the chunks of one streamed completion, in order: each range's offsets continue the last's. */
    CompletionLogprobs() {
    }

    /** The object for {@code g} (which asked for log-probabilities), the prompt included when {@code echo}. */
    static String json(Generation g, boolean echo) {
        return new CompletionLogprobs().range(g, echo ? 0 : g.promptTokens(), g.promptTokens() + g.outputTokens());
    }

    /**
     * The object for the tokens at positions {@code [from, to)} of {@code g}, their offsets counted on
     * from the ranges before (a streamed chunk's, its text being the tokens' bytes).
     */
    String range(Generation g, int from, int to) {
        StringBuilder tokens = new StringBuilder("[");
        StringBuilder lps = new StringBuilder("[");
        StringBuilder tops = new StringBuilder("[");
        StringBuilder offsets = new StringBuilder("[");
        for (int pos = from; pos < to; pos++) {
            String sep = pos == from ? "" : ",";
            int t = g.tokenAt(pos);
            boolean continuation = t < 256 && (t & 0xC0) == 0x80;
            offsets.append(sep).append(Math.max(0, continuation ? codePoints - 1 : codePoints));
            if (!continuation) {
                codePoints++;
            }
            tokens.append(sep).append(Json.quote(text(t)));
            if (!g.hasLogprob(pos)) {
                lps.append(sep).append("null");
                tops.append(sep).append("null");
                continue;
            }
            lps.append(sep).append(number(g.logprob(pos)));
            tops.append(sep).append('{');
            for (int i = 0; i < g.topCount(); i++) {
                tops.append(i == 0 ? "" : ",").append(Json.quote(text(g.topId(pos, i)))).append(':')
                    .append(number(g.topLogprob(pos, i)));
            }
            tops.append('}');
        }
        return "{\"tokens\":" + tokens + "],\"token_logprobs\":" + lps + "],\"top_logprobs\":" + tops
            + "],\"text_offset\":" + offsets + "]}";
    }

    /**
     * The mean log-probability of {@code g}'s generated tokens (a matched stop string's included: they
     * were sampled), by which {@code best_of} ranks samples; 0 for none. {@code g} recorded them.
     */
    static double perToken(Generation g) {
        int n = g.completionTokens();
        double sum = 0;
        for (int k = 0; k < n; k++) {
            int pos = g.promptTokens() + k;
            sum += g.hasLogprob(pos) ? g.logprob(pos) : Double.NEGATIVE_INFINITY;     // NaN logits rank last
        }
        return n == 0 ? 0 : sum / n;
    }

    /**
     * A token as text: a byte below 128 is its character, another {@code bytes:\xHH},
     * an id past 255 {@code token:N}.
     */
    static String text(int token) {
        if (token < 128) {
            return String.valueOf((char) token);
        }
        if (token < 256) {
            return "bytes:\\x" + Character.forDigit(token >> 4, 16) + Character.forDigit(token & 15, 16);
        }
        return "token:" + token;
    }

    /** A JSON number; a value that is not finite (a row of logits with one) is null. */
    private static String number(double v) {
        return Double.isFinite(v) ? Double.toString(v) : "null";
    }
}
