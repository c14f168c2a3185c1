package io.troupe.actors.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.cluster.JobRequest;
import org.junit.jupiter.api.Test;

/** The builder's memory options: defaults from reference.conf, carried by the request, bad values refused by name. */
class TrainingJobMemoryTest {
    @Test
    void shouldDefaultFromReferenceConfAndCarryTheOptions() {
        JobRequest plain = TrainingJob.builder().model("tiny").layout("2x1").build().request();
        assertEquals(0, plain.zero());
        assertEquals("none", plain.recompute());
        assertEquals("none", plain.gradCompression());
        JobRequest set = TrainingJob.builder().model("tiny").layout("2x1").zero(2)
            .recompute("selective").build().request();
        assertEquals(2, set.zero());
        assertEquals("selective", set.recompute());
        assertEquals(2, set.withLayout("4x1", 1).zero(), "a re-plan keeps the zero stage");
    }

    @Test
    void shouldRefuseBadValuesNamingThem() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
            () -> TrainingJob.builder().zero(5).build());
        assertTrue(zero.getMessage().contains("unknown zero stage 5"), zero.getMessage());
        IllegalArgumentException mode = assertThrows(IllegalArgumentException.class,
            () -> TrainingJob.builder().recompute("some").build());
        assertTrue(mode.getMessage().contains("'some'"), mode.getMessage());
        IllegalArgumentException both = assertThrows(IllegalArgumentException.class,
            () -> TrainingJob.builder().layout("2x1").zero(1).gradCompression("int8-ef").build());
        assertTrue(both.getMessage().contains("zero=1"), both.getMessage());
        // Zero with tp > 1, and bf16 under zero 1 and 2, run on both engines.
        assertEquals(1, TrainingJob.builder().model("tiny").layout("2x1x2").zero(1).build().request().zero());
        assertEquals("bf16", TrainingJob.builder().model("tiny").layout("2x1").zero(2).gradCompression("bf16").build()
            .request().gradCompression());
    }
}
