package io.troupe.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.troupe.actors.api.JobEvent;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

/**
 * A followed job's end: {@code --timeout-s} bounds a job nobody stopped; a stop asked for is bounded by its
 * own wait, so a short {@code --timeout-s} does not turn a stop into "the job did not end".
 */
class AwaitEndTest {
    private static final JobEvent CANCELLED = new JobEvent.Failed("cancelled: by the submitter", 4, 2);

    /** Ends only on the {@code endsOn}-th wait (1-based; 0: never), recording each wait's bound. */
    private static ClusterJobs.JobEnd endingOnWait(int endsOn, List<Duration> waits) {
        return timeout -> {
            waits.add(timeout);
            if (waits.size() == endsOn) {
                return CANCELLED;
            }
            throw new TimeoutException("not within " + timeout);
        };
    }

    @Test
    void aStopAskedForBeforeTheTimeoutGetsTheStopsOwnWait() throws Exception {
        List<Duration> waits = new ArrayList<>();
        JobEvent end = ClusterJobs.awaitEnd(endingOnWait(2, waits), Duration.ofSeconds(5), () -> true,
            Duration.ofSeconds(60));
        assertSame(CANCELLED, end);
        assertEquals(List.of(Duration.ofSeconds(5), Duration.ofSeconds(60)), waits);
    }

    @Test
    void withNoStopTheTimeoutIsTheEnd() throws Exception {
        List<Duration> waits = new ArrayList<>();
        assertNull(ClusterJobs.awaitEnd(endingOnWait(2, waits), Duration.ofSeconds(5), () -> false,
            Duration.ofSeconds(60)));
        assertEquals(List.of(Duration.ofSeconds(5)), waits);
    }

    @Test
    void aStopThatNeverEndsIsBoundedToo() throws Exception {
        List<Duration> waits = new ArrayList<>();
        assertNull(ClusterJobs.awaitEnd(endingOnWait(0, waits), Duration.ofSeconds(5), () -> true,
            Duration.ofSeconds(60)));
        assertEquals(2, waits.size());
    }

    @Test
    void anEndWithinTheTimeoutIsReturnedAtOnce() throws Exception {
        List<Duration> waits = new ArrayList<>();
        assertSame(CANCELLED, ClusterJobs.awaitEnd(endingOnWait(1, waits), Duration.ofSeconds(5), () -> true,
            Duration.ofSeconds(60)));
        assertEquals(1, waits.size());
    }
}
