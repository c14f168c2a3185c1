package io.troupe.actors.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Why an epoch runs without in-memory snapshots, as the coordinator words it, falls into its kind. */
@Timeout(10)
class SnapshotsOffCauseTest {

    @Test
    void shouldSortTheCoordinatorsReasonsIntoTheirKinds() {
        assertEquals(SnapshotsOffCause.DIRECT_MEMORY, SnapshotsOffCause.of("off: node pekko://troupe@h:1#2 needs 9"
            + " bytes (0.0 MiB) of direct memory for its in-memory snapshot slots, but its limit leaves them 8 bytes"
            + " (0.0 MiB): raise the JVM's -XX:MaxDirectMemorySize (by default the maximum heap) on that node"));
        assertEquals(SnapshotsOffCause.CONFIGURED_OFF, SnapshotsOffCause.of("off: troupe.recovery.snapshots = off"));
        assertEquals(SnapshotsOffCause.OTHER, SnapshotsOffCause.of(
            "off: grad-compression int8-ef (its error-feedback residuals are not in a snapshot)"));
        assertEquals(SnapshotsOffCause.OTHER, SnapshotsOffCause.of(null));
    }
}
