package io.troupe.actors.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The stage hosts' placement policy on given heartbeat times: moves, damping, refusals, the choice of spare. */
class StagePlacementTest {
    private static final long MS = 1_000_000L;
    private static final long LOSS = 2_000 * MS;
    /** A heartbeat interval: a quarter of the loss timeout, as the server beats. */
    private static final long BEAT = LOSS / 4;
    private static final long T0 = 1_000_000 * MS;
    private static final long STEP_TIMEOUT = 1_000 * MS;

    /** Stages 1 and 2 on slots 0 and 1; slots 2 and 3 spares. */
    private static final int[] START = {0, 0, 1};

    private static StagePlacement placement() {
        return new StagePlacement(List.of("h0:1", "h1:1", "h2:1", "h3:1"), Duration.ofNanos(LOSS),
            Duration.ofNanos(STEP_TIMEOUT));
    }

    /** Slot {@code slot} answers every beat from {@code from} to {@code to}, both included. */
    private static void answers(StagePlacement p, int slot, long from, long to) {
        for (long t = from; t <= to; t += BEAT) {
            p.answered(slot, t, null, 0);
        }
    }

    @Test
    void stagesStayWhereTheyAreWhileTheirHostsAreFit() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 10 * BEAT);
        answers(p, 1, T0, T0 + 10 * BEAT);
        answers(p, 2, T0, T0 + 10 * BEAT);
        assertArrayEquals(START, p.place(START, T0 + 10 * BEAT));
        assertEquals(0, p.moves());
    }

    @Test
    void aFailedHostsStageMovesToASteadySpareAndTheHostIsASpareOnceBack() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 12 * BEAT);
        answers(p, 1, T0, T0 + 4 * BEAT);                 // then silent
        answers(p, 2, T0, T0 + 12 * BEAT);
        long lost = T0 + 12 * BEAT;
        p.failed(1, lost);
        assertTrue(p.unfit(1, lost));
        int[] moved = p.place(START, lost);
        assertArrayEquals(new int[] {0, 0, 2}, moved);
        assertEquals(1, p.moves());
        // the lost host answers again: fit, but it is a spare now, and the stages stay
        answers(p, 1, lost + BEAT, lost + 4 * BEAT);
        assertFalse(p.unfit(1, lost + 4 * BEAT));
        assertArrayEquals(moved, p.place(moved, lost + 4 * BEAT));
        assertEquals(1, p.moves());
    }

    @Test
    void withNoSteadySpareTheStageWaitsForItsHostAndARetryLooksAgain() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 20 * BEAT);
        long lost = T0 + 8 * BEAT;
        p.failed(1, lost);
        // slot 2 started answering a beat before the loss: not yet steady for the loss timeout
        answers(p, 2, lost - BEAT, lost);
        assertFalse(p.steady(2, lost));
        assertArrayEquals(START, p.place(START, lost));
        assertEquals(0, p.moves());
        // a retry once it has answered for the whole loss timeout moves the stage
        long retry = lost - BEAT + LOSS;
        answers(p, 2, lost + BEAT, retry);
        assertTrue(p.steady(2, retry));
        assertArrayEquals(new int[] {0, 0, 2}, p.place(START, retry));
        assertEquals(1, p.moves());
    }

    @Test
    void aSpareThatFlapsFasterThanTheLossTimeoutNeverTakesAStage() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 40 * BEAT);
        p.failed(1, T0);
        // up for a second, gone for one and a half: every run of answers is shorter than the loss timeout
        long t = T0;
        for (int round = 0; round < 8; round++) {
            answers(p, 2, t, t + 2 * BEAT);
            long end = t + 2 * BEAT;
            assertFalse(p.steady(2, end), "round " + round);
            assertArrayEquals(START, p.place(START, end), "round " + round);
            t = end + 3 * BEAT;
        }
        assertEquals(0, p.moves());
    }

    @Test
    void aSpareThatAnswersItsQueuedHeartbeatsAndIsPausedAgainIsNotTakenForAlive() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 40 * BEAT);
        answers(p, 2, T0, T0 + 8 * BEAT);                // steady for two loss timeouts
        assertTrue(p.steady(2, T0 + 8 * BEAT));
        // paused for 3 s, continued: the four heartbeats queued meanwhile are answered at once
        long woke = T0 + 8 * BEAT + 3_000 * MS;
        for (int i = 0; i < 4; i++) {
            p.answered(2, woke + i * MS, null, 0);
        }
        long last = woke + 3 * MS;
        assertTrue(p.answering(2, last), "it answers, and /health says so");
        assertFalse(p.steady(2, last), "a burst after a gap is the start of a new run, not a steady host");
        // paused again at once; stage 2's host is lost a beat later
        long lost = last + BEAT;
        p.failed(1, lost);
        assertArrayEquals(START, p.place(START, lost));
        // still paused past half the loss timeout: not steady however long its earlier run was
        assertFalse(p.steady(2, last + LOSS / 2 + MS));
        assertEquals(0, p.moves());
    }

    @Test
    void aHostThatRefusedALoadIsUnfitForTheLossTimeout() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 20 * BEAT);
        answers(p, 1, T0, T0 + 20 * BEAT);
        answers(p, 2, T0, T0 + 20 * BEAT);
        answers(p, 3, T0, T0 + 20 * BEAT);
        long now = T0 + 20 * BEAT;
        p.refused(1, now - BEAT);                        // stage 2's host refused: it moves
        p.refused(2, now - BEAT);                        // and not to a spare that refused too
        assertTrue(p.unfit(1, now));
        assertArrayEquals(new int[] {0, 0, 3}, p.place(START, now));
        assertFalse(p.unfit(2, now - BEAT + LOSS), "a refusal counts for the loss timeout only");
    }

    @Test
    void aSpareThatSaysItWouldRefuseTheLoadIsPassedOverUntilItWouldNot() {
        StagePlacement p = placement();
        long now = T0 + 20 * BEAT;
        answers(p, 0, T0, now);
        answers(p, 2, T0, now - BEAT);
        p.answered(2, now, "its checkpoint /c is 'small step 4', the server's is 'small step 5'", 0);
        answers(p, 3, T0, now);
        p.answered(3, now, "it serves stage 1 of the server at pekko://troupe-serve@10.0.0.9:7354", 0);
        assertTrue(p.steady(2, now), "it answers");
        assertTrue(p.unfit(2, now), "but would refuse");
        p.failed(1, now);
        assertArrayEquals(START, p.place(START, now), "no spare would take it: the stage waits");
        assertTrue(p.refusal(2).contains("small step 4"), p.refusal(2));
        // its checkpoint is replaced by the server's: the next answer says so, and the stage moves
        p.answered(2, now + BEAT, null, 0);
        assertArrayEquals(new int[] {0, 0, 2}, p.place(START, now + BEAT));
        assertEquals(null, p.refusal(2));
    }

    @Test
    void theSpareThatFailedLongestAgoOrNeverIsTakenFirst() {
        StagePlacement p = placement();
        long now = T0 + 40 * BEAT;
        answers(p, 0, T0, now);
        answers(p, 2, T0 + 21 * BEAT, now);
        answers(p, 3, T0 + 21 * BEAT, now);
        p.failed(2, T0 + 20 * BEAT);
        p.failed(3, T0 + 10 * BEAT);
        p.failed(1, now);
        assertArrayEquals(new int[] {0, 0, 3}, p.place(START, now), "slot 3 failed longer ago");

        StagePlacement q = placement();
        answers(q, 0, T0, now);
        answers(q, 2, T0 + 21 * BEAT, now);
        answers(q, 3, T0, now);
        q.failed(2, T0 + 20 * BEAT);
        q.failed(1, now);
        assertArrayEquals(new int[] {0, 0, 3}, q.place(START, now), "slot 3 never failed");
    }

    @Test
    void twoLostStagesAndOneSpareMoveOneStage() {
        StagePlacement p = placement();
        long now = T0 + 20 * BEAT;
        answers(p, 3, T0, now);
        p.failed(0, now);
        p.failed(1, now);
        int[] placed = p.place(START, now);
        assertArrayEquals(new int[] {0, 3, 1}, placed, "stage 1 takes the only steady spare; stage 2 waits");
        assertEquals(1, p.moves());
    }

    @Test
    void aStuckHostsStageMovesAndTheHostIsPassedOverUntilItsAnswersSayTheStepEnded() {
        StagePlacement p = placement();
        long now = T0 + 20 * BEAT;
        answers(p, 0, T0, now);
        answers(p, 2, T0, now);
        // stage 2's host answers every beat, its stage thread inside one step for longer and longer
        for (long t = T0; t <= now; t += BEAT) {
            p.answered(1, t, null, Math.max(0, t - (now - STEP_TIMEOUT - BEAT)));
        }
        assertTrue(p.answering(1, now) && p.steady(1, now), "it answers steadily");
        assertTrue(p.stuck(1) && p.unfit(1, now), "but its stage is past the step timeout");
        assertTrue(p.refusal(1).contains("stuck") && p.refusal(1).contains("step timeout 1000 ms"), p.refusal(1));
        p.stuck(1, now);
        int[] moved = p.place(START, now);
        assertArrayEquals(new int[] {0, 0, 2}, moved);
        // stage 1's host fails while the stuck host, a spare now, is still inside that step: it is passed over
        p.answered(1, now + BEAT, null, STEP_TIMEOUT + 2 * BEAT);
        p.failed(0, now + BEAT);
        assertTrue(p.unfit(1, now + BEAT));
        assertArrayEquals(moved, p.place(moved, now + BEAT), "stage 1 waits for its host");
        // a step shorter than the time since it was found stuck is a new one: the stuck step ended
        p.answered(1, now + 2 * BEAT, null, BEAT);
        assertFalse(p.stuck(1));
        assertFalse(p.unfit(1, now + 2 * BEAT));
        assertEquals(null, p.refusal(1));
        assertArrayEquals(new int[] {0, 1, 2}, p.place(moved, now + 2 * BEAT), "it takes a stage again");
        assertEquals(2, p.moves());
    }

    @Test
    void aHostFoundStuckStaysStuckUntilAnAnswerSaysItLeftThatStep() {
        StagePlacement p = placement();
        answers(p, 0, T0, T0 + 8 * BEAT);
        long found = T0 + 8 * BEAT;
        // found stuck by the server's backstop before its own answers passed the step timeout
        p.answered(0, found, null, STEP_TIMEOUT - BEAT);
        p.stuck(0, found);
        p.answered(0, found + BEAT, null, STEP_TIMEOUT);
        assertTrue(p.stuck(0), "the same step, a beat on: stuck, though not past the step timeout by its answer");
        p.answered(0, found + 2 * BEAT, null, 0);
        assertFalse(p.stuck(0), "out of every step");
    }

    @Test
    void aLossTimeoutThatIsNotPositiveIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> new StagePlacement(List.of("h:1"), Duration.ZERO, Duration.ofSeconds(30)));
        assertTrue(e.getMessage().contains("loss-timeout"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
            () -> new StagePlacement(List.of("h:1"), Duration.ofSeconds(5), Duration.ofSeconds(-1)));
        assertTrue(e.getMessage().contains("step-timeout=PT-1S"), e.getMessage());
    }
}
