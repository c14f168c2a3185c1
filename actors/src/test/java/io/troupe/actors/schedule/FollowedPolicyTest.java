package io.troupe.actors.schedule;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A tensor-parallel follower runs exactly its leader's actions, in its order, each once its own inputs are here. */
@Timeout(10)
class FollowedPolicyTest {

    @Test
    void shouldRunTheLeadersActionsInItsOrderOnlyOnceTheirInputsArrived() {
        PipelineShape shape = new PipelineShape(2, 1, 3);
        AdaptivePolicy policy = new AdaptivePolicy(shape, mb -> 1, 2, Double.POSITIVE_INFINITY, 0.0);
        // Rank 1 is the last stage: F needs the activation from rank 0; B needs only its own F.
        StagePolicy leader = policy.newStage(1);
        FollowedPolicy follower = policy.newFollower(1);
        List<Action> led = new ArrayList<>();
        List<Action> followed = new ArrayList<>();
        int[] arrivalOrderLeader = {2, 0, 1};
        for (int mb : arrivalOrderLeader) {
            leader.onInputArrived(mb, 0);
        }
        while (!leader.isDone()) {
            Action a = leader.next(0);
            led.add(a);
            leader.onActionFinished(a);
        }
        // The follower's inputs arrive in another order; it must still run the leader's order.
        for (Action a : led) {
            assertTrue(follower.needsLeader());
            follower.follow(a);
            assertFalse(follower.needsLeader());
            if (a.type() == ActionType.F) {
                assertNull(follower.next(0), "F before its input: " + a);
                assertEquals(a, follower.awaited());
                follower.onInputArrived(a.microbatch(), 0);
            }
            Action b = follower.next(0);
            assertEquals(a, b);
            assertNull(follower.next(0), "one action at a time");
            follower.onActionFinished(b);
            followed.add(b);
        }
        assertEquals(led, followed);
        assertTrue(follower.isDone());
        assertEquals(9, led.size(), "3 micro-batches x (F, B, W)");
        assertThrows(IllegalStateException.class, () -> follower.follow(led.get(0)), "more actions than a step has");
    }

    @Test
    void shouldRefuseAFollowerForAFixedOrderSchedule() {
        SchedulePolicy fixed = Schedules.byName("1f1b", 2, 1, 4).asPolicy();
        assertTrue(fixed.fixedOrder());
        assertThrows(UnsupportedOperationException.class, () -> fixed.newFollower(0));
    }
}
