package io.troupe.models;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.gpt.GptConfig;
import io.troupe.models.gpt.GptStages;
import io.troupe.models.parallel.tp.LocalTensorParallelGroup;
import io.troupe.runtime.cpu.CpuDevice;
import org.junit.jupiter.api.Test;

/** Factories say whether they support tp; one that does not is refused with its name, GPT with the numbers. */
class StageModuleFactoryTensorParallelTest {

    @Test
    void shouldRefuseTensorParallelismForAFactoryThatDoesNotSupportItNamingIt() {
        StageModuleFactory custom = stage -> {
            throw new AssertionError("must not be built");
        };
        custom.checkTensorParallel(GptConfig.tiny(), 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> custom.checkTensorParallel(GptConfig.tiny(), 2));
        assertTrue(e.getMessage().contains("does not support tensor parallelism") && e.getMessage().contains("tp=2"),
            e.getMessage());
        try (CpuDevice dev = new CpuDevice(1)) {
            StageModuleFactory.Stage s = new StageModuleFactory.Stage(GptConfig.tiny(), dev, 0, 1, 0, 2, 1, 1);
            assertThrows(IllegalArgumentException.class,
                () -> custom.create(s, LocalTensorParallelGroup.create(2, 1000).get(0), false));
        }
    }

    @Test
    void shouldCheckGptsHeadsVocabularyAndWidthAgainstTp() {
        GptStages gpt = new GptStages();
        assertTrue(gpt.supportsTensorParallel());
        gpt.checkTensorParallel(GptConfig.tiny(), 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> gpt.checkTensorParallel(GptConfig.tiny(), 8));
        assertTrue(e.getMessage().contains("n_head=4") && e.getMessage().contains("tp=8"), e.getMessage());
    }
}
