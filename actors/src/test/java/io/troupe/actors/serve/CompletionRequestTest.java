package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Parsing a completion request against the model it is for (context length, vocabulary). */
class CompletionRequestTest {
    /** The model the requests are parsed for. */
    private static final String SERVED = "small";

    /**
     * A model whose vocabulary is smaller than the byte values (ASCII only, say) takes text only of the bytes it has: a
     * prompt with a byte past it is refused naming the prompt and the byte, instead of failing the step
     * that would carry it (and every request beside it).
     */
    @Test
    void shouldRefuseAPromptByteOutsideASmallerVocabulary() {
        assertArrayEquals(new int[] {104, 105}, CompletionRequest.parse("{\"prompt\":\"hi\"}", SERVED, 64, 128, 1000)
            .prompts()[0]);
        BadRequestException e = assertThrows(BadRequestException.class,
            () -> CompletionRequest.parse("{\"prompt\":\"h\u00ff\"}", SERVED, 64, 128, 1000));
        assertEquals("prompt", e.field());
        assertTrue(e.getMessage().contains("byte 1 (195)") && e.getMessage().contains("[0, 128)"), e.getMessage());
        // the same text is fine with every byte value in the vocabulary
        assertEquals(3, CompletionRequest.parse("{\"prompt\":\"h\u00ff\"}", SERVED, 64, 256, 1000).prompts()[0].length);
    }

    /** A top_p that is positive but rounds to 0 in float (as sampling uses it) is refused naming top_p. */
    @Test
    void shouldRefuseATopPThatRoundsToZero() {
        BadRequestException e = assertThrows(BadRequestException.class,
            () -> CompletionRequest.parse("{\"prompt\":\"a\",\"top_p\":1e-50}", SERVED, 64, 256, 1000));
        assertEquals("top_p", e.field());
        assertTrue(e.getMessage().contains("1.0E-50"), e.getMessage());
    }

    /** Every top_p outside (0, 1] is refused with the same range, the one that holds. */
    @Test
    void shouldNameTheRangeTopPMustBeIn() {
        for (String topP : new String[] {"0", "2", "-0.5"}) {
            BadRequestException e = assertThrows(BadRequestException.class,
                () -> CompletionRequest.parse("{\"prompt\":\"a\",\"top_p\":" + topP + "}", SERVED, 64, 256, 1000));
            assertEquals("top_p", e.field());
            assertTrue(e.getMessage().startsWith("top_p must be in (0, 1]: top_p=" + Double.parseDouble(topP)),
                e.getMessage());
        }
    }

    /** A token id outside the vocabulary is refused naming its index and its value. */
    @Test
    void shouldNameTheValueOfATokenOutsideTheVocabulary() {
        BadRequestException e = refused("{\"prompt\":[300]}");
        assertEquals("prompt", e.field());
        assertTrue(e.getMessage().startsWith("prompt: token 0 is 300; it must be an integer id in [0, 256)"),
            e.getMessage());
        assertTrue(refused("{\"prompt\":[1,2.5]}").getMessage().contains("token 1 is 2.5;"), "a fraction named");
        assertTrue(refused("{\"prompt\":[1,\"x\"]}").getMessage().contains("token 1 is \"x\";"), "a string named");
    }

    /**
     * max_tokens runs from 0 to the context length - 1, whatever the prompt (a 6-token prompt with 63 is taken: the
     * request ends at the context's end, finish reason length); a value past that is refused naming the range and the
     * context length.
     */
    @Test
    void shouldTakeMaxTokensUpToTheContextAndRefuseMoreNamingTheContext() {
        for (int maxTokens : new int[] {0, 1, 62, 63}) {
            String body = "{\"prompt\":\"abcdef\",\"echo\":true,\"max_tokens\":" + maxTokens + "}";
            assertEquals(maxTokens, CompletionRequest.parse(body, SERVED, 64, 256, 1000).sampling().maxTokens());
        }
        for (String bad : new String[] {"-1", "64", "100", "2147483647", "1e12"}) {
            BadRequestException e = refused("{\"prompt\":\"a\",\"max_tokens\":" + bad + "}");
            assertEquals("max_tokens", e.field());
            String said = e.getMessage();
            assertTrue(said.contains("in [0, 63]") && said.contains("context is 64 tokens")
                && said.contains("max_tokens=" + new java.math.BigDecimal(bad).toPlainString()), said);
        }
    }

    private static BadRequestException refused(String body) {
        return assertThrows(BadRequestException.class, () -> CompletionRequest.parse(body, SERVED, 64, 256, 1000),
            body);
    }

