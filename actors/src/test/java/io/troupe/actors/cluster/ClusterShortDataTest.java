package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.api.JobHandle;
import io.troupe.actors.api.TrainingJob;
import io.troupe.actors.api.Troupe;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job submitted to a cluster whose data (read by each worker, on its own host) is too short for the model's
 * windows fails as each worker wires its epoch, naming the data and the size it needs, before any step is trained,
 * and at once: no restart can cure it, so none is tried.
 */
class ClusterShortDataTest {
    @TempDir
    Path tmp;

    @Test
    @Timeout(120)
    void shouldFailAtWiringNamingTheSplitTooShortBeforeAnyStep() throws Exception {
        Path data = Files.writeString(tmp.resolve("short.txt"), "x".repeat(1024));   // validation: 103 bytes
        try (Troupe troupe = Troupe.local(1)) {
            TrainingJob job = TrainingJob.builder().model("big").layout("1x1").batchSize(2).steps(2)
                .validation(2, 1).data(data.toString()).build();
            JobHandle handle = troupe.submit(job);
            JobEvent.Failed failed = assertInstanceOf(JobEvent.Failed.class, handle.await(Duration.ofSeconds(100)));
            assertTrue(failed.reason().contains("data too short for seq_len=128: " + data + " (val) holds 103 tokens")
                && failed.reason().contains("needs >= 1281 bytes"), failed.reason());
            assertTrue(handle.steps().isEmpty(), "no step trained: " + handle.steps());
            List<JobEvent> events = new CopyOnWriteArrayList<>();
            handle.onEvent(events::add);
            assertTrue(events.stream().noneMatch(e -> e instanceof JobEvent.Recovering),
                "no restart cures it, none is tried: " + events);
        }
    }
}
