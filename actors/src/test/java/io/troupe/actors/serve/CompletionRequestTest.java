package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Parsing a completion request against the model it is for (context length, vocabulary). */
class CompletionRequestTest {

    /**
     * A model whose vocabulary is smaller than the byte values (ASCII only, say) takes text only of the bytes it has: a
     * prompt with a byte past it is refused naming the prompt and the byte, instead of failing the step
     * that would carry it (and every request beside it).
     */
    @Test
    void shouldRefuseAPromptByteOutsideASmallerVocabulary() {
        assertArrayEquals(new int[] {104, 105}, CompletionRequest.parse("{\"prompt\":\"hi\"}", 64, 128, 1000)
            .prompts()[0]);
        BadRequestException e = assertThrows(BadRequestException.class,
            () -> CompletionRequest.parse("{\"prompt\":\"h\u00ff\"}", 64, 128, 1000));
        assertEquals("prompt", e.field());
        assertTrue(e.getMessage().contains("byte 1 (195)") && e.getMessage().contains("[0, 128)"), e.getMessage());
        // the same text is fine with every byte value in the vocabulary
        assertEquals(3, CompletionRequest.parse("{\"prompt\":\"h\u00ff\"}", 64, 256, 1000).prompts()[0].length);
    }

    /** A top_p that is positive but rounds to 0 in float (as sampling uses it) is refused naming top_p. */
    @Test
    void shouldRefuseATopPThatRoundsToZero() {
        BadRequestException e = assertThrows(BadRequestException.class,
            () -> CompletionRequest.parse("{\"prompt\":\"a\",\"top_p\":1e-50}", 64, 256, 1000));
        assertEquals("top_p", e.field());
        assertTrue(e.getMessage().contains("1.0E-50"), e.getMessage());
    }

    /** Every top_p outside (0, 1] is refused with the same range, the one that holds. */
    @Test
    void shouldNameTheRangeTopPMustBeIn() {
        for (String topP : new String[] {"0", "2", "-0.5"}) {
            BadRequestException e = assertThrows(BadRequestException.class,
                () -> CompletionRequest.parse("{\"prompt\":\"a\",\"top_p\":" + topP + "}", 64, 256, 1000));
            assertEquals("top_p", e.field());
            assertTrue(e.getMessage().startsWith("top_p must be in (0, 1]: top_p=" + Double.parseDouble(topP)),
                e.getMessage());
        }
    }
}
