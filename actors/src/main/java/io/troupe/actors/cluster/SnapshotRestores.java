package io.troupe.actors.cluster;

import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The coordinator's side of in-memory snapshots: where a recovery restores from (memory or disk,
 * {@link SnapshotRestorePlanner}) and each epoch's {@link SnapshotPlan}. One thread (the coordinator's).
 */
final class SnapshotRestores {
    private final CoordinatorContext c;

    SnapshotRestores(CoordinatorContext c) {
        this.c = c;
    }

    /** A fault or re-plan ends the epoch: remember what its snapshots can restore. */
    void epochEnded(JobRun r) {
        if (!r.ranks.isEmpty() && r.ledger != null) {
            r.previousRanks = r.ranks;
            r.previousLayout = r.current.layout();
            r.memoryStep = r.committed();
        }
        r.inventories.clear();
        r.assignments.clear();
        r.memoryRestore = null;
    }

    /** A worker confirmed the abort, listing the snapshots it keeps. */
    void quiesced(JobRun r, CoordinatorActor.Quiesced m) {
        if (m.holds().jobId() == r.identity.jobId()) {
            r.inventories.put(m.worker(), m.snapshots());
            r.assignments.put(m.worker(), m);
        }
    }

    /** A worker's failure: when its restore from memory failed, the next restore is from disk. */
    void failed(JobRun r, CoordinatorActor.WorkerFailed m) {
        if (r.memoryRestore != null && m.reason().contains(EpochWiring.MEMORY_RESTORE_FAILED)) {
            r.memoryRefused = "rank " + m.rank() + " " + m.reason();
        }
    }

    /**
     * Restore from memory when the snapshots cover the last committed step on the same layout, else
     * from the disk checkpoint, saying why.
     */
    void chooseRestore(JobRun r) {
        r.memoryRestore = null;
        if (r.inherited) {
            r.inherited = false;
            learnPreviousEpoch(r);
        }
        if (!c.settings.snapshots() || r.memoryStep < 0) {
            return;
        }
        SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> d = r.memoryRefused != null
            ? SnapshotRestorePlanner.Decision.disk(r.memoryRefused)
            : SnapshotRestorePlanner.plan(r.memoryStep, r.record.lastCommittedStep(), r.previousRanks,
                sameLayout(r.current.layout(), r.previousLayout, r.request.virtualStages()),
                r.candidates(c.members.usable()), r.plan.worldSize(), stateClasses(JobSpecs.toSpec(r.current, 1)),
                r.inventories);
        if (d.fromMemory()) {
            r.memoryRestore = d;
            r.restoredStep = d.step();
            c.ctx.getLog().warn("{}: restoring step {} from in-memory snapshots (by rank: holder {}, snapshot of "
                + "rank {})", r.identity, d.step(), java.util.Arrays.toString(d.holderOf()),
                java.util.Arrays.toString(d.sourceOf()));
        } else {
            c.ctx.getLog().warn("{}: restoring from the disk checkpoint of step {}, not from memory: {}", r.identity,
                r.record.lastCommittedStep(), d.reason());
        }
    }

    /**
     * A new coordinator incarnation never saw the epoch its predecessor ran nor what it committed:
     * both are learned from the workers' reports. The epoch is the newest any worker of this job was
     * assigned; its workers by rank and its layout are what they report (a rank whose worker is gone
     * stays empty, to be taken by a replacement); the step to restore is the newest one every rank's
     * snapshot exists for ({@link SnapshotRestorePlanner#newestCovered}), which includes every step
     * the predecessor committed as long as the snapshots of it survived.
     */
    private void learnPreviousEpoch(JobRun r) {
        long epoch = -1;
        String layout = "";
        for (CoordinatorActor.Quiesced q : r.assignments.values()) {
            if (q.rank() >= 0 && !q.layout().isEmpty() && q.holds().epoch() > epoch) {
                epoch = q.holds().epoch();
                layout = q.layout();
            }
        }
        if (epoch < 0) {
            c.ctx.getLog().warn("{}: no worker reports an assignment of this job: restoring from disk", r.identity);
            return;
        }
        io.troupe.models.parallel.Layout l = io.troupe.models.parallel.Layout.parse(layout, r.request.virtualStages());
        List<ActorRef<WorkerActor.Command>> byRank =
            new ArrayList<>(java.util.Collections.nCopies(l.worldSize(), null));
        java.util.Map<ActorRef<WorkerActor.Command>, long[]> held = new java.util.HashMap<>();
        for (CoordinatorActor.Quiesced q : r.assignments.values()) {
            if (q.holds().epoch() == epoch && q.rank() >= 0 && q.rank() < byRank.size() && layout.equals(q.layout())) {
                byRank.set(q.rank(), q.worker());
            }
            held.put(q.worker(), q.snapshots());
        }
        int[] classes = stateClasses(l, JobSpecs.toSpec(r.current, 1).memory().zero() > 0 && l.dp() > 1);
        r.previousRanks = byRank;
        r.previousLayout = layout;
        r.memoryStep = SnapshotRestorePlanner.newestCovered(l.worldSize(), classes, held);
        c.ctx.getLog().warn("{}: the workers held epoch {} on layout {} (ranks {}); the newest step every rank's "
            + "snapshot is held for: {}", r.identity, epoch, layout, describeRanks(byRank),
            r.memoryStep < 0 ? "none" : r.memoryStep);
    }

