package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.Deadline;
import io.troupe.actors.cluster.CoordinatorActor.Ready;
import io.troupe.actors.cluster.CoordinatorActor.RecoveryTimer;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.actors.cluster.CoordinatorActor.WorkerFailed;
import io.troupe.models.data.DataFingerprint;
import java.nio.file.Path;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The coordinator's <b>gathering</b> phase. Waits for the workers of the epoch's layout, assigns
 * ranks, waits for every Ready, checks that the ranks read the same data, and the data the run trained on
 * ({@link DataAgreement}: the job fails at once when they do not; the first epoch records it as {@code data.json}
 * beside the job record) and the snapshot sizes they reported ({@link SnapshotRestores#built}), and only then tells the
 * submitter the epoch started. One thread (the coordinator's); the state it shares with the other
 * phases lives in {@link CoordinatorContext}.
 */
final class GatheringPhase {
    private final CoordinatorContext c;

    GatheringPhase(CoordinatorContext c) {
        this.c = c;
    }

    /** Waits for the epoch's workers, assigns ranks, waits for every Ready. */
    Behavior<Command> gathering() {
        c.phase(JobRun.Phase.GATHERING);
        Behavior<Command> refused = tryAssign();
        if (refused != null) {
            return refused;
        }
        return c.build(c.common(Behaviors.receive(Command.class))
            .onMessage(SubmitJob.class, c::refuseBusy)
            .onMessage(Ready.class, c.guard(this::onReady))
            .onMessage(WorkerFailed.class, c.guard(c::onWorkerFailed))
            .onMessage(Deadline.class, c.guard(c::onDeadline))
            .onMessage(RecoveryTimer.class, c.guard(this::onGatherTimeout)));
    }

    /**
     * Assigns the epoch's ranks once enough workers are usable.
     *
     * @return null while the job goes on (assigned, or still waiting for workers), else the behavior after the job
     *         was refused before anything was assigned (its snapshots cannot fit under
     *         {@code troupe.recovery.snapshots = on})
     */
    Behavior<Command> tryAssign() {
        JobRun r = c.run;
        if (!r.ranks.isEmpty()) {
            return null;
        }
        List<ActorRef<WorkerActor.Command>> usable = r.candidates(c.members.usable());
        if (usable.size() < r.plan.worldSize()) {
            return null;
        }
        for (ActorRef<WorkerActor.Command> w : usable) {
            if (r.describing.contains(w)) {
                return null;              // its answer brings its direct memory as it is now
            }
        }
        r.describing.clear();
        c.timers.cancel("gather");
        r.ranks = c.snapshots.ranks(r, usable);
        String refused = c.snapshots.decide(r);
        if (refused != null) {
            return c.failJob(refused);
        }
        r.startEpoch();
        SnapshotPlan snapshots = c.snapshots.plan(r);
        r.snapshotsEnabled = snapshots.enabled();
        List<String> endpoints = new java.util.ArrayList<>();
        List<String> control = new java.util.ArrayList<>();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            endpoints.add(c.members.describe(w).dataEndpoint());
            control.add(c.members.describe(w).controlEndpoint());
        }
        for (int rank = 0; rank < r.ranks.size(); rank++) {
            r.ranks.get(rank).tell(new WorkerActor.Assign(r.identity, rank, r.current, endpoints, control,
                c.snapshots.resumeFrom(r), snapshots, c.ctx.getSelf()));
        }
        c.startDeadline("assignment");
        return null;
    }

    private Behavior<Command> onReady(Ready m) {
        JobRun r = c.run;
        if (!r.identity.equals(m.job()) || m.rank() < 0 || m.rank() >= r.ranks.size()) {
            return Behaviors.same();
        }
        r.ready.set(m.rank());
        r.snapshotBytes[m.rank()] = m.snapshotBytes();
        r.dataFingerprints[m.rank()] = m.dataFingerprint();
        if (r.ready.cardinality() < r.ranks.size()) {
            return Behaviors.same();
        }
        List<String> hosts = new java.util.ArrayList<>();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            WorkerDescription d = c.members.describe(w);
            hosts.add(d == null ? w.path().address().toString() : host(d.nodeAddress()));
        }
        String differs = DataAgreement.disagreement(r.current.dataPath(), r.current.dataFingerprint(),
            r.dataFingerprints, hosts);
        if (differs != null) {
            return c.failIncurable(differs);
        }
        String unlike = recordData(r, DataAgreement.agreed(r.current.dataPath(), r.current.dataFingerprint(),
            r.dataFingerprints));
        if (unlike != null) {
            return c.failIncurable(unlike);
        }
        String refused = c.snapshots.built(r);
        if (refused != null) {
            return c.failJob(refused);
        }
        StringBuilder sb = new StringBuilder();
        for (int rank = 0; rank < r.ranks.size(); rank++) {
            WorkerDescription d = c.members.describe(r.ranks.get(rank));
            sb.append(rank == 0 ? "" : ", ").append("rank ").append(rank).append(" -> ")
                .append(d == null ? "?" : d.nodeAddress() + "#" + d.localIndex());
        }
        r.tell(new JobEvent.Started(r.identity.idHex(), r.identity.epoch(), r.ranks.size(), sb.toString(),
            r.snapshotsEnabled ? "on" : "off: " + r.snapshotsOff));
        c.snapshots.started(r);
        if (r.faultNs != 0) {
            c.ctx.getLog().warn("{} resumed from step {} on layout {} ({} ms after the fault)", r.identity,
                r.committed(), r.current.layout(), (System.nanoTime() - r.faultNs) / 1_000_000);
        }
        return c.resume();
    }

    /**
     * Holds the epoch's data ({@code agreed}, null: the ranks did not say) to the data the run trained on: in a later
     * epoch, what its first epoch read; in the first, when the job continues a committed checkpoint ({@code troupe
     * submit --resume}, a job submitted into a checkpoint directory that holds a commit, a job this incarnation
     * adopted), what the run recorded ({@link DataFingerprint#recordIn}: its {@code data.json}). Agreed in the first
     * epoch, the data is recorded as {@code data.json} beside the job record, the run's record of what it trained on
     * wherever its checkpoints are, whoever submitted it and whether or not they hold a copy.
     *
     * @return why the epoch must not step (both fingerprints named), or null
     */
    private String recordData(JobRun r, DataFingerprint agreed) {
        if (agreed == null) {
            return null;
        }
        if (r.data != null) {
            Path json = r.recordDir.resolve(DataFingerprint.FILE_NAME);
            return DataAgreement.differsFromRecord(r.data, "the record " + json, agreed);
        }
        if (!r.record.lastCheckpoint().isEmpty()) {
            Path json;
            DataFingerprint trainedOn;
            try {
                json = recordOf(r.recordDir);
                trainedOn = json == null ? null : DataFingerprint.read(json);
            } catch (RuntimeException e) {
                return "cannot check the data against the run's record of it: " + e.getMessage();
            }
            String unlike = trainedOn == null ? null
                : DataAgreement.differsFromRecord(trainedOn, "the record " + json, agreed);
            if (unlike != null) {
                return unlike;
            }
        }
        try {
            agreed.write(r.recordDir);
        } catch (RuntimeException e) {
            c.ctx.getLog().error("{}: the data the job trains on is not recorded: {}", r.identity, e.getMessage());
        }
        r.data = agreed;
        return null;
    }

    /**
     * The job's record of its data: {@code data.json} beside its {@code job.json}, or, for a run directory's
     * {@code checkpoints/} written before the record moved there, the run directory's own; null when neither. No
     * other directory is looked in: a file of that name elsewhere (a user's own data) is not the run's record.
     */
    private static Path recordOf(Path recordDir) {
        Path here = recordDir.resolve(DataFingerprint.FILE_NAME);
        if (java.nio.file.Files.isRegularFile(here)) {
            return here;
        }
        Path dir = recordDir.toAbsolutePath();
        Path parent = dir.getParent();
        Path run = parent == null || !dir.getFileName().toString().equals("checkpoints") ? null
            : parent.resolve(DataFingerprint.FILE_NAME);
        return run != null && java.nio.file.Files.isRegularFile(run) ? run : null;
    }

    /** A node's address without its incarnation ({@code pekko://troupe@host:port}). */
    private static String host(String nodeAddress) {
        int uid = nodeAddress.indexOf('#');
        return uid < 0 ? nodeAddress : nodeAddress.substring(0, uid);
    }

    private Behavior<Command> onGatherTimeout(RecoveryTimer m) {
        JobRun r = c.run;
        if (!m.job().equals(r.identity) || !r.ranks.isEmpty()) {
            return Behaviors.same();
        }
        int silent = 0;
        for (ActorRef<WorkerActor.Command> w : c.members.usable()) {
            silent += r.describing.contains(w) ? 1 : 0;
        }
        return c.failJob("layout " + r.current.layout() + " needs " + r.plan.worldSize() + " workers, only "
            + c.members.usable().size() + " usable within the gather timeout"
            + (silent == 0 ? "" : " (" + silent + " of them did not describe themselves again since the submission)"));
    }
}
