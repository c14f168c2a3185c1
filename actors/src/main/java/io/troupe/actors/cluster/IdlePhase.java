package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.RecoveryTimer;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.actors.cluster.CoordinatorActor.WorkerInfo;
import java.nio.file.Path;
import java.time.Duration;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The coordinator's <b>idle</b> phase. No job: takes a submission, or adopts the job a worker
 * still holds (this incarnation replaced one whose node died). One thread (the coordinator's); the
 * state it shares with the other phases lives in {@link CoordinatorContext}.
 */
final class IdlePhase {
    private final CoordinatorContext c;

    IdlePhase(CoordinatorContext c) {
        this.c = c;
    }

    /** No job: takes a submission or adopts the job a worker still holds. */
    Behavior<Command> idle() {
        c.phase(JobRun.Phase.IDLE);
        return c.build(c.common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, c.guard(this::onSubmit))
            .onMessage(RecoveryTimer.class, t -> t.what().equals(Submissions.SETTLE) ? c.submissions.settleWaitOver()
                : Behaviors.same()));
    }

    /**
     * Takes a submission: the submitter (and observer) hear {@link JobEvent.Accepted} once its record is written,
     * then the job gathers its workers. A repeat of a submission this incarnation already answered with its end
     * gets that end again ({@link Submissions#answeredRepeat}).
     */
    private Behavior<Command> onSubmit(SubmitJob m) {
        if (c.submissions.answeredRepeat(m)) {
            return Behaviors.same();
        }
        if (!c.submissions.knowsEveryWorker()) {
            c.submissions.hold(m);                 // a worker not yet described may hold a job to carry on
            return Behaviors.same();
        }
        Submissions.Found orphan = c.submissions.orphanedRecordOf(m);
        if (orphan != null) {
            return carryOnOrphan(m, orphan);
        }
        JobRun r;
        try {
            r = JobRun.submitted(m.job(), m.replyTo(), m.observer(), c.settings, c.highestEpoch + 1,
                ActorRefResolver.get(c.ctx.getSystem()));
        } catch (RuntimeException e) {
            JobEvent.Failed refused = new JobEvent.Failed("job refused before any work: " + e.getMessage(), 0, 0);
            m.replyTo().tell(refused);
            if (m.observer() != null) {
                m.observer().tell(refused);
            }
            c.submissions.answered(c.submissions.serialized(m.replyTo()), "", 0, refused);
            return Behaviors.same();
        }
        c.highestEpoch = r.identity.epoch();
        c.run = r;
        // what a node's direct memory can give snapshots changes between jobs (a job's slots, a serving process,
        // the data plane's buffers): the first epoch is planned with each worker's memory as it is now
        for (org.apache.pekko.actor.typed.ActorRef<WorkerActor.Command> w : c.members.usable()) {
            r.describing.add(w);
            w.tell(new WorkerActor.Describe(c.ctx.getSelf()));
        }
        c.writeRecord(r);
        r.tell(new JobEvent.Accepted(r.identity.idHex(), r.identity.epoch(), false));
        c.ctx.getLog().info("{} submitted: layout {} schedule {}, waiting for {} workers ({} known), record {}",
            r.identity, r.request.layout(), r.request.schedule(), r.plan.worldSize(), c.members.size(), r.recordDir);
        c.timers.startSingleTimer("gather", new RecoveryTimer(r.identity, "gather"),
            Duration.ofMillis(r.request.stepTimeoutMs()));
        return c.gathering();
    }

    /** A worker holds a job this incarnation does not know: read its record and carry it on. */
    Behavior<Command> adopt(WorkerInfo m) {
        JobRecord rec;
        try {
            rec = JobRecord.read(Path.of(m.recordDir()));
        } catch (RuntimeException e) {
            c.ctx.getLog().error("cannot adopt {}: {}", m.holds(), e.getMessage());
            return Behaviors.same();
        }
        if (rec == null || rec.state() != JobRecord.State.RUNNING || rec.identity().jobId() != m.holds().jobId()) {
            return Behaviors.same();
        }
        c.ctx.getLog().warn("adopting {} from {} (new coordinator incarnation)", rec.identity(), m.recordDir());
        return carryOn(rec, Path.of(m.recordDir()), "", "coordinator incarnation lost", false);
    }

    /**
     * The repeated submission ({@link TroupeNode#SUBMIT_WATCH}) of a job whose record says it runs, though no worker of
     * this incarnation holds it: every node that ran it was lost while its submitter followed it (the whole cluster
     * stopped, or started again on a new build). It is carried on from its record as a job a worker holds is: a fault
     * unless the record holds a hand-over (the cluster was stopped cleanly), restored from its last disk checkpoint (no
     * node kept a snapshot), its submitter told as in any recovery. The repeat's observer, on a node of this cluster,
     * becomes the job's (the record's was on a node gone).
     */
    private Behavior<Command> carryOnOrphan(SubmitJob m, Submissions.Found orphan) {
        JobRecord rec = orphan.record().withObserver(m.observer() == null ? ""
            : c.submissions.serialized(m.observer()));
        c.ctx.getLog().warn("carrying on {} from its record in {}: its submitter still follows it and no worker holds"
            + " it (every node that ran it was lost)", rec.identity(), orphan.dir());
        return carryOn(rec, orphan.dir(), ", and no node has held the job since",
            "no node holds the job (every node that ran it was lost)", true);
    }

    /**
     * Carries {@code rec} (read from {@code dir}) on in this incarnation: re-plans once every listed worker quiesced,
     * as a hand-over (counted as nothing) when the record holds one ({@code afterHandover} added to its reason), else
     * as a fault ({@code lost} naming what was lost). With {@code gather} (every node that ran the job was lost: its
     * cluster is coming back) the re-plan first waits, up to the job's step timeout as a new job's gathering does, for
     * the workers of the layout the job asked for, rather than shrink it onto the first nodes back.
     */
    private Behavior<Command> carryOn(JobRecord rec, Path dir, String afterHandover, String lost, boolean gather) {
        c.run = JobRun.adopted(rec.withHandover(""), dir, c.settings, ActorRefResolver.get(c.ctx.getSystem()));
        if (gather) {
            c.run.fullLayoutUntilNs = System.nanoTime()
                + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(rec.spec().stepTimeoutMs());
        }
        c.run.adopted = true; // workers are still being described: re-plan once every listed one quiesced
        c.run.inherited = true; // the epoch it ended is learned from the workers' reports
        if (!rec.handover().isEmpty()) {
            // the coordinator on a node that left gracefully handed the job over: its departure is recorded already
            return c.replanning("the coordinator on " + rec.handover() + " handed the job over as its node left the"
                + " cluster" + afterHandover + "; " + c.ctx.getSystem().address() + " carries the job on from its"
                + " record", RecoveringPhase.Cause.HANDOVER);
        }
        return c.recovering(lost + "; " + c.ctx.getSystem().address() + " carries the job on from its record");
    }
}