    private String describeRanks(List<ActorRef<WorkerActor.Command>> byRank) {
        StringBuilder sb = new StringBuilder("[");
        for (int k = 0; k < byRank.size(); k++) {
            WorkerDescription d = byRank.get(k) == null ? null : c.members.describe(byRank.get(k));
            sb.append(k == 0 ? "" : ", ").append(k).append(" -> ")
                .append(byRank.get(k) == null ? "gone" : d == null ? byRank.get(k).path().address() : d.nodeAddress());
        }
        return sb.append(']').toString();
    }

    /**
     * The workers of the next epoch in rank order: those the restore from memory chose (survivors
     * keep their ranks), or, when they are not all usable any more or cannot take snapshots, the
     * first usable ones (and the restore is from disk).
     */
    List<ActorRef<WorkerActor.Command>> ranks(JobRun r, List<ActorRef<WorkerActor.Command>> usable) {
        if (r.memoryRestore != null && (!usable.containsAll(r.memoryRestore.ranks())
            || !snapshotsPossible(r, r.memoryRestore.ranks()))) {
            c.ctx.getLog().warn("{}: a worker holding snapshots left before the assignment; restoring from the disk "
                + "checkpoint", r.identity);
            r.memoryRestore = null;
            r.restoredStep = r.record.lastCommittedStep();
        }
        return r.memoryRestore != null ? r.memoryRestore.ranks() : List.copyOf(usable.subList(0, r.plan.worldSize()));
    }

    /** The checkpoint directory the epoch restores ("" when it restores from memory). */
    String resumeFrom(JobRun r) {
        return r.memoryRestore != null ? "" : r.record.lastCheckpoint();
    }

    /**
     * Every rank is Ready: the restore worked (from memory, or from disk after memory was refused),
     * so the next fault may use memory again; a refusal holds for the one restore after it.
     */
    void started(JobRun r) {
        r.memoryRefused = null;
    }

    /**
     * Decides, once the epoch's ranks are chosen and before it starts, whether it keeps snapshots: not when
     * {@code troupe.recovery.snapshots} is off or the job cannot take them ({@link #offReason}), nor when a
     * node's direct memory cannot hold its slots ({@link SnapshotMemory}, the snapshot sizes predicted from the
     * built-in GPT's parameter layout; checked at every epoch, as a new layout or buddy may give a node more to
     * hold). Under {@link SnapshotMode#AUTO} such an epoch runs without snapshots, a WARNING naming the node, the
     * bytes, its limit and the flag; under {@link SnapshotMode#ON} the job is refused. The reason is kept in
     * {@link JobRun#snapshotsOff} for the job's status; a restore from memory chosen for an epoch without
     * snapshots is one from disk. Stage modules whose sizes cannot be predicted here are checked once the
     * workers built them ({@link #built}).
     *
     * @return null when the epoch may start, else why the job is refused (nothing has been assigned)
     */
    String decide(JobRun r) {
        r.snapshotsOff = offReason(r, r.ranks);
        if (r.snapshotsOff.isEmpty()) {
            io.troupe.actors.engine.PipelineJobSpec spec = JobSpecs.toSpec(r.current, 1);
            long[] predicted = SnapshotMemory.snapshotBytes(spec);
            if (predicted == null) {
                c.ctx.getLog().info("{}: snapshot sizes of stage modules {} are not known before the workers build "
                    + "them: direct memory is checked when they report them", r.identity, spec.moduleFactory());
            }
            String shortfall = predicted == null ? "" : memoryShortfall(r, spec, predicted);
            if (!shortfall.isEmpty() && c.settings.snapshotMode() == SnapshotMode.ON) {
                return refusal(shortfall);
            }
            if (!shortfall.isEmpty()) {
                r.snapshotsOff = shortfall;
                warnOff(r, shortfall);
            }
        }
        if (!r.snapshotsOff.isEmpty() && r.memoryRestore != null) {
            c.ctx.getLog().warn("{}: restoring from the disk checkpoint of step {}, not from memory: the epoch has no "
                + "snapshots ({})", r.identity, r.record.lastCommittedStep(), r.snapshotsOff);
            r.memoryRestore = null;
            r.restoredStep = r.record.lastCommittedStep();
        }
        return null;
    }

