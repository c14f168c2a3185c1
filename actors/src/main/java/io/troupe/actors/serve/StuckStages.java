package io.troupe.actors.serve;

/**
 * When a served pipeline's stage counts as stuck ({@code troupe.serve.stage-link.step-timeout}): a stage
 * host whose stage thread stays inside one step keeps answering heartbeats, so silence never finds it. Two
 * rules find it, each giving the reason the pipeline is down (the host, the stage, the epoch, how long), and
 * each marking the host {@link StagePlacement#stuck stuck}, so it takes no stage until its answers say that
 * step ended:
 *
 * <ul>
 *   <li>a heartbeat answer of the host of a stage of the wired epoch says a stage thread of it has been
 *       inside one step for longer than the step timeout ({@link #answered});
 *   <li>the backstop: a step sent down the pipeline has had no answer for the step timeout and a loss timeout
 *       more ({@link #overdue}), by when a host stuck in that step has said so, or gone silent and been lost:
 *       a stage stuck where its host cannot tell (its receiver, a frame or an answer gone missing). The stage
 *       whose host last said it was inside a step the longest is taken for the stuck one; when no host says it
 *       is inside a step, none is marked and the pipeline is wired again as it was.
 * </ul>
 *
 * <p>Times are {@link System#nanoTime()} values passed in, so the rules are pure functions of what was heard
 * and when. Called from one thread (the server's link actor).
 */
final class StuckStages {
    private final StagePlacement placement;

    /** The rules over {@code placement}'s hosts, its step timeout and its loss timeout. */
    StuckStages(StagePlacement placement) {
        this.placement = placement;
    }

    /**
     * The host at {@code slot}, holding stage {@code stage} of the wired {@code epoch}, answered at {@code now}
     * that a stage thread of it has been inside its current step for {@code stepNs}.
     *
     * @return why the pipeline is down when that is past the step timeout (the host is marked stuck), or null
     */
    String answered(int stage, int slot, long epoch, long stepNs, long now) {
        long stepTimeoutNs = placement.stepTimeoutNs();
        if (stepNs <= stepTimeoutNs) {
            return null;
        }
        placement.stuck(slot, now);
        return stuckHost(stage, slot, epoch) + ": its stage thread has been inside one step for " + ms(stepNs)
            + " ms, past the step timeout of " + ms(stepTimeoutNs) + " ms";
    }

    /**
     * The backstop: step {@code step} of {@code epoch} was sent to stage 1 at {@code sentNs} and is unanswered
     * at {@code now}; {@code place[g]} is the slot of the host of stage g (index 0 unused).
     *
     * @return why the pipeline is down when it has waited longer than the step timeout and the loss timeout (the
     *         host taken for the stuck one, if any, is marked stuck), or null
     */
    String overdue(long step, long sentNs, int[] place, long epoch, long now) {
        long waited = now - sentNs;
        long stepTimeoutNs = placement.stepTimeoutNs();
        long lossNs = placement.lossNs();
        if (waited <= stepTimeoutNs + lossNs) {
            return null;
        }
        String unanswered = "step " + step + " of epoch " + epoch + " was sent down the pipeline " + ms(waited)
            + " ms ago and is unanswered (step timeout " + ms(stepTimeoutNs) + " ms, loss timeout " + ms(lossNs)
            + " ms)";
        int stuck = -1;
        long longest = 0;
        for (int g = 1; g < place.length; g++) {
            long ns = placement.stepNs(place[g]);
            if (ns > longest) {
                longest = ns;
                stuck = g;
            }
        }
        if (stuck < 0) {
            return unanswered + "; no stage host says it is inside a step (a frame or an answer went missing)";
        }
        placement.stuck(place[stuck], now);
        return stuckHost(stuck, place[stuck], epoch) + ": " + unanswered + ", and its stage thread was inside one"
            + " step for " + ms(longest) + " ms at its last heartbeat";
    }

    private String stuckHost(int stage, int slot, long epoch) {
        return "the stage host of stage " + stage + " at " + placement.host(slot) + " is stuck (epoch " + epoch + ")";
    }

    private static long ms(long ns) {
        return ns / 1_000_000;
    }
}
