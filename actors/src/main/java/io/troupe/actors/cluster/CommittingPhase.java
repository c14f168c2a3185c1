package io.troupe.actors.cluster;

import io.troupe.actors.cluster.CoordinatorActor.CheckpointWritten;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.Deadline;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.actors.cluster.CoordinatorActor.WorkerFailed;
import java.nio.file.Path;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The coordinator's <b>committing</b> phase. The two-phase checkpoint of the last committed step
 * ({@link ManifestBuilder}); the manifest, then the job record, make it durable. One thread (the
 * coordinator's); the state it shares with the other phases lives in {@link CoordinatorContext}.
 */
final class CommittingPhase {
    private final CoordinatorContext c;

    CommittingPhase(CoordinatorContext c) {
        this.c = c;
    }

    /** The two-phase checkpoint of the last committed step. */
    Behavior<Command> committing() {
        JobRun r = c.run;
        c.phase(JobRun.Phase.COMMITTING);
        r.checkpoint = new ManifestBuilder(r.ranks.size(), r.committed());
        try {
            io.troupe.models.checkpoint.Checkpoints.discardPartial(Path.of(r.request.checkpointDir()), r.committed());
        } catch (io.troupe.models.checkpoint.CheckpointException e) {
            r.checkpoint = null;                 // a fault like a commit that fails: recovered, within max-restarts
            return c.recovering("checkpoint of step " + r.committed() + " could not be started: " + e.getMessage());
        }
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            w.tell(new WorkerActor.WriteCheckpoint(r.identity, r.committed(), r.request.checkpointDir()));
        }
        c.startDeadline("checkpoint");
        return c.build(c.common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, c::refuseBusy)
            .onMessage(CheckpointWritten.class, c.guard(this::onCheckpointWritten))
            .onMessage(WorkerFailed.class, c.guard(c::onWorkerFailed))
            .onMessage(Deadline.class, c.guard(c::onDeadline)));
    }

    private Behavior<Command> onCheckpointWritten(CheckpointWritten m) {
        JobRun r = c.run;
        if (!r.identity.equals(m.job()) || r.checkpoint == null || m.step() != r.checkpoint.step()) {
            return Behaviors.same();
        }
        if (!r.checkpoint.add(m.rank(), m.names(), m.bytes(), m.crcs())) {
            return Behaviors.same();
        }
        var mf = r.checkpoint.manifest(r.request.seed(), r.request.batchSize(), r.current.layout(),
            r.spec().train().model(), r.request.dataPath().isEmpty() ? "built-in Markov corpus" : r.request.dataPath());
        String dir;
        try {
            dir = io.troupe.models.checkpoint.Checkpoints.commit(Path.of(r.request.checkpointDir()), mf,
                mf.files()).toString();
        } catch (io.troupe.models.checkpoint.CheckpointException e) {
            r.checkpoint = null;
            return c.recovering("checkpoint of step " + r.committed() + " could not be committed: " + e.getMessage());
        }
        r.checkpoint = null;
        r.record = r.record.withCommit(r.committed(), dir);
        c.writeRecord(r);
        c.timers.cancel(CoordinatorContext.DEADLINE);
        if (r.committed() < r.spec().train().steps()) {
            LayoutPlanner.Plan full;
            try {
                full = LayoutPlanner.plan(r.request.layout(), r.request.virtualStages(), r.request.microbatches(),
                    c.members.usable().size());
            } catch (IllegalStateException e) {
                // fewer usable workers than one replica: no growing back; a loss recovers
                return c.nextOrFinish();
            }
            if (full.dp() > r.plan.dp()) {
                return c.replanning("grow back to dp " + full.dp() + " (" + c.members.usable().size()
                    + " workers) from the commit of step " + r.committed(),
                    RecoveringPhase.Cause.GROW_BACK);
            }
        }
        return c.nextOrFinish();
    }
}
