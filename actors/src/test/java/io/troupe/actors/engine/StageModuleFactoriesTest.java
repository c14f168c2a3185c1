package io.troupe.actors.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptStages;
import org.junit.jupiter.api.Test;

class StageModuleFactoriesTest {

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
    }
}