    /**
     * Every rank of an epoch that keeps snapshots is Ready and reported the bytes of its snapshot as its build made
     * its chunks ({@link JobRun#snapshotBytes}): those are what its commits capture, so the nodes' direct memory is
     * checked against them before the epoch steps and before the submitter is told it started. This is the only
     * check of stage modules whose sizes {@link #decide} could not predict; for the built-in GPT a size that
     * differs from the prediction is logged (a WARNING naming both) and the reported one counts. A shortfall
     * under {@link SnapshotMode#AUTO} turns the epoch's snapshots off as {@link #decide} would have (the same
     * WARNING and reason; the ranks are told, {@link WorkerActor.DropSnapshots}, ahead of their first steps;
     * what the epoch restored from memory is already restored); under {@link SnapshotMode#ON} the job is refused.
     *
     * @return null when the epoch may step, else why the job is refused (its ranks are built: failing the job
     *         aborts them)
     */
    String built(JobRun r) {
        if (!r.snapshotsEnabled) {
            return null;
        }
        io.troupe.actors.engine.PipelineJobSpec spec = r.spec();
        long[] predicted = SnapshotMemory.snapshotBytes(spec);
        if (predicted != null && !java.util.Arrays.equals(predicted, r.snapshotBytes)) {
            String differs = "{}: the ranks' snapshots take {} bytes by rank as their workers built them, not the {} "
                + "predicted from the model's parameter layout: direct memory is checked with the built sizes";
            if (predictionOff(predicted, r.snapshotBytes)) {
                c.ctx.getLog().warn(differs, r.identity, java.util.Arrays.toString(r.snapshotBytes),
                    java.util.Arrays.toString(predicted));
            } else {
                c.ctx.getLog().info(differs, r.identity, java.util.Arrays.toString(r.snapshotBytes),
                    java.util.Arrays.toString(predicted));
            }
        }
        String shortfall = memoryShortfall(r, spec, r.snapshotBytes);
        if (shortfall.isEmpty()) {
            return null;
        }
        if (c.settings.snapshotMode() == SnapshotMode.ON) {
            return refusal(shortfall);
        }
        r.snapshotsOff = shortfall;
        r.snapshotsEnabled = false;
        warnOff(r, shortfall);
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            w.tell(new WorkerActor.DropSnapshots(r.identity, shortfall));
        }
        return null;
    }

    /**
     * Whether built snapshot sizes show the prediction wrong, not just rounded: under ZeRO a worker owns its share of
     * each gradient bucket, where the prediction takes one share of the whole chunk, so the two differ by a few
     * floats per bucket either way (16 bytes on a rank of {@code small} at 3x1, 1 MiB buckets). A rank off by more
     * than a thousandth of its predicted size is a prediction to fix (a WARNING); less is logged at INFO.
     */
    static boolean predictionOff(long[] predicted, long[] built) {
        for (int i = 0; i < predicted.length; i++) {
            if (Math.abs(built[i] - predicted[i]) > predicted[i] / 1000) {
                return true;
            }
        }
        return false;
    }

    private static String refusal(String shortfall) {
        return "in-memory snapshots do not fit (troupe.recovery.snapshots = on): " + shortfall
            + "; or set troupe.recovery.snapshots = auto (runs without them) or off";
    }

    private void warnOff(JobRun r, String shortfall) {
        c.ctx.getLog().warn("{}: epoch {} runs without in-memory snapshots (troupe.recovery.snapshots = auto; "
            + "disk checkpoints remain the fallback): {}", r.identity, r.identity.epoch(), shortfall);
    }

    /**
     * The nodes of the epoch whose direct memory cannot hold the slots of snapshots of {@code bytes} by rank,
     * described ("" when every node fits, a node's memory is not known, or a rank's worker is no longer known: its
     * loss is a fault the recovery handles).
     */
    private String memoryShortfall(JobRun r, io.troupe.actors.engine.PipelineJobSpec spec, long[] bytes) {
        List<String> nodes = new ArrayList<>();
        List<String> domains = new ArrayList<>();
        List<WorkerDescription> workers = new ArrayList<>();
        java.util.Map<String, List<String>> nodesOf = new java.util.LinkedHashMap<>();
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            WorkerDescription d = c.members.describe(w);
            if (d == null) {
                return "";
            }
            nodes.add(d.nodeAddress());
            domains.add(d.memoryKey());
            workers.add(d);
            List<String> of = nodesOf.computeIfAbsent(d.memoryKey(), k -> new ArrayList<>());
            if (!of.contains(d.nodeAddress())) {
                of.add(d.nodeAddress());
            }
        }
        // buddies by node (a copy goes to another node); slots summed by memory domain (the nodes of one JVM share it)
        java.util.Map<String, Long> needed = SnapshotMemory.slotBytesByDomain(domains, bytes,
            SnapshotRestorePlanner.buddies(nodes, stateClasses(spec)));
        java.util.Map<String, Long> limits = SnapshotMemory.limitByDomain(workers);
        c.ctx.getLog().debug("{}: snapshot slots by memory domain {}, direct memory they may take {}", r.identity,
            needed, limits);
        return SnapshotMemory.describe(SnapshotMemory.shortfalls(needed, limits, nodesOf));
    }

    /**
     * The epoch's snapshots, as {@link #decide} decided: off with a reason, or on with buddies by
     * {@link SnapshotRestorePlanner#buddies} and the restore from memory if the recovery chose one.
     */
    SnapshotPlan plan(JobRun r) {
        if (!r.snapshotsOff.isEmpty()) {
            return SnapshotPlan.OFF;
        }
        List<String> nodes = new ArrayList<>();
        List<String> endpoints = new ArrayList<>();
        int[] pieceShifts = new int[r.ranks.size()];
        for (ActorRef<WorkerActor.Command> w : r.ranks) {
            WorkerDescription d = c.members.describe(w);
            pieceShifts[nodes.size()] = d.snapshotPieceShift();
            nodes.add(d.nodeAddress());
            endpoints.add(d.snapshotEndpoint());
        }
        SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> d = r.memoryRestore;
        return new SnapshotPlan(true, SnapshotRestorePlanner.buddies(nodes, stateClasses(r.spec())), endpoints,
            pieceShifts, d == null ? -1 : d.step(), d == null ? new int[0] : d.holderOf(),
            d == null ? new int[0] : d.sourceOf());
    }

    private boolean snapshotsPossible(JobRun r, List<ActorRef<WorkerActor.Command>> ranks) {
        return offReason(r, ranks).isEmpty();
    }

    /**
     * Why {@code ranks} cannot keep snapshots whatever their memory: {@code troupe.recovery.snapshots} is
     * off, the job runs int8 error feedback (whose residuals a snapshot does not hold), or a rank's worker
     * has no snapshot endpoint; "" when they can.
     */
    private String offReason(JobRun r, List<ActorRef<WorkerActor.Command>> ranks) {
        if (!c.settings.snapshots()) {
            return "troupe.recovery.snapshots = off";
        }
        if ("int8-ef".equals(r.current.gradCompression())) {
            return "grad-compression int8-ef (its error-feedback residuals are not in a snapshot)";
        }
        for (ActorRef<WorkerActor.Command> w : ranks) {
            WorkerDescription d = c.members.describe(w);
            if (d == null || d.snapshotEndpoint().isEmpty()) {
                return "a worker of " + (d == null ? w.path().address() : d.nodeAddress())
                    + " takes no snapshot copies";
            }
        }
        return "";
    }

    /** Whether two layout strings ("2x1" and "2x1x1" alike) name the same dp, pp and tp. */
    private static boolean sameLayout(String a, String b, int virtualStages) {
        if (a.isEmpty() || b.isEmpty()) {
            return false;
        }
        return io.troupe.models.parallel.Layout.parse(a, virtualStages).equals(io.troupe.models.parallel.Layout.parse(b,
            virtualStages));
    }

    /**
     * Per rank, its state class: the data-parallel replicas of one stage hold bitwise the same
     * parameters and moments (the same reduced gradients, the same optimizer), unless ZeRO splits
     * the moments among them.
     */
    private static int[] stateClasses(io.troupe.actors.engine.PipelineJobSpec spec) {
        return stateClasses(spec.layout(), spec.zeroSharded());
    }

    private static int[] stateClasses(io.troupe.models.parallel.Layout l, boolean zeroSharded) {
        int[] cl = new int[l.worldSize()];
        for (int r = 0; r < cl.length; r++) {
            cl[r] = zeroSharded ? r : l.ppIndex(r) * l.tp() + l.tpIndex(r) + l.worldSize();
        }
        return cl;
    }
}
