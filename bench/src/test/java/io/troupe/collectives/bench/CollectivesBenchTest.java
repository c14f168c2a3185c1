package io.troupe.collectives.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The bench's option parsing (the bench itself is run by scripts/bench, not by tests). */
class CollectivesBenchTest {
    @Test
    void shouldParseSizesAndRejectBadOnes() {
        assertEquals(4096, CollectivesBench.parseSize("4k"));
        assertEquals(64L << 20, CollectivesBench.parseSize("64m"));
        assertEquals(12, CollectivesBench.parseSize("12"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CollectivesBench.parseSize("3"))
            .getMessage().contains("size=3"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CollectivesBench.parseSize("x1"))
            .getMessage().contains("size=x1"));
    }
}
