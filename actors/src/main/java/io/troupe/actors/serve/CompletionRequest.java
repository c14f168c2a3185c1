package io.troupe.actors.serve;

import io.troupe.models.infer.LogProbs;
import io.troupe.models.infer.SamplingParams;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.Charset;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A validated {@code POST /v1/completions} body (OpenAI style). Tokens are the prompt's UTF-8
 * bytes. Fields: {@code prompt} (a string or an array of token ids; or, for a batch of completions in
 * one request, an array of up to {@value #MAX_PROMPTS} strings or of token-id arrays, answered as one
 * choice each, in order), {@code max_tokens} (default 16, at most the context length - 1; a request whose
 * prompt and max_tokens pass the context ends at its end with finish reason length; 0 with {@code echo}: the
 * prompt is only scored), {@code temperature} (1), {@code top_p} (1),
 * {@code seed} (random when absent), {@code stop} (string or up to 4 strings), {@code stream} (false),
 * {@code logprobs} (null, or 0 to 5: each token's log-probability and that many most likely
 * alternatives), {@code echo} (false: the prompt comes back before the output, scored when
 * {@code logprobs} is set), {@code frequency_penalty} and {@code presence_penalty} (0; in [-2, 2], over
 * the tokens generated so far), {@code logit_bias} (an object from token ids to biases in [-100, 100]),
 * {@code deadline_ms} (the server's default), {@code model} (absent, null or the served model's name:
 * another name is {@link ModelNotFoundException}), {@code n} (1: choices per prompt, choice
 * {@code j} sampled with seed {@code seed + j}; prompts times {@code n} at most {@value #MAX_PROMPTS}) and
 * {@code best_of} ({@code n}: samples drawn per prompt, at least {@code n}, sample {@code j} with seed
 * {@code seed + j}, of which the {@code n} with the highest log-probability per generated token are
 * answered, best first; prompts times {@code best_of} at most {@value #MAX_PROMPTS}) accepted. With
 * {@code stream}, {@code logprobs} come with each chunk's text. Fields whose request this server cannot
 * honour are refused, not ignored (a client would take a wrong answer for a right one): more than one
 * prompt, choice or sample with {@code stream}, a non-empty {@code suffix}, and text with no UTF-8 form (a
 * body that is not valid in its charset, a string holding half of a UTF-16 surrogate pair), whose bytes
 * would otherwise be replaced unseen. {@code user} (a string, an end user's id for the
 * client's own records) is accepted and changes nothing; {@code stream_options} (an object, only with
 * {@code stream}) takes {@code include_usage}: the stream ends with a chunk of no choices carrying the
 * usage. Any other field is refused naming it (and the accepted field it is closest to, when one is
 * a letter or two away): a misspelt field would otherwise leave its default in place unseen.
 *
 * @param deadlineMs   time the request may take, from its arrival, in milliseconds
 * @param n            choices per prompt
 * @param bestOf       samples drawn per prompt, of which the best {@code n} are answered ({@code n}: all)
 * @param includeUsage a streamed completion ends with a usage chunk ({@code stream_options.include_usage})
 */
record CompletionRequest(int[][] prompts, SamplingParams sampling, boolean stream, long deadlineMs, int n,
                         int bestOf, boolean includeUsage) {
    static final int MAX_STOP_STRINGS = 4;
    /** {@code max_tokens} when the body has none (as OpenAI's). */
    static final int DEFAULT_MAX_TOKENS = 16;
    /** Prompts in one request at most. */
    static final int MAX_PROMPTS = 128;
    static final long MAX_DEADLINE_MS = 3_600_000L;
    /** The fields of a body: OpenAI's completion fields, then Troupe's own. */
    static final List<String> FIELDS = List.of("model", "prompt", "suffix", "max_tokens", "temperature", "top_p",
        "n", "stream", "stream_options", "logprobs", "echo", "stop", "presence_penalty", "frequency_penalty",
        "best_of", "logit_bias", "user", "seed", "deadline_ms");
    /** The fields of {@code stream_options}. */
    static final List<String> STREAM_OPTIONS = List.of("include_usage");
    /** An unknown field's name is shown up to this many characters. */
    private static final int MAX_NAME_SHOWN = 64;

    /**
     * The body's text, decoded from {@code charset} (its {@code Content-Type}'s, UTF-8 when it names none);
     * bytes that are not valid in it are refused naming the first one's offset, not replaced: a prompt's
     * bytes are its tokens.
     */
    static String decode(byte[] body, Charset charset) {
        CharsetDecoder decoder = charset.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(body);
        CharBuffer out = CharBuffer.allocate((int) Math.ceil(body.length * (double) decoder.maxCharsPerByte()) + 1);
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) {
            result = decoder.flush(out);
        }
        if (result.isError()) {
            throw new BadRequestException("body", "the body is not valid " + charset.name() + ": byte "
                + in.position() + " of " + body.length + " (send JSON as UTF-8)");
        }
        return out.flip().toString();
    }

    /**
     * Parses and validates a body for the model {@code servedModel}, of {@code contextLength} positions
     * and vocabulary {@code vocab}; throws {@link BadRequestException} naming the field, or
     * {@link ModelNotFoundException} when {@code model} names another model. The model is checked
     * after the field names and before any value: the other checks are this model's (its context, its
     * vocabulary), which say nothing of a request meant for another.
     */
    static CompletionRequest parse(String body, String servedModel, int contextLength, int vocab,
                                   long defaultDeadlineMs) {
        Object doc;
        try {
            doc = Json.parse(body);
        } catch (Json.JsonException e) {
            throw new BadRequestException("body", "malformed JSON: " + e.getMessage());
        }
        if (!(doc instanceof Map<?, ?> m)) {
            throw new BadRequestException("body", "the body must be a JSON object");
        }
        refuseUnknown(m, "", FIELDS);
        if (has(m, "model")) {
            if (!(m.get("model") instanceof String model)) {
                throw new BadRequestException("model", "model must be a string");
            }
            if (!model.equals(servedModel)) {
                throw new ModelNotFoundException(model, servedModel);
            }
        }
        int[][] prompts = prompts(m.get("prompt"), contextLength, vocab);
        boolean echo = bool(m, "echo", false);
        int maxTokens = maxTokens(m, contextLength);
        if (maxTokens == 0 && !echo) {
            throw new BadRequestException("max_tokens", "max_tokens must be >= 1 (0 only with echo: true, to score a"
                + " prompt): max_tokens=0");
        }
        int logprobs = has(m, "logprobs") ? (int) integer(m, "logprobs", 0, 0, LogProbs.MAX_TOP) : -1;
        double temperature = number(m, "temperature", 1.0, 0.0, 100.0);
        double topP = number(m, "top_p", 1.0, -Double.MAX_VALUE, Double.MAX_VALUE);
        if (!(topP > 0 && topP <= 1) || (float) topP == 0f) { // sampled in float: a positive double may round to 0
            throw new BadRequestException("top_p", "top_p must be in (0, 1]: top_p=" + topP);
        }
        long seed = has(m, "seed") ? integer(m, "seed", 0, Long.MIN_VALUE, Long.MAX_VALUE)
            : ThreadLocalRandom.current().nextLong();
        List<String> stop = stop(m.get("stop"));
        boolean stream = bool(m, "stream", false);
        long deadlineMs = integer(m, "deadline_ms", defaultDeadlineMs, 1, MAX_DEADLINE_MS);
        int n = (int) integer(m, "n", 1, 1, MAX_PROMPTS);
        if ((long) n * prompts.length > MAX_PROMPTS) {
            throw new BadRequestException("n", "at most " + MAX_PROMPTS + " choices in one request: n=" + n + " for "
                + prompts.length + " prompts");
        }
        int bestOf = (int) integer(m, "best_of", n, 1, MAX_PROMPTS);
        if (bestOf < n) {
            throw new BadRequestException("best_of", "best_of must be >= n (the samples the n choices are picked"
                + " from): best_of=" + bestOf + ", n=" + n);
        }
        if ((long) bestOf * prompts.length > MAX_PROMPTS) {
            throw new BadRequestException("best_of", "at most " + MAX_PROMPTS + " samples in one request: best_of="
                + bestOf + " for " + prompts.length + " prompts");
        }
        if (stream && bestOf > 1) {
            throw new BadRequestException(n > 1 ? "n" : "best_of", "a streamed completion takes one choice from one"
                + " sample: n=" + n + ", best_of=" + bestOf);
        }
        if (stream && prompts.length > 1) {
            throw new BadRequestException("prompt", "a streamed completion takes one prompt: got " + prompts.length);
        }
        if (has(m, "suffix") && !"".equals(m.get("suffix"))) {
            throw new BadRequestException("suffix", "a suffix (text inserted after the completion) is not served");
        }
        float frequency = (float) number(m, "frequency_penalty", 0.0, -SamplingParams.MAX_PENALTY,
            SamplingParams.MAX_PENALTY);
        float presence = (float) number(m, "presence_penalty", 0.0, -SamplingParams.MAX_PENALTY,
            SamplingParams.MAX_PENALTY);
        Map<Integer, Float> bias = logitBias(m.get("logit_bias"), vocab);
        if (has(m, "user") && !(m.get("user") instanceof String)) {
            throw new BadRequestException("user", "user must be a string");
        }
        boolean includeUsage = streamOptions(m, stream);
        return new CompletionRequest(prompts, new SamplingParams(maxTokens, (float) temperature, (float) topP, seed,
            stop, logprobs, echo, frequency, presence, bias), stream, deadlineMs, n, bestOf, includeUsage);
    }

    /**
     * {@code stream_options}: an object, only with {@code stream: true} (as OpenAI has it); returns its
     * {@code include_usage} (false when absent).
     */
    private static boolean streamOptions(Map<?, ?> m, boolean stream) {
        if (!has(m, "stream_options")) {
            return false;
        }
        if (!(m.get("stream_options") instanceof Map<?, ?> options)) {
            throw new BadRequestException("stream_options", "stream_options must be an object");
        }
        if (!stream) {
            throw new BadRequestException("stream_options", "stream_options is only allowed with stream: true");
        }
        refuseUnknown(options, "stream_options.", STREAM_OPTIONS);
        if (has(options, "include_usage") && !(options.get("include_usage") instanceof Boolean)) {
            throw new BadRequestException("stream_options", "stream_options.include_usage must be true or false");
        }
        return Boolean.TRUE.equals(options.get("include_usage"));
    }

    /**
     * Refuses the first key of {@code m} that is not one of {@code accepted}, naming it (after
     * {@code prefix}, the path of {@code m} in the body) and the accepted name it is closest to when
     * one is a small edit away. The 400's field is the unknown key at the top level, the object's
     * own name below it.
     */
    private static void refuseUnknown(Map<?, ?> m, String prefix, List<String> accepted) {
        for (Object k : m.keySet()) {
            String key = String.valueOf(k);
            if (accepted.contains(key)) {
                continue;
            }
            if (key.length() > MAX_NAME_SHOWN) {
                key = key.substring(0, MAX_NAME_SHOWN) + "...";
            }
            String closest = closest(key, accepted);
            String field = prefix.isEmpty() ? key : prefix.substring(0, prefix.length() - 1);
            throw new BadRequestException(field, "unknown field " + prefix + key
                + (closest == null ? "" : " (did you mean " + prefix + closest + "?)")
                + (prefix.isEmpty() ? "; the fields accepted: " : "; " + field + " accepts: ")
                + String.join(", ", accepted));
        }
    }

    /**
     * The accepted name nearest {@code key} in edits (insert, delete, replace a character), if at most
     * 2 and at most a third of {@code key}'s length (so {@code "x"} suggests nothing); the first listed
     * on a tie.
     */
    static String closest(String key, List<String> accepted) {
        int limit = Math.min(2, key.length() / 3);
        String best = null;
        int bestDistance = limit + 1;
        for (String name : accepted) {
            if (Math.abs(key.length() - name.length()) > limit) {
                continue;                       // further than the limit, and a long key costs no time
            }
            int d = io.troupe.actors.EditDistance.of(key, name);
            if (d < bestDistance) {
                best = name;
                bestDistance = d;
            }
        }
        return best;
    }


    /** Samples drawn: {@code best_of} for each prompt, a prompt's together, in the order of the prompts. */
    int samples() {
        return prompts.length * bestOf;
    }

    /** The prompt of sample {@code c}. */
    int[] promptOf(int c) {
        return prompts[c / bestOf];
    }

    /**
     * How sample {@code c} is drawn: the request's sampling, with seed {@code seed + j} for its prompt's
     * sample j; with log-probabilities recorded when the best are picked from more than {@code n} (they
     * rank the samples; a response shows them only where the request asked).
     */
    SamplingParams samplingOf(int c) {
        int j = c % bestOf;
        SamplingParams s = j == 0 ? sampling : sampling.withSeed(sampling.seed() + j);
        return bestOf > n && s.logprobs() < 0 ? s.withLogprobs(0, s.echo()) : s;
    }

    /** {@code logit_bias}: an object from token ids (as strings) to biases in [-100, 100]. */
    private static Map<Integer, Float> logitBias(Object v, int vocab) {
        if (v == null || v == Json.NULL) {
            return Map.of();
        }
        if (!(v instanceof Map<?, ?> m)) {
            throw new BadRequestException("logit_bias", "logit_bias must be an object from token ids to biases");
        }
        Map<Integer, Float> out = new java.util.TreeMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            String key = String.valueOf(e.getKey());
            int id;
            try {
                id = Integer.parseInt(key);
            } catch (NumberFormatException nfe) {
                throw new BadRequestException("logit_bias", "logit_bias keys are token ids: got \"" + key + "\"");
            }
            if (id < 0 || id >= vocab) {
                throw new BadRequestException("logit_bias", "logit_bias token id " + id + " is outside the vocabulary"
                    + " [0, " + vocab + ")");
            }
            if (!(e.getValue() instanceof Number n) || !(Math.abs(n.doubleValue()) <= SamplingParams.MAX_BIAS)) {
                throw new BadRequestException("logit_bias", "logit_bias of token " + id + " must be a number in"
                    + " [-100, 100]: " + shown(e.getValue()));
            }
            if (out.put(id, n.floatValue()) != null) {      // "65" and "065": one would replace the other unseen
                throw new BadRequestException("logit_bias", "logit_bias names token " + id + " twice: \"" + key
                    + "\" and an earlier key");
            }
        }
        return out;
    }

    private static boolean has(Map<?, ?> m, String k) {
        return m.containsKey(k) && m.get(k) != Json.NULL;
    }

    /**
     * One prompt (a string, or an array of token ids) or several (an array of strings, or of token-id
     * arrays: not mixed).
     */
    private static int[][] prompts(Object v, int contextLength, int vocab) {
        if (v instanceof List<?> list && !list.isEmpty() && (list.get(0) instanceof String
            || list.get(0) instanceof List<?>)) {
            if (list.size() > MAX_PROMPTS) {
                throw new BadRequestException("prompt", "at most " + MAX_PROMPTS + " prompts in one request: got "
                    + list.size());
            }
            boolean strings = list.get(0) instanceof String;
            int[][] out = new int[list.size()][];
            for (int i = 0; i < out.length; i++) {
                Object p = list.get(i);
                if (strings ? !(p instanceof String) : !(p instanceof List<?>)) {
                    throw new BadRequestException("prompt", "prompt " + i + " must be "
                        + (strings ? "a string, as the first is" : "an array of token ids, as the first is"));
                }
                out[i] = prompt(p, "prompt " + i, contextLength, vocab);
            }
            return out;
        }
        return new int[][] {prompt(v, "prompt", contextLength, vocab)};
    }

    private static int[] prompt(Object v, String what, int contextLength, int vocab) {
        int[] tokens;
        if (v == null || v == Json.NULL) {
            throw new BadRequestException("prompt", "prompt is required");
        } else if (v instanceof String s) {
            refuseHalfSurrogate("prompt", what, s);
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            tokens = new int[b.length];
            for (int i = 0; i < b.length; i++) {
                tokens[i] = b[i] & 0xFF;
                if (tokens[i] >= vocab) {           // a model with fewer tokens than byte values
                    throw new BadRequestException("prompt", what + ": byte " + i + " (" + tokens[i] + ") is outside"
                        + " this model's vocabulary [0, " + vocab + "): send token ids, or text of those bytes");
                }
            }
        } else if (v instanceof List<?> list) {
            tokens = new int[list.size()];
            for (int i = 0; i < tokens.length; i++) {
                Object t = list.get(i);
                if (!(t instanceof BigDecimal d) || !isInteger(d) || d.signum() < 0
                    || d.compareTo(BigDecimal.valueOf(vocab)) >= 0) {
                    throw new BadRequestException("prompt", what + ": token " + i + " is "
                        + shown(t)
                        + "; it must be an integer id in [0, " + vocab + ")");
                }
                tokens[i] = d.intValue();
            }
        } else {
            throw new BadRequestException("prompt", what + " must be a string or an array of token ids");
        }
        if (tokens.length == 0) {
            throw new BadRequestException("prompt", what + " must not be empty");
        }
        if (tokens.length >= contextLength) {
            throw new BadRequestException("prompt", what + " is " + tokens.length + " tokens; this model takes at most "
                + (contextLength - 1) + " (context " + contextLength + ")");
        }
        return tokens;
    }

    private static boolean isInteger(BigDecimal d) {
        return d.signum() == 0 || d.stripTrailingZeros().scale() <= 0;
    }

    /** A JSON value as a message shows it: a number or string as written, else its kind. */
    private static String shown(Object v) {
        if (v instanceof BigDecimal d) {
            return d.toPlainString();
        }
        if (v instanceof String s) {
            return Json.quote(s.length() > MAX_NAME_SHOWN ? s.substring(0, MAX_NAME_SHOWN) + "..." : s);
        }
        return v == Json.NULL ? "null" : v instanceof Boolean ? v.toString() : v instanceof List<?> ? "an array"
            : "an object";
    }

    /**
     * {@code max_tokens}: 0 to the context length - 1 (the most a one-token prompt leaves); a request whose prompt
     * and {@code max_tokens} pass the context ends at the context's end with {@code finish_reason} {@code length}.
     */
    private static int maxTokens(Map<?, ?> m, int contextLength) {
        if (!has(m, "max_tokens")) {
            return DEFAULT_MAX_TOKENS;
        }
        if (!(m.get("max_tokens") instanceof BigDecimal d) || !isInteger(d)) {
            throw new BadRequestException("max_tokens", "max_tokens must be an integer");
        }
        if (d.signum() < 0 || d.compareTo(BigDecimal.valueOf(contextLength - 1)) > 0) {
            throw new BadRequestException("max_tokens", "max_tokens must be in [0, " + (contextLength - 1) + "]: this"
                + " model's context is " + contextLength + " tokens, prompt included: max_tokens=" + d.toPlainString());
        }
        return d.intValueExact();
    }

    private static long integer(Map<?, ?> m, String k, long dflt, long min, long max) {
        if (!has(m, k)) {
            return dflt;
        }
        Object v = m.get(k);
        if (!(v instanceof BigDecimal d) || !isInteger(d)) {
            throw new BadRequestException(k, k + " must be an integer");
        }
        if (d.compareTo(BigDecimal.valueOf(min)) < 0 || d.compareTo(BigDecimal.valueOf(max)) > 0) {
            throw new BadRequestException(k, k + " must be in [" + min + ", " + max + "]: " + k + "="
                + d.toPlainString());
        }
        return d.longValueExact();
    }

    private static double number(Map<?, ?> m, String k, double dflt, double min, double max) {
        if (!has(m, k)) {
            return dflt;
        }
        Object v = m.get(k);
        if (!(v instanceof BigDecimal d)) {
            throw new BadRequestException(k, k + " must be a number");
        }
        double x = d.doubleValue();
        if (!(x >= min && x <= max)) {
            throw new BadRequestException(k, k + " must be in [" + min + ", " + max + "]: " + k + "=" + d);
        }
        return x;
    }

    private static boolean bool(Map<?, ?> m, String k, boolean dflt) {
        if (!has(m, k)) {
            return dflt;
        }
        if (!(m.get(k) instanceof Boolean b)) {
            throw new BadRequestException(k, k + " must be true or false");
        }
        return b;
    }

    private static List<String> stop(Object v) {
        List<String> out = new ArrayList<>();
        if (v == null || v == Json.NULL) {
            return out;
        }
        if (v instanceof String s) {
            out.add(s);
        } else if (v instanceof List<?> list) {
            for (Object o : list) {
                if (!(o instanceof String s)) {
                    throw new BadRequestException("stop", "stop must be a string or an array of strings");
                }
                out.add(s);
            }
        } else {
            throw new BadRequestException("stop", "stop must be a string or an array of strings");
        }
        if (out.size() > MAX_STOP_STRINGS) {
            throw new BadRequestException("stop", "at most " + MAX_STOP_STRINGS + " stop strings: got " + out.size());
        }
        for (String s : out) {
            if (s.isEmpty()) {
                throw new BadRequestException("stop", "stop strings must not be empty");
            }
            refuseHalfSurrogate("stop", "stop", s);
        }
        return out;
    }

    /** Refuses a string holding half of a UTF-16 surrogate pair: it has no UTF-8 bytes (they would become '?'). */
    private static void refuseHalfSurrogate(String field, String what, String s) {
        int i = Json.unpairedSurrogate(s);
        if (i >= 0) {
            throw new BadRequestException(field, what + ": character " + i + " is " + String.format("\\u%04x",
                (int) s.charAt(i)) + ", half of a UTF-16 surrogate pair, which has no UTF-8 form: send the whole pair");
        }
    }
}
