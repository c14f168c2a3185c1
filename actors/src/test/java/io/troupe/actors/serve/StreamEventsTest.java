package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The byte-level event encoder against the plain string form of each event, on random texts. */
@Timeout(30)
class StreamEventsTest {
    /** The reference: the chunk built as one string, then encoded. */
    private static String referenceChunk(long id, long created, String model, String text, String finish,
                                         String usage) {
        String json = "{\"id\":\"cmpl-" + id + "\",\"object\":\"text_completion\",\"created\":" + created
            + ",\"model\":" + Json.quote(model) + ",\"choices\":[{\"index\":0,\"text\":" + Json.quote(text)
            + ",\"logprobs\":null,\"finish_reason\":" + (finish == null ? "null" : "\"" + finish + "\"") + "}]"
            + (usage == null ? "" : ",\"usage\":" + usage) + "}";
        return "data: " + json + "\n\n";
    }

    private static String randomText(Random r) {
        StringBuilder sb = new StringBuilder();
        int n = r.nextInt(6);
        for (int i = 0; i < n; i++) {
            sb.append(switch (r.nextInt(6)) {
                case 0 -> '"';
                case 1 -> '\\';
                case 2 -> (char) r.nextInt(0x20);
                case 3 -> 'é';
                case 4 -> '\u4e2d';
                default -> (char) (0x20 + r.nextInt(0x5f));
            });
        }
        return sb.toString();
    }

    @Test
    void shouldEncodeTokenEventsAsTheStringFormOnRandomTexts() {
        Random r = new Random(5);
        for (int trial = 0; trial < 500; trial++) {
            long id = r.nextInt(1_000_000);
            String model = trial % 2 == 0 ? "small" : "m\"" + randomText(r);
            StreamEvents events = new StreamEvents(id, 1_700_000_000L + trial, model);
            String text = randomText(r);
            assertEquals(referenceChunk(id, 1_700_000_000L + trial, model, text, null, null),
                events.token(text).decodeString(StandardCharsets.UTF_8), "trial " + trial);
        }
    }

    @Test
    void shouldEndWithTheFinishChunkAndDone() {
        StreamEvents events = new StreamEvents(7, 42, "small");
        String usage = "{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}";
        assertEquals(referenceChunk(7, 42, "small", "", "length", usage) + "data: [DONE]\n\n",
            events.finish("length", usage).decodeString(StandardCharsets.UTF_8));
    }

    /**
     * With include_usage, OpenAI's shape: every chunk has {@code "usage":null} (the finish chunk too),
     * then a chunk of no choices carrying the usage, then {@code [DONE]}.
     */
    @Test
    void shouldCarryTheUsageInAChunkOfItsOwnWithIncludeUsage() {
        StreamEvents events = new StreamEvents(7, 42, "small", true);
        String head = "{\"id\":\"cmpl-7\",\"object\":\"text_completion\",\"created\":42,\"model\":\"small\"";
        assertEquals("data: " + head + ",\"choices\":[{\"index\":0,\"text\":\"a\\\"b\",\"logprobs\":null,"
            + "\"finish_reason\":null}],\"usage\":null}\n\n",
            events.token("a\"b").decodeString(StandardCharsets.UTF_8));
        assertEquals("data: " + head + ",\"choices\":[{\"index\":0,\"text\":\"a\",\"logprobs\":{\"tokens\":[\"a\"]},"
            + "\"finish_reason\":null}],\"usage\":null}\n\n",
            events.token("a", "{\"tokens\":[\"a\"]}").decodeString(StandardCharsets.UTF_8));
        String usage = "{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}";
        assertEquals(referenceChunk(7, 42, "small", "", "stop", "null") + "data: " + head + ",\"choices\":[],\"usage\":"
            + usage + "}\n\n" + "data: [DONE]\n\n", events.finish("stop", usage).decodeString(StandardCharsets.UTF_8));
        // without it, no usage key but the finish chunk's
        assertEquals(referenceChunk(7, 42, "small", "a", null, null),
            new StreamEvents(7, 42, "small", false).token("a").decodeString(StandardCharsets.UTF_8));
    }

    @Test
    void shouldWriteValidJsonWhoseTextRoundTrips() {
        Random r = new Random(6);
        for (int trial = 0; trial < 200; trial++) {
            String text = randomText(r);
            String event = new StreamEvents(trial, 1, "small").token(text).decodeString(StandardCharsets.UTF_8);
            Map<?, ?> obj = (Map<?, ?>) Json.parse(event.substring("data: ".length()).trim());
            Map<?, ?> choice = (Map<?, ?>) ((java.util.List<?>) obj.get("choices")).get(0);
            assertEquals(text, choice.get("text"), "trial " + trial);
        }
    }
}
