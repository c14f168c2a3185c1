package io.troupe.actors.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The coordinator's recovery reasons, as it words them, fall into their kinds. */
@Timeout(10)
class RecoveryCauseTest {

    @Test
    void shouldSortTheCoordinatorsReasonsIntoTheirKinds() {
        assertEquals(RecoveryCause.MEMBER_DOWNED, RecoveryCause.of(
            "member pekko://troupe@10.0.0.2:25520 downed by the downing decision, hosting rank(s) [1, 3]"));
        assertEquals(RecoveryCause.WORKER_LEFT, RecoveryCause.of(
            "worker rank 2 on pekko://troupe@10.0.0.3:25520 left the cluster"));
        assertEquals(RecoveryCause.WORKER_FAILED, RecoveryCause.of("rank 1 failed in step 7: out of memory"));
        assertEquals(RecoveryCause.DEADLINE, RecoveryCause.of(
            "step 9 backward passed its deadline of 30000 ms waiting for rank(s) [0]"));
        assertEquals(RecoveryCause.CHECKPOINT_COMMIT, RecoveryCause.of(
            "checkpoint of step 10 could not be committed: disk full"));
        assertEquals(RecoveryCause.COORDINATOR_LOST, RecoveryCause.of(
            "coordinator incarnation lost; pekko://troupe@10.0.0.4:25520 carries the job on from its record"));
        assertEquals(RecoveryCause.MEMBER_LEFT, RecoveryCause.of(
            "member pekko://troupe@10.0.0.2:25520#77 leaving the cluster, hosting rank(s) [1]"));
        assertEquals(RecoveryCause.COORDINATOR_HANDED_OVER, RecoveryCause.of("the coordinator on "
            + "pekko://troupe@10.0.0.1:25520 handed the job over as its node left the cluster; "
            + "pekko://troupe@10.0.0.4:25520 carries the job on from its record"));
        assertEquals(RecoveryCause.OTHER, RecoveryCause.of("cosmic rays"));
        assertEquals(RecoveryCause.OTHER, RecoveryCause.of(null));
    }
}
