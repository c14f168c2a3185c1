package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.engine.PipelineJobSpec;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.Manifest;
import io.troupe.runtime.transport.JobIdentity;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;

/**
 * The coordinator's state of the job in flight, shared by its phases: the job as submitted and as it
 * runs this epoch, its identity and durable record, the ranks, and the accounting of the current
 * phase. One thread (the coordinator's).
 */
final class JobRun {
    enum Phase { IDLE, GATHERING, RUNNING, COMMITTING, RECOVERING }

    /** The job as submitted, with the checkpoint directory and interval it actually uses. */
    final JobRequest request;
    final ActorRef<JobEvent> submitter;
    /** The job gateway's publisher on the node the job came through (its metrics), or null. */
    private final ActorRef<JobEvent> observer;
    final Path recordDir;
    Phase phase = Phase.IDLE;
    JobIdentity identity;
    JobRecord record;
    /** The job as it runs this epoch (the layout of {@link #plan}). */
    JobRequest current;
    LayoutPlanner.Plan plan;
    private PipelineJobSpec spec;
    List<ActorRef<WorkerActor.Command>> ranks = List.of();
    /** The ranks of the epoch a fault ended (while recovering, {@link #ranks} is empty). */
    List<ActorRef<WorkerActor.Command>> lastRanks = List.of();
    /** Members lost while the job ran, each with the ranks it hosted: a failure names them. */
    final List<String> lostMembers = new ArrayList<>();
    final BitSet ready = new BitSet();
    CommitLedger ledger;
    CommitLedger.Committed lastCommitted;
    BitSet evaluating;
    ManifestBuilder checkpoint;
    long windowEnd;
    long lastCommitNs;
    double lastStepMs;
    double lastLoss = Double.NaN;
    double valLoss = Double.NaN;
    double lastValLoss = Double.NaN;
    /** Steps told to the submitter: a replay after a recovery does not repeat them. */
    long reportedUpTo;
    /** When the last fault was noticed (System.nanoTime), 0 once a step after it committed. */
    long faultNs;
    /** The step the last recovery restored. */
    long restoredStep;
    final Set<ActorRef<WorkerActor.Command>> quiesced = new HashSet<>();
    /**
     * Workers asked at the submission to describe themselves again (their direct memory as it is now, not as it
     * was when they registered) that have not answered yet: the first epoch is planned once none that is usable is
     * left (a worker that leaves or becomes unreachable is not waited for).
     */
    final Set<ActorRef<WorkerActor.Command>> describing = new HashSet<>();
    boolean backoffDone;
    /** Carried on from its record by this incarnation: the first re-plan waits out the quiesce time. */
    boolean adopted;
    /**
     * Carried on after every node that ran it was lost (a cluster started again): until this time
     * ({@link System#nanoTime()}; 0: no such wait) the re-plan waits for the requested layout's workers, as a new job
     * gathers them, rather than shrink the job onto the first nodes back.
     */
    long fullLayoutUntilNs;
    boolean quiesceExpired;
    /** This coordinator's node was found leaving at a re-plan (said once; the next coordinator re-plans). */
    boolean leavingNoted;
    String planError = "";
    /**
     * The previous epoch's workers by rank and layout, and the steps it committed: what in-memory snapshots restore.
     */
    List<ActorRef<WorkerActor.Command>> previousRanks = List.of();
    String previousLayout = "";
    long memoryStep = -1;
    /**
     * Carried on from its record and not re-planned yet: the previous epoch's ranks, layout and newest
     * snapshot step are learned from the workers' {@link CoordinatorActor.Quiesced} reports.
     */
    boolean inherited;
    /** Per quiesced worker of this job, its report (its last assignment's rank and layout). */
    final java.util.Map<ActorRef<WorkerActor.Command>, CoordinatorActor.Quiesced> assignments =
        new java.util.HashMap<>();
    /** Per quiesced worker, the snapshots it keeps of this job (pairs {rank, step}). */
    final java.util.Map<ActorRef<WorkerActor.Command>, long[]> inventories = new java.util.HashMap<>();
    /** This epoch's ranks snapshot every step in memory (they are told each commit). */
    boolean snapshotsEnabled;
    /** Per rank of this epoch, the bytes of its snapshot its Ready reported (-1 until then). */
    long[] snapshotBytes = new long[0];
    /** Per rank of this epoch, the fingerprint of the data its Ready reported ("" until then, or when it said none). */
    String[] dataFingerprints = new String[0];
    /**
     * The data this job trains on, as its ranks agreed on it in its first epoch and recorded then as
     * {@code data.json} beside the job record; null before (and for ranks that report none).
     */
    io.troupe.models.data.DataFingerprint data;
    /** Why this epoch keeps no in-memory snapshots ("" when it keeps them): the job's status says it. */
    String snapshotsOff = "";
    /** This epoch restores from memory (null: from the disk checkpoint). */
    SnapshotRestorePlanner.Decision<ActorRef<WorkerActor.Command>> memoryRestore;
    /** Why the last restore from memory failed on a worker: the next one is from disk (null: none failed). */
    String memoryRefused;

    private JobRun(JobRequest request, ActorRef<JobEvent> submitter, ActorRef<JobEvent> observer, Path recordDir,
                   JobRecord record) {
        this.request = request;
        this.submitter = submitter;
        this.observer = observer;
        this.recordDir = recordDir;
        this.record = record;
        this.identity = record.identity();
        this.current = request.withLayout(record.layout(), record.microbatches());
        var l = io.troupe.models.parallel.Layout.parse(record.layout(), request.virtualStages());
        this.plan = new LayoutPlanner.Plan(l.dp(), l.pp(), l.tp(), record.microbatches());
        this.reportedUpTo = record.lastCommittedStep();
    }

