package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link HeldGptStages} trains bitwise as GPT's own factory only while it passes on every call: a stage method or a
 * factory method it leaves to the interface's default would run the default instead of GPT's own.
 */
class HeldGptStagesTest {

    @Test
    void shouldPassOnEveryMethodOfTheStageAndTheFactory() throws Exception {
        Class<?> stage = Class.forName(HeldGptStages.class.getName() + "$HeldStage");
        assertEquals(List.of(), notOverridden(StageModule.class, stage));
        assertEquals(List.of(), notOverridden(StageModuleFactory.class, HeldGptStages.class));
    }

    private static List<String> notOverridden(Class<?> contract, Class<?> impl) {
        List<String> missing = new ArrayList<>();
        for (Method m : contract.getMethods()) {
            if (java.lang.reflect.Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            try {
                if (impl.getMethod(m.getName(), m.getParameterTypes()).getDeclaringClass() != impl) {
                    missing.add(m.toString());
                }
            } catch (NoSuchMethodException e) {
                missing.add(m.toString());
            }
        }
        return missing;
    }
}
