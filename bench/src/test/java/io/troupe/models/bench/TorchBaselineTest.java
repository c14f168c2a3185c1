package io.troupe.models.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The step bench's PyTorch baseline: its result line, and finding (or not) an interpreter with torch. */
class TorchBaselineTest {
    @Test
    @Timeout(10)
    void shouldParseTheScriptsResultLine() {
        TorchBaseline.Result r = TorchBaseline.Result.parse(
            "torch=1.13.1 threads=2 blas=libopenblasp-r0.3.21.so ms_per_step=61.957 min=60.306 max=76.815"
                + " cpu_ms_per_step=61.5 loss=5.5780\n");
        assertEquals(new TorchBaseline.Result("1.13.1", 2, "libopenblasp-r0.3.21.so", 61.957, 60.306, 76.815, 61.5), r);
    }

    @Test
    @Timeout(10)
    void shouldNameTheMissingKeyOfABadLine() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> TorchBaseline.Result.parse("torch=1.13.1 threads=1 blas=x min=1 max=2"));
        assertTrue(e.getMessage().contains("ms_per_step"), e.getMessage());
    }

    @Test
    @Timeout(60)
    void shouldFindNoBaselineForNoneOrAnInterpreterThatDoesNotExist() {
        assertTrue(TorchBaseline.find("none").isEmpty());
        assertTrue(TorchBaseline.find("/nonexistent/python3").isEmpty());
    }

    @Test
    @Timeout(10)
    void shouldShipTheReferenceScriptBesideTheClass() {
        assertNotNull(TorchBaseline.class.getResource(TorchBaseline.SCRIPT));
    }
}