    /**
     * A field the server does not know is refused naming it, with the accepted field a letter or two
     * away when there is one, and the list of the accepted fields: a misspelt field would otherwise
     * leave its default in place without a word.
     */
    @Test
    void shouldRefuseAnUnknownFieldNamingItAndTheClosestAcceptedOne() {
        String[][] cases = {
            {"max_token", "max_tokens"},
            {"temprature", "temperature"},
            {"Temperature", "temperature"},
            {"top-p", "top_p"},
            {"sed", "seed"},
            {"promt", "prompt"},
            {"stop_sequences", null},
            {"top_k", "top_p"},
            {"x", null},
            {"deadline", null},
        };
        for (String[] c : cases) {
            BadRequestException e = refused("{\"prompt\":\"a\",\"" + c[0] + "\":1}");
            assertEquals(c[0], e.field());
            String head = "unknown field " + c[0] + (c[1] == null ? ";" : " (did you mean " + c[1] + "?);");
            assertTrue(e.getMessage().startsWith(head), e.getMessage());
            assertTrue(e.getMessage().endsWith("the fields accepted: " + String.join(", ", CompletionRequest.FIELDS)),
                e.getMessage());
        }
        // refused before the other fields are looked at: the misspelling is what the client needs to hear of
        assertEquals("promt", refused("{\"promt\":\"a\"}").field());
        assertEquals("maxtokens", refused("{\"prompt\":\"\",\"maxtokens\":1}").field());
        // a long name is shown cut
        String longName = "m".repeat(100_000);
        BadRequestException e = refused("{\"prompt\":\"a\",\"" + longName + "\":1}");
        assertTrue(e.getMessage().startsWith("unknown field " + "m".repeat(64) + "...;"),
            e.getMessage().substring(0, 80));
        assertTrue(e.getMessage().length() < 400, "length " + e.getMessage().length());
    }

    /** Every field OpenAI's completions take is known, at the value a client sends by default. */
    @Test
    void shouldAcceptEveryOpenAiCompletionFieldAtItsDefault() {
        CompletionRequest r = CompletionRequest.parse("{\"model\":\"small\",\"prompt\":\"a\",\"suffix\":null,"
            + "\"max_tokens\":16,\"temperature\":1,\"top_p\":1,\"n\":1,\"stream\":false,\"stream_options\":null,"
            + "\"logprobs\":null,\"echo\":false,\"stop\":null,\"presence_penalty\":0,\"frequency_penalty\":0,"
            + "\"best_of\":1,\"logit_bias\":null,\"user\":\"user-1234\",\"seed\":5,\"deadline_ms\":500}", SERVED, 64,
            256, 1000);
        assertEquals(16, r.sampling().maxTokens());
        assertEquals(500, r.deadlineMs());
        assertFalse(r.includeUsage());
        assertEquals(19, CompletionRequest.FIELDS.size(), "OpenAI's eighteen and deadline_ms");
    }

    /**
     * {@code model} absent, null or the served one is served; another name is not found (naming it and the
     * served one), checked after the field names and before the values, which are the served model's.
     */
    @Test
    void shouldServeOnlyTheServedModelAndRefuseAnotherBeforeItsValues() {
        for (String model : new String[] {"", ",\"model\":null", ",\"model\":\"small\""}) {
            assertEquals(2, CompletionRequest.parse("{\"prompt\":\"a\",\"max_tokens\":2" + model + "}", SERVED, 64,
                256, 1000).sampling().maxTokens(), model);
        }
        for (String other : new String[] {"gpt-3.5-turbo-instruct", "Small", "small ", "", "sm\u00e4ll"}) {
            String body = "{\"model\":" + Json.quote(other) + ",\"prompt\":\"a\"}";
            ModelNotFoundException e = assertThrows(ModelNotFoundException.class,
                () -> CompletionRequest.parse(body, SERVED, 64, 256, 1000), body);
            assertEquals(other, e.requested());
            assertEquals("The model `" + other + "` does not exist; this server serves `small`", e.getMessage());
        }
        // a value this model would refuse (a prompt past its context, a token past its vocabulary): not found first
        ModelNotFoundException first = assertThrows(ModelNotFoundException.class, () -> CompletionRequest.parse(
            "{\"prompt\":[300],\"max_tokens\":-1,\"model\":\"big\"}", SERVED, 64, 256, 1000));
        assertEquals("big", first.requested());
        // a field this server does not know is refused before the model is looked at
        assertEquals("max_token", refused("{\"model\":\"big\",\"prompt\":\"a\",\"max_token\":2}").field());
        for (String model : new String[] {"5", "true", "[\"small\"]", "{\"id\":\"small\"}"}) {
            BadRequestException e = refused("{\"prompt\":\"a\",\"model\":" + model + "}");
            assertEquals("model", e.field());
            assertEquals("model must be a string", e.getMessage());
        }
        // a huge name is shown cut
        ModelNotFoundException huge = assertThrows(ModelNotFoundException.class, () -> CompletionRequest.parse(
            "{\"prompt\":\"a\",\"model\":\"" + "m".repeat(100_000) + "\"}", SERVED, 64, 256, 1000));
        assertEquals(100_000, huge.requested().length());
        assertTrue(huge.getMessage().startsWith("The model `" + "m".repeat(64) + "...` does not exist"),
            huge.getMessage().substring(0, 80));
        assertTrue(huge.getMessage().length() < 200, "length " + huge.getMessage().length());
    }

