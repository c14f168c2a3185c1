package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.Quiesced;
import io.troupe.actors.cluster.CoordinatorActor.RecoveryTimer;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The coordinator's <b>recovering</b> phase. After a fault (or to grow back at a commit): the
 * epoch is raised and aborted everywhere, the workers quiesce, a layout is chosen from those left
 * ({@link LayoutPlanner}) after a back-off, then gathering restores the last commit on every rank;
 * past {@code max-restarts} within {@code restart-window} ({@link RestartBudget}) the job fails listing every
 * fault. One thread (the coordinator's); the state it shares with the other phases lives in {@link CoordinatorContext}.
 */
final class RecoveringPhase {
    private final CoordinatorContext c;

    RecoveringPhase(CoordinatorContext c) {
        this.c = c;
    }

    /** Why an epoch ends to re-plan, which decides what is recorded, counted and told. */
    enum Cause {
        /** A fault: recorded, counted against the budget by {@link RestartBudget}, the submitter told. */
        FAULT,
        /**
         * A member that left the cluster gracefully took ranks with it: recorded as planned (counted only when the
         * job makes no progress after it), the submitter told.
         */
        DEPARTURE,
        /**
         * A new coordinator incarnation takes over the job of one whose node left gracefully (its record says so):
         * the departure is already recorded, nothing more is; the submitter is told.
         */
        HANDOVER,
        /** Growing back to the requested layout at a commit: nothing lost, nothing recorded or told. */
        GROW_BACK
    }

    /**
     * A fault ended the epoch: record it, raise the epoch, abort everywhere, and re-plan once the
     * workers quiesced and the back-off passed (or fail past the retry budget).
     */
    Behavior<Command> recovering(String reason) {
        return replanning(reason, Cause.FAULT);
    }

    /**
     * Ends the epoch to re-plan, after a fault, a member's planned departure, a coordinator's hand-over, or to grow
     * back to the requested layout at a commit ({@link Cause}).
     */
    Behavior<Command> replanning(String reason, Cause cause) {
        JobRun r = c.run;
        c.phase(JobRun.Phase.RECOVERING);
        c.timers.cancel(CoordinatorContext.DEADLINE);
        if (cause == Cause.GROW_BACK) {
            c.ctx.getLog().warn("{}: re-planning at step {}: {}", r.identity, r.committed(), reason);
        } else {
            c.ctx.getLog().warn("{}: {} in step {}: {}", r.identity, cause == Cause.FAULT ? "fault"
                : cause == Cause.DEPARTURE ? "planned departure" : "hand-over", r.committed(), reason);
            r.faultNs = System.nanoTime();
            Behavior<Command> failed = cause == Cause.HANDOVER ? told(r, reason, true)
                : countFault(r, reason, cause == Cause.DEPARTURE);
            if (failed != null) {
                return failed;
            }
        }
        r.restoredStep = r.record.lastCommittedStep();
        c.snapshots.epochEnded(r);
        r.identity = r.identity.atEpoch(Math.max(r.identity.epoch(), c.highestEpoch) + 1);
        c.highestEpoch = r.identity.epoch();
        r.record = r.record.withEpoch(r.identity);
        c.writeRecord(r);
        r.quiesced.clear();
        if (!r.ranks.isEmpty()) {
            r.lastRanks = r.ranks;
        }
        r.ranks = List.of();
        for (ActorRef<WorkerActor.Command> w : c.members.usable()) {
            w.tell(new WorkerActor.Abort(r.identity, reason, c.ctx.getSelf()));
        }
        r.backoffDone = false;
        c.timers.cancel("regather");             // each recovery waits for workers for a regather timeout of its own
        c.timers.startSingleTimer("backoff", new RecoveryTimer(r.identity, "backoff"),
            cause == Cause.GROW_BACK ? Duration.ZERO
                : c.settings.backoffBefore(c.settings.restartsCounted(r.record, System.currentTimeMillis())));
        r.quiesceExpired = false;
        c.timers.startSingleTimer("quiesce", new RecoveryTimer(r.identity, "quiesce"), c.settings.quiesceTimeout());
        return c.build(c.common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, c::refuseBusy)
            .onMessage(Quiesced.class, c.guard(this::onQuiesced))
            .onMessage(RecoveryTimer.class, c.guard(this::onRecoveryTimer)));
    }

    /**
     * A node that hosted ranks of the epoch this recovery ended, and answered its abort, was lost during the recovery
     * (its back-off, its quiesce wait, or a wait for workers): a fault of its own, as it would be had it come after
     * the re-plan, so it is recorded with its time, the submitter is told, and it counts against
     * {@code max-restarts}. The recovery in progress takes it in (its re-plan leaves the node out): no further epoch.
     * A node that left gracefully is recorded as a {@code planned} departure ({@link RestartBudget}).
     *
     * @return null while the job goes on, else the behavior after it failed past the budget
     */
    Behavior<Command> faultDuringRecovery(String reason, boolean planned) {
        JobRun r = c.run;
        c.ctx.getLog().warn("{}: {} during the recovery: {}", r.identity, planned ? "planned departure" : "fault",
            reason);
        Behavior<Command> failed = countFault(r, reason, planned);
        if (failed == null) {
            c.writeRecord(r);
        }
        return failed;
    }

    /**
     * Adds a fault (or a {@code planned} departure) to the job's record and counts the record against {@code
     * max-restarts}: past the budget the job fails, listing every fault (the behavior after that is returned); within
     * it the submitter is told (null returned). The caller writes the record.
     */
    private Behavior<Command> countFault(JobRun r, String reason, boolean planned) {
        long now = System.currentTimeMillis();
        r.record = r.record.withFault(new JobRecord.Fault(r.identity.epoch(), now, r.committed(), reason, planned));
        int counted = c.settings.restartsCounted(r.record, now);
        if (counted > c.settings.maxRestarts()) {
            return c.failJob("gave up after " + (counted - 1) + " restarts (troupe.recovery.max-restarts="
                + c.settings.maxRestarts() + ", restart-window=" + windowText(c.settings.restartWindow())
                + "); faults: " + r.record.faults());
        }
        return told(r, reason, planned);
    }

    /** Tells the submitter the job is recovering ({@code planned}: not from a fault); null: the job goes on. */
    private static Behavior<Command> told(JobRun r, String reason, boolean planned) {
        r.tell(new JobEvent.Recovering(r.identity.epoch(), reason, r.record.lastCommittedStep(),
            r.record.restarts(), planned));
        return null;
    }

    /** A restart window as reference.conf writes it: {@code off}, or the duration in the largest whole unit. */
    static String windowText(Duration window) {
        if (window.isZero()) {
            return "off";
        }
        long ms = window.toMillis();
        return ms % 3_600_000 == 0 ? ms / 3_600_000 + "h" : ms % 60_000 == 0 ? ms / 60_000 + "m"
            : ms % 1000 == 0 ? ms / 1000 + "s" : ms + "ms";
    }

    private Behavior<Command> onQuiesced(Quiesced m) {
        JobRun r = c.run;
        if (c.members.contains(m.worker())) {
            if (m.description() != null) {
                c.members.add(m.worker(), m.description()); // its direct memory as it is now, for the re-plan
            }
            r.quiesced.add(m.worker());
            c.snapshots.quiesced(r, m);
        }
        return replanIfSettled(false);
    }

    private Behavior<Command> onRecoveryTimer(RecoveryTimer m) {
        JobRun r = c.run;
        if (!m.job().equals(r.identity)) {
            return Behaviors.same();
        }
        if (m.what().equals("backoff")) {
            r.backoffDone = true;
            return replanIfSettled(false);
        }
        if (m.what().equals("quiesce")) {
            return replanIfSettled(true);
        }
        if (m.what().equals(FULL_LAYOUT)) {
            return replanIfSettled(false);
        }
        if (m.what().equals("regather")) {
            return c.failJob("recovery found too few workers within " + c.settings.regatherTimeout().toSeconds()
                + " s: " + r.planError + (r.lostMembers.isEmpty() ? "" : "; lost: " + r.lostMembers) + "; faults: "
                + r.record.faults());
        }
        return Behaviors.same();
    }

    /** The timer that ends a carried-on job's wait for its requested layout's workers. */
    static final String FULL_LAYOUT = "full-layout";

    /**
     * Whether the re-plan of a job carried on after every node that ran it was lost ({@link JobRun#fullLayoutUntilNs})
     * still waits for the workers of the layout it asked for: fewer than that are {@code available} and its wait has
     * not run out (a timer ends it; each worker back re-checks). Once it ends, the re-plan takes the workers there.
     */
    private boolean awaitingTheFullLayout(JobRun r, int available) {
        if (r.fullLayoutUntilNs == 0) {
            return false;
        }
        long leftNs = r.fullLayoutUntilNs - System.nanoTime();
        int wanted = io.troupe.models.parallel.Layout.parse(r.request.layout(), r.request.virtualStages()).worldSize();
        if (available < wanted && leftNs > 0) {
            if (!c.timers.isTimerActive(FULL_LAYOUT)) {
                c.ctx.getLog().warn("{}: waiting up to {} ms for the {} workers of layout {} ({} here): every node that"
                    + " ran the job was lost, and its cluster is coming back", r.identity, leftNs / 1_000_000, wanted,
                    r.request.layout(), available);
                c.timers.startSingleTimer(FULL_LAYOUT, new RecoveryTimer(r.identity, FULL_LAYOUT),
                    Duration.ofNanos(leftNs));
            }
            return true;
        }
        r.fullLayoutUntilNs = 0;
        c.timers.cancel(FULL_LAYOUT);
        return false;
    }

    /**
     * Re-plans once the back-off passed and every usable worker quiesced (or the quiesce wait ran
     * out: a silent worker is left out): the layout from the quiesced workers, then gathering.
     */
    private Behavior<Command> replanIfSettled(boolean quiesceTimedOut) {
        JobRun r = c.run;
        List<ActorRef<WorkerActor.Command>> usable = c.members.usable();
        // a new incarnation also waits for every worker the registry lists to describe itself
        boolean allQuiet = r.quiesced.containsAll(usable) && (!r.adopted || c.everyListedWorkerDescribed());
        r.quiesceExpired |= quiesceTimedOut;     // kept when it expires during the back-off: no timer is left after
        if (!r.backoffDone || !(allQuiet || r.quiesceExpired)) {
            return Behaviors.same();
        }
        if (c.ownNodeLeaving()) {
            // the singleton is handed over as the node leaves: an epoch planned now would only be aborted by the
            // next coordinator, which then waits for workers still building it (and may leave them out)
            if (!r.leavingNoted) {
                r.leavingNoted = true;
                c.ctx.getLog().warn("{}: not re-planning: this coordinator's node is leaving the cluster; the next"
                    + " coordinator takes the job on from its record", r.identity);
            }
            return Behaviors.same();
        }
        int available = 0;
        for (ActorRef<WorkerActor.Command> w : usable) {
            if (r.quiesced.contains(w)) {
                available++;
            }
        }
        if (awaitingTheFullLayout(r, available)) {
            return Behaviors.same();
        }
        try {
            r.replan(available);
        } catch (IllegalStateException e) {
            r.planError = e.getMessage();
            if (!c.timers.isTimerActive("regather")) {
                c.timers.startSingleTimer("regather", new RecoveryTimer(r.identity, "regather"),
                    c.settings.regatherTimeout());
            }
            return Behaviors.same();
        }
        c.timers.cancel("regather");
        c.timers.cancel("quiesce");
        r.adopted = false;
        c.snapshots.chooseRestore(r);
        c.ctx.getLog().warn("{}: re-planned on {} worker(s): layout {}, {} micro-batches per replica, from step {}",
            r.identity, available, r.current.layout(), r.current.microbatches(), r.restoredStep);
        return c.gathering();
    }
}
