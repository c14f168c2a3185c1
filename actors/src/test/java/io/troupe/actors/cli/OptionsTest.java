package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The one command-line parser of every command and benchmark. */
@Timeout(10)
class OptionsTest {
    private static final Set<String> KNOWN = Set.of("steps", "lr", "data");
    private static final Set<String> FLAGS = Set.of("sequence-parallel");

    @Test
    void shouldTakeBothSpellingsAndFlags() {
        Options o = Options.parse(new String[] {"--steps", "12", "--lr=-3e-4", "--data", "a,b",
            "--sequence-parallel"}, KNOWN, FLAGS);
        assertEquals(12, o.getInt("steps", 1));
        assertEquals(-3e-4, o.getDouble("lr", 0), 0);
        assertEquals("a,b", o.get("data"), "a list is one comma-separated value");
        assertEquals("true", o.get("sequence-parallel"));
        assertEquals(7, o.getInt("missing", 7));
        org.junit.jupiter.api.Assertions.assertArrayEquals(new int[] {1, 4, 13},
            Options.parse(new String[] {"--steps", "1, 4,13"}, KNOWN, FLAGS).getInts("steps", new int[] {2}));
        org.junit.jupiter.api.Assertions.assertArrayEquals(new int[] {2}, o.getInts("missing", new int[] {2}));
        assertFalse(Options.parse(new String[0], KNOWN, FLAGS).has("steps"));
        assertEquals("false", Options.parse(new String[] {"--sequence-parallel=false"}, KNOWN, FLAGS)
            .get("sequence-parallel"));
    }

    @Test
    void shouldRefuseEachBadCommandLineNamingWhatIsWrong() {
        UsageException unknown = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"--stpes", "3"}, KNOWN, FLAGS));
        assertTrue(unknown.getMessage().startsWith("unknown option '--stpes'; known: --data, --lr, "),
            unknown.getMessage());
        UsageException unknownWithValue = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"--stpes=3"}, KNOWN, FLAGS));
        assertTrue(unknownWithValue.getMessage().startsWith("unknown option '--stpes'"), unknownWithValue.getMessage());
        UsageException missing = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"--steps"}, KNOWN, FLAGS));
        assertEquals("option '--steps' needs a value", missing.getMessage());
        UsageException stray = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"train.conf"}, KNOWN, FLAGS));
        assertEquals("unexpected argument 'train.conf'", stray.getMessage());
        UsageException word = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"--steps", "ten"}, KNOWN, FLAGS).getInt("steps", 1));
        assertEquals("--steps: expected a whole number, got 'ten'", word.getMessage());
        UsageException list = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"--steps", "1,x"}, KNOWN, FLAGS).getInts("steps", new int[0]));
        assertEquals("--steps: expected comma-separated whole numbers, got '1,x'", list.getMessage());
        UsageException repeated = assertThrows(UsageException.class,
            () -> Options.parse(new String[] {"--data", "runs/a", "--steps", "3", "--data=runs/b"}, KNOWN, FLAGS));
        assertEquals("option '--data' given 2 times ('runs/a', 'runs/b'); give it once (a list is one"
            + " comma-separated value)", repeated.getMessage());
        assertTrue(Options.wantsHelp(new String[] {"--steps", "3", "-h"}));
    }
}
