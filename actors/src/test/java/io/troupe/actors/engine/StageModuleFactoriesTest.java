package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptStages;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class StageModuleFactoriesTest {
    /** Set by {@link Trap}'s static initialiser: proves whether loading ran it. */
    static volatile boolean trapInitialised;

    /** Not a factory; its static initialiser must never run when a job names it. */
    static final class Trap {
        static {
            trapInitialised = true;
        }
    }

    @Test
    void shouldNameAMissingOrWrongFactoryClass() {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
            () -> StageModuleFactories.named("com.example.NoSuchFactory"));
        assertTrue(missing.getMessage().contains("com.example.NoSuchFactory"), missing.getMessage());
        IllegalArgumentException wrong = assertThrows(IllegalArgumentException.class,
            () -> StageModuleFactories.named("java.lang.String"));
        assertTrue(wrong.getMessage().contains("java.lang.String"), wrong.getMessage());
    }

    @Test
    void shouldDefaultToGpt() {
        assertEquals(GptStages.class, StageModuleFactories.named("").getClass());
        assertEquals(GptStages.class, StageModuleFactories.named(GptStages.class.getName()).getClass());
        assertEquals(GptStages.class, StageModuleFactories.named("", List.of()).getClass());
        assertEquals(GptStages.class, StageModuleFactories.named(GptStages.class.getName(), List.of()).getClass());
    }

    @Test
    void shouldRefuseAFactoryOffTheAllowListNamingIt() {
        String name = "io.troupe.examples.ResidualMlpModel";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> StageModuleFactories.named(name, List.of("com.example.OtherFactory")));
        assertTrue(e.getMessage().contains(name) && e.getMessage().contains("troupe.cluster.allowed-stage-modules"),
            e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> StageModuleFactories.checkAllowed(name, List.of()));
        assertEquals(name, StageModuleFactories.named(name, List.of(name)).getClass().getName());
    }

    @Test
    void shouldRefuseANonFactoryWithoutRunningItsStaticInitialiser() {
        String name = Trap.class.getName(); // a class literal does not initialise the class
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> StageModuleFactories.named(name, List.of(name)));
        assertTrue(e.getMessage().contains(name) && e.getMessage().contains("does not implement"), e.getMessage());
        assertFalse(trapInitialised, "the refused class's static initialiser ran");
        IllegalArgumentException off = assertThrows(IllegalArgumentException.class,
            () -> StageModuleFactories.named(name, List.of()));
        assertTrue(off.getMessage().contains(name), off.getMessage());
        assertFalse(trapInitialised, "the refused class's static initialiser ran");
    }
}
