package io.troupe.actors.serve;

import java.nio.charset.StandardCharsets;
import org.apache.pekko.util.ByteString;

/**
 * The server-sent events of one streaming completion, encoded straight to bytes. The parts that do
 * not change within a request (id, object, created, model, the keys around the text) are encoded
 * once when the request starts; a token's event is then one array: the prefix, the quoted text
 * delta, the suffix. {@code created} is the request's start (the same in every chunk of a completion).
 *
 * <p>With {@code includeUsage} ({@code stream_options.include_usage}) the events take OpenAI's shape
 * for it: every chunk carries {@code "usage":null}, the finish chunk too, and the usage goes in one
 * more chunk, of no choices, just before {@code data: [DONE]}. Without it the finish chunk carries
 * the usage.
 */
final class StreamEvents {
    private static final byte[] TOKEN_SUFFIX = ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        .getBytes(StandardCharsets.UTF_8);
    private static final byte[] TOKEN_SUFFIX_NULL_USAGE = (",\"logprobs\":null,\"finish_reason\":null}],"
        + "\"usage\":null}\n\n").getBytes(StandardCharsets.UTF_8);
    private static final ByteString DONE = ByteString.fromString("data: [DONE]\n\n");
    private final String head;
    private final byte[] tokenPrefix;
    private final boolean includeUsage;
    private final byte[] tokenSuffix;

    /**
     * @param id       the completion's number ({@code "cmpl-<id>"})
     * @param createdS the request's start, Unix seconds
     * @param model    the model's name
     */
    StreamEvents(long id, long createdS, String model) {
        this(id, createdS, model, false);
    }

    /**
     * @param id           the completion's number ({@code "cmpl-<id>"})
     * @param createdS     the request's start, Unix seconds
     * @param model        the model's name
     * @param includeUsage the usage goes in a chunk of its own at the end, every other chunk with
     *                     {@code "usage":null}
     */
    StreamEvents(long id, long createdS, String model, boolean includeUsage) {
        this.head = head(id, createdS, model);
        this.tokenPrefix = ("data: " + head + ",\"choices\":[{\"index\":0,\"text\":").getBytes(StandardCharsets.UTF_8);
        this.includeUsage = includeUsage;
        this.tokenSuffix = includeUsage ? TOKEN_SUFFIX_NULL_USAGE : TOKEN_SUFFIX;
    }

    /** The JSON object of a completion before {@code ,"choices"} (the unary response's too). */
    static String head(long id, long createdS, String model) {
        return "{\"id\":\"cmpl-" + id + "\",\"object\":\"text_completion\",\"created\":" + createdS
            + ",\"model\":" + Json.quote(model);
    }

    /** The event of a text delta: {@code data: {...,"text":<text>,"logprobs":null,"finish_reason":null}]}}. */
    ByteString token(String text) {
        return event(text, tokenSuffix);
    }

    /** The event of a text delta with the log-probabilities of its tokens (a {@code logprobs} object). */
    ByteString token(String text, String logprobsJson) {
        return event(text, (",\"logprobs\":" + logprobsJson + ",\"finish_reason\":null}]"
            + (includeUsage ? ",\"usage\":null}\n\n" : "}\n\n")).getBytes(StandardCharsets.UTF_8));
    }

    /** The prefix, the quoted text, then {@code suffix} (from {@code ,"logprobs"} to the event's end). */
    private ByteString event(String text, byte[] suffix) {
        byte[] quoted = Json.quote(text).getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[tokenPrefix.length + quoted.length + suffix.length];
        System.arraycopy(tokenPrefix, 0, out, 0, tokenPrefix.length);
        System.arraycopy(quoted, 0, out, tokenPrefix.length, quoted.length);
        System.arraycopy(suffix, 0, out, tokenPrefix.length + quoted.length, suffix.length);
        return ByteString.fromArrayUnsafe(out);
    }

    /**
     * The end of a stream whose request could not be served: one event carrying {@code errorJson} (OpenAI's error
     * object, {@code {"error":{"message":...,"type":...,"param":...,"code":...}}}, as a refused request's body),
     * then {@code data: [DONE]}.
     */
    static ByteString error(String errorJson) {
        return ByteString.fromString("data: " + errorJson + "\n\n").concat(DONE);
    }

    /**
     * The last chunk: empty text, the finish reason and the usage object, then {@code data: [DONE]}; with
     * {@code includeUsage}, the finish chunk's usage is null and a chunk of no choices carrying the usage
     * comes between it and {@code [DONE]}.
     */
    ByteString finish(String finishReason, String usageJson) {
        String json = head + ",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\""
            + finishReason + "\"}],\"usage\":" + (includeUsage ? "null" : usageJson) + "}";
        String usage = includeUsage ? "data: " + head + ",\"choices\":[],\"usage\":" + usageJson + "}\n\n" : "";
        return ByteString.fromString("data: " + json + "\n\n" + usage).concat(DONE);
    }
}