    /**
     * A submitted job: validated, given its identity at {@code epoch}, a checkpoint directory (its
     * own, or {@code jobRoot/<id>}) and interval (its own, or the default), and the commit it resumes
     * from when its directory holds one.
     *
     * @throws RuntimeException naming what is wrong with the job
     */
    static JobRun submitted(JobRequest job, ActorRef<JobEvent> submitter, ActorRef<JobEvent> observer,
                            RecoverySettings settings, long epoch, ActorRefResolver resolver) {
        JobIdentity id = JobIdentity.newJob(epoch);
        String dir = job.checkpointDir().isEmpty() ? settings.jobRoot().resolve(id.idHex()).toString()
            : job.checkpointDir();
        int interval = job.checkpointInterval() > 0 ? job.checkpointInterval() : settings.checkpointInterval();
        JobRequest request = job.withCheckpoints(interval, dir);
        PipelineJobSpec spec = JobSpecs.toSpec(request, 1);
        long step = 0;
        String resume = "";
        try {
            Path found = Checkpoints.resolve(Path.of(dir));
            Manifest mf = Checkpoints.verify(found); // every file's size and CRC32C, nothing decoded
            if (!mf.model().equals(spec.train().model()) || mf.batchSize() != job.batchSize()
                || mf.seed() != job.seed()) {
                throw new IllegalArgumentException("checkpoint " + found + " was written for model " + mf.model().name()
                    + ", batch_size=" + mf.batchSize() + ", seed=" + mf.seed());
            }
            step = mf.step();
            resume = found.toString();
        } catch (CheckpointException e) {
            if (!e.getMessage().startsWith("no committed checkpoint")) {
                throw e;
            }
        }
        JobRecord record = new JobRecord(id, JobRecord.State.RUNNING, request, request.layout(), request.microbatches(),
            step, resume, resolver.toSerializationFormat(submitter),
            observer == null ? "" : resolver.toSerializationFormat(observer), List.of());
        return new JobRun(request, submitter, observer, Path.of(dir), record);
    }

    /** A job carried on from its record by a new coordinator incarnation. */
    static JobRun adopted(JobRecord record, Path recordDir, RecoverySettings settings, ActorRefResolver resolver) {
        ActorRef<JobEvent> submitter = resolver.resolveActorRef(record.submitter());
        ActorRef<JobEvent> observer = record.observer().isEmpty() ? null : resolver.resolveActorRef(record.observer());
        return new JobRun(record.spec(), submitter, observer, recordDir, record);
    }

    /** Tells the submitter (and the observer, if any) an event of the job. */
    void tell(JobEvent e) {
        submitter.tell(e);
        if (observer != null) {
            observer.tell(e);
        }
    }

    PipelineJobSpec spec() {
        return spec;
    }

    /** The next step to commit; every earlier one is committed. */
    long committed() {
        return ledger != null ? ledger.nextStep() : record.lastCommittedStep();
    }

    /** Workers that may take a rank: after a fault only those that confirmed the abort. */
    List<ActorRef<WorkerActor.Command>> candidates(List<ActorRef<WorkerActor.Command>> usable) {
        if (quiesced.isEmpty()) {
            return usable;
        }
        List<ActorRef<WorkerActor.Command>> out = new ArrayList<>();
        for (ActorRef<WorkerActor.Command> w : usable) {
            if (quiesced.contains(w)) {
                out.add(w);
            }
        }
        return out;
    }

    /** Ranks are chosen: the epoch starts from the last commit. */
    void startEpoch() {
        spec = JobSpecs.toSpec(current, 1);
        ledger = new CommitLedger(ranks.size(),
            memoryRestore != null ? memoryRestore.step() : record.lastCommittedStep());
        ready.clear();            // lastCommitted is kept: a step restored from memory may still owe its report
        snapshotBytes = new long[ranks.size()];
        java.util.Arrays.fill(snapshotBytes, -1);
        dataFingerprints = new String[ranks.size()];
        java.util.Arrays.fill(dataFingerprints, "");
        evaluating = null;
        checkpoint = null;
        windowEnd = 0;
    }

    /**
     * Chooses the next epoch's layout for {@code available} workers.
     *
     * @throws IllegalStateException when not even one replica fits
     */
    void replan(int available) {
        LayoutPlanner.Plan p = LayoutPlanner.plan(request.layout(), request.virtualStages(), request.microbatches(),
            available);
        JobRequest next = request.withLayout(p.layout(), p.microbatches());
        try {
            JobSpecs.toSpec(next, 1);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("layout " + p.layout() + " cannot run this job: " + e.getMessage(), e);
        }
        plan = p;
        current = next;
        record = record.withLayout(p.layout(), p.microbatches());
        ranks = List.of();
        ledger = null;
    }

    /**
     * Writes the record; a failure (a full or read-only disk) is returned, not thrown: the job goes on
     * from memory and the next write catches the record up; only a coordinator failover in between
     * would read the older record.
     *
     * @return null when written, else why not
     */
    String writeRecord() {
        try {
            record.write(recordDir);
            return null;
        } catch (CheckpointException e) {
            return e.getMessage();
        }
    }
}
