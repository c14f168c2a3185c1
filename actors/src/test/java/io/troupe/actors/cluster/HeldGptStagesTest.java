package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.engine.ForwardingStageModule;
import io.troupe.models.StageModule;
import io.troupe.models.StageModuleFactory;
import io.troupe.models.gpt.GptConfig;
import io.troupe.runtime.cpu.CpuDevice;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link HeldGptStages} trains bitwise as GPT's own factory only while it passes on every call: a stage method or a
 * factory method it leaves to the interface's default would run the default instead of GPT's own.
 */
class HeldGptStagesTest {

    @Test
    void shouldPassOnEveryMethodOfTheStageAndTheFactory() throws Exception {
        Class<?> stage = Class.forName(HeldGptStages.class.getName() + "$HeldStage");
        // the stage passes on through ForwardingStageModule, which must declare every method itself
        assertEquals(ForwardingStageModule.class, stage.getSuperclass());
        assertEquals(List.of(), notOverridden(StageModule.class, ForwardingStageModule.class));
        assertEquals(List.of(), notOverridden(StageModuleFactory.class, HeldGptStages.class));
    }

    /**
     * The hold across processes, armed by {@link HeldGptStages#jvmOptions} (here in this JVM): a stage built before
     * the release file exists prints the held line at the start of its step and waits for the file; a stage built
     * after it runs free.
     */
    @Test
    @Timeout(60)
    void shouldHoldAStageBuiltBeforeTheReleaseFileUntilItAppears(@TempDir Path tmp) throws Exception {
        Path release = tmp.resolve("release");
        List<String> options = HeldGptStages.jvmOptions(2, release);
        PrintStream out = System.out;
        CountDownLatch held = new CountDownLatch(1);
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8) {
            @Override
            public void println(String line) {
                super.println(line);
                if (line.startsWith(HeldGptStages.HELD_LINE + 2)) {
                    held.countDown();
                }
            }
        });
        for (String o : options) {
            String[] kv = o.substring(2).split("=", 2);
            System.setProperty(kv[0], kv[1]);
        }
        StageModuleFactory factory = new HeldGptStages();
        try (CpuDevice dev = new CpuDevice(1)) {
            StageModuleFactory.Stage spec = new StageModuleFactory.Stage(GptConfig.tiny(), dev, 0, 1, 0, 2, 1, 1);
            try (StageModule before = factory.create(spec)) {
                before.zeroGrads(); // step 1 runs free
                CompletableFuture<Void> step2 = CompletableFuture.runAsync(before::zeroGrads);
                assertTrue(held.await(30, TimeUnit.SECONDS), "held at the start of step 2: " + printed);
                assertFalse(step2.isDone(), "step 2 waits for the release file");
                HeldGptStages.release(release);
                HeldGptStages.release(release); // idempotent
                step2.get(30, TimeUnit.SECONDS);
            }
            printed.reset();
            try (StageModule after = factory.create(spec)) {
                after.zeroGrads();
                after.zeroGrads();
            }
            assertEquals("", printed.toString(StandardCharsets.UTF_8), "a stage built after the release runs free");
        } finally {
            System.setOut(out);
            for (String o : options) {
                System.clearProperty(o.substring(2).split("=", 2)[0]);
            }
        }
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
