package io.troupe.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The README's Java API example, compiled and run. */
class EmbeddedTrainingExampleTest {

    @Test
    @Timeout(120)
    void trainsAPipelinedGptOnAnEmbeddedCluster() throws Exception {
        // README example begins
        try (Troupe troupe = Troupe.local(2)) {
            TrainingJob job = TrainingJob.builder()
                .model("tiny").layout("1x2").schedule("1f1b")
                .microbatches(2).batchSize(4).steps(8)
                .build();
            JobHandle handle = troupe.submit(job)
                .onEvent(e -> System.out.println("event: " + e));
            JobEvent end = handle.await(Duration.ofMinutes(2));
            // README example ends
            JobEvent.Finished finished = assertInstanceOf(JobEvent.Finished.class, end);
            assertEquals(8, finished.steps());
            assertEquals(8, handle.steps().size());
        }
    }
}
