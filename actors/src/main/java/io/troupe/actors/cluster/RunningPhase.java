package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.Deadline;
import io.troupe.actors.cluster.CoordinatorActor.EvalDone;
import io.troupe.actors.cluster.CoordinatorActor.StepDone;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.actors.cluster.CoordinatorActor.WorkerFailed;
import java.util.BitSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The coordinator's <b>running</b> phase. The ranks run windows of steps; a step commits when
 * every rank reported it ({@link CommitLedger}); validation after due steps. One thread (the
 * coordinator's); the state it shares with the other phases lives in {@link CoordinatorContext}.
 */
final class RunningPhase {
    private final CoordinatorContext c;

    RunningPhase(CoordinatorContext c) {
        this.c = c;
    }

    /** The ranks run windows of steps; commits by {@link CommitLedger}. */
    Behavior<Command> running() {
        c.phase(JobRun.Phase.RUNNING);
        return c.build(c.common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, c::refuseBusy)
            .onMessage(StepDone.class, c.guard(this::onStepDone))
            .onMessage(EvalDone.class, c.guard(this::onEvalDone))
            .onMessage(WorkerFailed.class, c.guard(c::onWorkerFailed))
            .onMessage(Deadline.class, c.guard(c::onDeadline)));
    }

    /** Starts the ranks on the steps up to the next boundary (validation, checkpoint or the end). */
    Behavior<Command> runWindow() {
        JobRun r = c.run;
        long from = r.committed();
        long until = from + 1;
        while (until < r.spec().train().steps() && !r.spec().train().evalDue(until)
            && !r.spec().train().checkpointDue(until)) {
            until++;
        }
        r.windowEnd = until;
        io.troupe.actors.trace.TraceWindow trace = r.request.traceWindow();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            w.tell(new WorkerActor.RunSteps(r.identity, from, until, trace.first() - 1, trace.last() - 1));
        }
        r.lastCommitNs = System.nanoTime();
        beginStep();
        return running();
    }

    private void beginStep() {
        JobRun r = c.run;
        if (r.request.traceWindow().contains(r.committed() + 1)) {
            r.ledger.traceCurrent();
        }
        c.startDeadline("compute");
    }

    private Behavior<Command> onStepDone(StepDone m) {
        JobRun r = c.run;
        if (!r.identity.equals(m.job())) {
            return Behaviors.same();
        }
        return onCommitted(r.ledger.offer(m));
    }

    private Behavior<Command> onCommitted(CommitLedger.Committed done) {
        if (done == null) {
            return Behaviors.same();
        }
        JobRun r = c.run;
        long now = System.nanoTime();
        r.lastStepMs = (now - r.lastCommitNs) / 1e6;
        r.lastCommitNs = now;
        r.lastCommitted = done;
        if (r.snapshotsEnabled) {
            // the ranks may now overwrite their snapshots of older steps (they wait for this one step behind)
            for (ActorRef<WorkerActor.Command> w : r.ranks) {
                w.tell(new WorkerActor.Committed(r.identity, r.committed()));
            }
        }
        if (r.faultNs != 0) {
            double ms = (now - r.faultNs) / 1e6;
            c.ctx.getLog().warn("{} committed step {} {} ms after the fault", r.identity, r.committed(), (long) ms);
            r.tell(new JobEvent.Recovered(r.identity.epoch(), r.current.layout(), r.restoredStep, r.committed(), ms));
            r.faultNs = 0;
        }
        return afterCommit();
    }

    /** The committed step's validation when due, then its report, checkpoint or the next window. */
    private Behavior<Command> afterCommit() {
        JobRun r = c.run;
        if (r.spec().train().evalDue(r.committed())) {
            r.evaluating = new BitSet();
            for (int rank = 0; rank < r.ranks.size(); rank++) {
                if (r.spec().layout().dpIndex(rank) == 0) {
                    r.ranks.get(rank).tell(new WorkerActor.Evaluate(r.identity, r.committed(),
                        r.spec().train().evalBatches()));
                } else {
                    r.evaluating.set(rank);
                }
            }
            r.valLoss = Double.NaN;
            c.startDeadline("validation");
            return Behaviors.same();
        }
        r.valLoss = Double.NaN;
        return reportStep();
    }

    private Behavior<Command> onEvalDone(EvalDone m) {
        JobRun r = c.run;
        if (!r.identity.equals(m.job()) || r.evaluating == null || m.step() != r.committed()) {
            return Behaviors.same();
        }
        r.evaluating.set(m.rank());
        if (!Double.isNaN(m.loss())) {
            r.valLoss = m.loss();
            r.lastValLoss = m.loss();
        }
        if (r.evaluating.cardinality() < r.ranks.size()) {
            return Behaviors.same();
        }
        r.evaluating = null;
        return reportStep();
    }

    /** Tells the submitter about the committed step (once per step, replays included), then checkpoints or goes on. */
    private Behavior<Command> reportStep() {
        JobRun r = c.run;
        CommitLedger.Committed done = r.lastCommitted;
        if (done.step() + 1 > r.reportedUpTo) {
            double tokens = (double) r.spec().train().batchSize() * r.spec().train().model().seqLen();
            r.tell(new JobEvent.StepCompleted(r.committed(), r.spec().train().steps(), done.loss(), r.valLoss,
                done.gradNorm(), done.lr(), r.lastStepMs, tokens / (r.lastStepMs / 1e3), done.bubble(),
                done.allReduceMs(), done.memBytes() / (1024.0 * 1024.0), done.gradBytesSent()));
            r.reportedUpTo = done.step() + 1;
        }
        r.lastLoss = done.loss();
        if (done.traces().length > 0) {
            String[] names = new String[r.ranks.size()];
            for (int rank = 0; rank < names.length; rank++) {
                names[rank] = "rank " + rank + " (dp" + r.spec().layout().dpIndex(rank) + " pp"
                    + r.spec().layout().ppIndex(rank) + ")";
            }
            r.tell(new JobEvent.StepTrace(r.committed(), "Troupe " + r.spec().layout() + " " + r.spec().schedule()
                + ", m=" + r.spec().microbatches() + ", step " + r.committed(), names, done.traces()));
        }
        if (r.spec().train().checkpointDue(r.committed())) {
            return c.committing();
        }
        return nextOrFinish();
    }

    /**
     * Every rank is ready on the restored step: first the work that step still owes, when the fault
     * came between its commit and the end of that work (its validation, its report, its checkpoint:
     * the restore from memory is of the committed step, so nothing else would do it), then the next
     * window or the end.
     */
    Behavior<Command> resume() {
        JobRun r = c.run;
        CommitLedger.Committed last = r.lastCommitted;
        if (last != null && last.step() + 1 == r.committed() && r.reportedUpTo < r.committed()) {
            return afterCommit();
        }
        if (r.committed() > r.record.lastCommittedStep() && r.spec().train().checkpointDue(r.committed())) {
            return c.committing();
        }
        return nextOrFinish();
    }

    Behavior<Command> nextOrFinish() {
        JobRun r = c.run;
        if (r.committed() >= r.spec().train().steps()) {
            return c.finishJob();
        }
        if (r.committed() < r.windowEnd) {
            // the ranks already ran this step: count the reports that overtook the commit
            beginStep();
            CommitLedger.Committed done = r.ledger.drainEarly();
            return done != null ? onCommitted(done) : running();
        }
        return runWindow();
    }
}
