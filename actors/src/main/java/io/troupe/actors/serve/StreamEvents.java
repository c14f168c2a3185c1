package io.troupe.actors.serve;

import java.nio.charset.StandardCharsets;
import org.apache.pekko.util.ByteString;

/**
 * The server-sent events of one streaming completion, encoded straight to bytes. The parts that do
 * not change within a request (id, object, created, model, the keys around the text) are encoded
 * once when the request starts; a token's event is then one array: the prefix, the quoted text
 * delta, the suffix. {@code created} is the request's start (the same in every chunk of a completion).
 */
final class StreamEvents {
    private static final byte[] TOKEN_SUFFIX = ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        .getBytes(StandardCharsets.UTF_8);
    private static final ByteString DONE = ByteString.fromString("data: [DONE]\n\n");
    private final String head;
    private final byte[] tokenPrefix;

    /**
     * @param id       the completion's number ({@code "cmpl-<id>"})
     * @param createdS the request's start, Unix seconds
     * @param model    the model's name
     */
    StreamEvents(long id, long createdS, String model) {
        this.head = head(id, createdS, model);
        this.tokenPrefix = ("data: " + head + ",\"choices\":[{\"index\":0,\"text\":").getBytes(StandardCharsets.UTF_8);
    }

    /** The JSON object of a completion before {@code ,"choices"} (the unary response's too). */
    static String head(long id, long createdS, String model) {
        return "{\"id\":\"cmpl-" + id + "\",\"object\":\"text_completion\",\"created\":" + createdS
            + ",\"model\":" + Json.quote(model);
    }

    /** The event of a text delta: {@code data: {...,"text":<text>,"logprobs":null,"finish_reason":null}]}}. */
    ByteString token(String text) {
        return event(text, TOKEN_SUFFIX);
    }

    /** The event of a text delta with the log-probabilities of its tokens (a {@code logprobs} object). */
    ByteString token(String text, String logprobsJson) {
        return event(text, (",\"logprobs\":" + logprobsJson + ",\"finish_reason\":null}]}\n\n")
            .getBytes(StandardCharsets.UTF_8));
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

    /** The last chunk: empty text, the finish reason and the usage object, then {@code data: [DONE]}. */
    ByteString finish(String finishReason, String usageJson) {
        String json = head + ",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\""
            + finishReason + "\"}],\"usage\":" + usageJson + "}";
        return ByteString.fromString("data: " + json + "\n\n").concat(DONE);
    }
}
