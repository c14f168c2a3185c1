package io.troupe.actors.bench;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.bench.TorchBaseline;
import io.troupe.models.gpt.GptConfig;
import java.util.Optional;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The pipeline bench's PyTorch references: shipped beside the classes, run where torch is, refused clearly. */
class PipelineTorchReferenceTest {
    @Test
    @Timeout(10)
    void shouldShipBothScriptsInTheBenchJar() {
        assertNotNull(PipelineTorchReference.class.getResource("/io/troupe/actors/bench/pipeline_torch.py"));
        assertNotNull(PipelineTorchReference.class.getResource("/io/troupe/models/bench/step_torch.py"));
    }

    @Test
    @Timeout(60)
    void shouldNameTheModeItDoesNotKnow() {
        Optional<String> python = TorchBaseline.findPython(null);
        Assumptions.assumeTrue(python.isPresent(), "no python3 with torch here: the references are not run");
        IllegalStateException e = assertThrows(IllegalStateException.class,
            () -> new PipelineTorchReference(python.get()).msPerStep("tp2", GptConfig.tiny(), 8, 2, 2, 1));
        assertTrue(e.getMessage().contains("tp2"), e.getMessage());
    }

    @Test
    @Timeout(300)
    void shouldTimeBothReferencesOnTheTinyModel() {
        Optional<String> python = TorchBaseline.findPython(null);
        Assumptions.assumeTrue(python.isPresent(), "no python3 with torch here: the references are not run");
        PipelineTorchReference ref = new PipelineTorchReference(python.get());
        double pp = ref.msPerStep("pp2", GptConfig.tiny(), 8, 2, 3, 1);
        double dp = ref.msPerStep("dp2", GptConfig.tiny(), 8, 1, 3, 1);
        assertTrue(pp > 0 && pp < 60_000, "pp2 " + pp + " ms");
        assertTrue(dp > 0 && dp < 60_000, "dp2 " + dp + " ms");
    }
}