    /** {@code user} is an end user's id for the client's records: any string, and nothing else. */
    @Test
    void shouldAcceptAUserStringAndRefuseAnythingElse() {
        CompletionRequest plain = CompletionRequest.parse("{\"prompt\":\"a\",\"seed\":3}", SERVED, 64, 256, 1000);
        CompletionRequest withUser = CompletionRequest.parse("{\"prompt\":\"a\",\"seed\":3,\"user\":\"u\"}", SERVED, 64,
            256, 1000);
        assertEquals(plain.sampling(), withUser.sampling(), "user changes nothing");
        CompletionRequest.parse("{\"prompt\":\"a\",\"user\":null}", SERVED, 64, 256, 1000);
        for (String user : new String[] {"5", "true", "[\"u\"]", "{\"id\":\"u\"}"}) {
            BadRequestException e = refused("{\"prompt\":\"a\",\"user\":" + user + "}");
            assertEquals("user", e.field());
            assertEquals("user must be a string", e.getMessage());
        }
    }

    /**
     * {@code stream_options} is OpenAI's: an object, only with {@code stream: true}, whose one field is
     * {@code include_usage} (true or false); anything else in it is refused naming stream_options.
     */
    @Test
    void shouldTakeStreamOptionsOnlyWithStreamAndOnlyIncludeUsage() {
        assertTrue(CompletionRequest.parse("{\"prompt\":\"a\",\"stream\":true,\"stream_options\":"
            + "{\"include_usage\":true}}", SERVED, 64, 256, 1000).includeUsage());
        for (String options : new String[] {"{}", "{\"include_usage\":false}", "{\"include_usage\":null}", "null"}) {
            assertFalse(CompletionRequest.parse("{\"prompt\":\"a\",\"stream\":true,\"stream_options\":" + options
                + "}", SERVED, 64, 256, 1000).includeUsage(), options);
        }
        assertFalse(CompletionRequest.parse("{\"prompt\":\"a\",\"stream\":true}", SERVED, 64, 256, 1000)
            .includeUsage());
        String[][] cases = {
            {"{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", "only allowed with stream: true"},
            {"{\"prompt\":\"a\",\"stream\":false,\"stream_options\":{}}", "only allowed with stream: true"},
            {"{\"prompt\":\"a\",\"stream\":true,\"stream_options\":true}", "stream_options must be an object"},
            {"{\"prompt\":\"a\",\"stream\":true,\"stream_options\":[]}", "stream_options must be an object"},
            {"{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
                "stream_options.include_usage must be true or false"},
            {"{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usag\":true}}",
                "unknown field stream_options.include_usag (did you mean stream_options.include_usage?);"
                    + " stream_options accepts: include_usage"},
            {"{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"z\":1}}",
                "unknown field stream_options.z; stream_options accepts: include_usage"},
        };
        for (String[] c : cases) {
            BadRequestException e = refused(c[0]);
            assertEquals("stream_options", e.field(), c[0]);
            assertTrue(e.getMessage().contains(c[1]), c[0] + " -> " + e.getMessage());
        }
    }

    /** The suggestion: the nearest accepted name within the limit, none beyond it, the first listed on a tie. */
    @Test
    void shouldSuggestOnlyANameWithinTwoEditsAndAThirdOfTheKey() {
        assertEquals("max_tokens", CompletionRequest.closest("max_token", CompletionRequest.FIELDS));
        assertEquals("max_tokens", CompletionRequest.closest("mx_tokns", CompletionRequest.FIELDS));
        assertNull(CompletionRequest.closest("mx_tkns", CompletionRequest.FIELDS), "three edits away");
        assertNull(CompletionRequest.closest("nn", CompletionRequest.FIELDS), "one edit, but of a two-letter key");
        assertEquals("top_p", CompletionRequest.closest("stop__", CompletionRequest.FIELDS),
            "two edits from stop and from top_p, listed first");
        assertEquals("best_of", CompletionRequest.closest("bestof", CompletionRequest.FIELDS));
    }
}
