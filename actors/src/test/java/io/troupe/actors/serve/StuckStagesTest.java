package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** When a served pipeline's stage counts as stuck, on given heartbeat answers and step times. */
class StuckStagesTest {
    private static final long MS = 1_000_000L;
    private static final long STEP_TIMEOUT = 1_000 * MS;
    private static final long LOSS = 2_000 * MS;
    private static final long T0 = 1_000_000 * MS;
    private static final List<String> HOSTS = List.of("h0:1", "h1:1", "h2:1");
    /** Stage 1 on slot 0, stage 2 on slot 1; slot 2 a spare. */
    private static final int[] PLACE = {0, 0, 1};

    private final StagePlacement placement = new StagePlacement(HOSTS, Duration.ofNanos(LOSS),
        Duration.ofNanos(STEP_TIMEOUT));
    private final StuckStages stuck = new StuckStages(placement);

    @Test
    void aHostWhoseStageIsInsideOneStepPastTheStepTimeoutIsStuck() {
        assertNull(stuck.answered(2, 1, 7, STEP_TIMEOUT, T0), "at the step timeout: not yet");
        assertFalse(placement.stuck(1));
        String why = stuck.answered(2, 1, 7, STEP_TIMEOUT + 234 * MS, T0);
        assertEquals("the stage host of stage 2 at h1:1 is stuck (epoch 7): its stage thread has been inside one step"
            + " for 1234 ms, past the step timeout of 1000 ms", why);
        assertTrue(placement.stuck(1), "it takes no stage");
    }

    @Test
    void aStepUnansweredPastTheStepAndLossTimeoutsIsPinnedOnTheHostInsideAStepTheLongest() {
        placement.answered(0, T0, null, 5 * MS);
        placement.answered(1, T0, null, 900 * MS);
        placement.answered(2, T0, null, 0);
        long sent = T0 - 950 * MS;
        assertNull(stuck.overdue(42, sent, PLACE, 3, sent + STEP_TIMEOUT + MS), "past the step timeout: the host's own"
            + " answer says whether it is stuck");
        assertNull(stuck.overdue(42, sent, PLACE, 3, sent + STEP_TIMEOUT + LOSS), "at both: not yet");
        String why = stuck.overdue(42, sent, PLACE, 3, sent + STEP_TIMEOUT + LOSS + MS);
        assertEquals("the stage host of stage 2 at h1:1 is stuck (epoch 3): step 42 of epoch 3 was sent down the"
            + " pipeline 3001 ms ago and is unanswered (step timeout 1000 ms, loss timeout 2000 ms), and its stage"
            + " thread was inside one step for 900 ms at its last heartbeat", why);
        assertTrue(placement.stuck(1));
        assertFalse(placement.stuck(0), "only the host inside a step the longest is marked");
    }

    @Test
    void aStepUnansweredWhileNoHostIsInsideAStepMarksNoHost() {
        placement.answered(0, T0, null, 0);
        placement.answered(1, T0, null, 0);
        String why = stuck.overdue(9, T0, PLACE, 4, T0 + 4 * STEP_TIMEOUT);
        assertTrue(why.startsWith("step 9 of epoch 4 was sent down the pipeline 4000 ms ago and is unanswered")
            && why.endsWith("no stage host says it is inside a step (a frame or an answer went missing)"), why);
        assertFalse(placement.stuck(0) || placement.stuck(1));
    }

    @Test
    void aStepTimeoutThatIsNotPositiveIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> new StuckStages(new StagePlacement(HOSTS, Duration.ofNanos(LOSS), Duration.ZERO)));
        assertTrue(e.getMessage().contains("step-timeout=PT0S"), e.getMessage());
    }
}
