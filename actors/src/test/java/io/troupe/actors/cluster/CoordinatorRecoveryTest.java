package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.MemberEvent.Kind;
import io.troupe.actors.cluster.ScriptedCoordinator.ScriptedWorker;
import io.troupe.actors.cluster.ScriptedCoordinator.Submitter;
import io.troupe.runtime.transport.JobIdentity;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The coordinator actor's recovery rules, on one node against scripted workers ({@link ScriptedCoordinator}): no
 * data plane and no training, each case provoked by the messages and timer expiries that make it, every wait
 * bounded by {@link ScriptedCoordinator#WAIT_MS}.
 */
class CoordinatorRecoveryTest {
    private static final String NODE_A = "pekko://troupe@127.0.0.1:25521#1";
    private static final String NODE_B = "pekko://troupe@127.0.0.1:25522#2";
    private static final String NODE_C = "pekko://troupe@127.0.0.1:25523#3";
    private static final String NODE_D = "pekko://troupe@127.0.0.1:25524#4";
    private static final int STEPS = 100;

    @TempDir
    Path dir;

    private ScriptedCoordinator coordinator;

    @AfterEach
    void close() throws Exception {
        if (coordinator != null) {
            coordinator.close();
        }
    }

    /** A job of {@link #STEPS} steps on {@code layout}: no validation before the last step, a step timeout of 60 s. */
    private JobRequest job(String layout, int checkpointInterval) {
        return job(layout, checkpointInterval, 60_000, dir.resolve("job-" + layout + "-" + System.nanoTime()));
    }

    private static JobRequest job(String layout, int checkpointInterval, long stepTimeoutMs, Path checkpoints) {
        return new JobRequest("tiny", layout, 1, "1f1b", 2, 8, STEPS, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "",
            checkpointInterval, checkpoints.toString(), stepTimeoutMs, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
    }

    /** A job running its first epoch: its submitter and the assignments, in rank order. */
    private record Running(Submitter submitter, List<WorkerActor.Assign> epoch) {
        JobIdentity job() {
            return epoch.get(0).job();
        }
    }

    /** Submits {@code job}, assigns and readies {@code workers} (in rank order) and waits for their first window. */
    private Running run(JobRequest job, ScriptedWorker... workers) throws InterruptedException {
        Submitter submitter = coordinator.submit(job);
        List<WorkerActor.Assign> epoch = coordinator.assignAndReady(JobIdentity.NONE, workers);
        for (int rank = 0; rank < workers.length; rank++) {
            assertEquals(rank, epoch.get(rank).rank(), "ranks go by node address");
            workers[rank].await(WorkerActor.RunSteps.class, m -> true, "the first window");
        }
        return new Running(submitter, epoch);
    }

    /**
     * Each of {@code workers} answers the coordinator's {@link WorkerActor.Describe} (awaited) holding {@code holds},
     * whose record is in {@code recordDir} ({@code JobIdentity.NONE} and "": nothing).
     */
    private void describe(JobIdentity holds, String recordDir, ScriptedWorker... workers) throws InterruptedException {
        for (ScriptedWorker w : workers) {
            w.await(WorkerActor.Describe.class, m -> true, "Describe");
            coordinator.tell(new CoordinatorActor.WorkerInfo(w.ref(), w.description(), holds, recordDir));
        }
    }

    /**
     * A quiesce wait that runs out during the back-off still counts when the back-off ends: the re-plan leaves the
     * silent worker out instead of waiting for it with no timer left to end the wait.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldReplanWithoutTheSilentWorkerWhenTheQuiesceWaitRunsOutDuringTheBackoff() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 500ms", "max-backoff = 500ms", "quiesce-timeout = 50ms",
            "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        List<WorkerActor.Assign> first = run(job("2x1", 1000), a, b).epoch();

        coordinator.tell(new CoordinatorActor.WorkerFailed(1, first.get(1).job(), 0, "scripted fault"));
        JobIdentity recovery = coordinator.awaitAbort(first.get(0).job(), a, b);
        coordinator.tell(a.quiesced(first.get(0)));              // b stays silent
        coordinator.awaitTimer(recovery, "quiesce");             // the quiesce wait runs out first,
        coordinator.awaitTimer(recovery, "backoff");             // then the back-off

        WorkerActor.Assign next = a.await(WorkerActor.Assign.class, m -> m.job().equals(recovery),
            "the re-plan's Assign");
        assertEquals("1x1x1", next.request().layout(), "the silent worker is left out");
    }

    /**
     * A node that hosted a rank of the epoch a fault ended, answered the recovery's abort and was lost during its
     * back-off, is a fault of its own, as it would be had it come after the re-plan: the back-off's length does not
     * decide whether it counts. With {@code max-restarts = 1} it fails the job, whose reason and record list both.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCountARankHostLostDuringTheBackoffAgainstTheRestartBudget() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 60s", "max-backoff = 60s", "quiesce-timeout = 60s",
            "max-restarts = 1", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        ScriptedWorker c = coordinator.worker(NODE_C);
        coordinator.register(a, b, c);
        Path checkpoints = dir.resolve("budget");
        Running first = run(job("2x1", 1000, 60_000, checkpoints), a, b);

        coordinator.tell(new CoordinatorActor.WorkerFailed(1, first.job(), 0, "scripted fault"));
        coordinator.awaitAbort(first.job(), a, b, c);
        first.submitter().events().await(JobEvent.Recovering.class, m -> m.restarts() == 1, "the first fault");
        coordinator.tell(a.quiesced(first.epoch().get(0)));
        coordinator.member(NODE_A, Kind.DOWNED);                 // rank 0's node, within the 60 s back-off

        JobEvent.Failed f = first.submitter().events().await(JobEvent.Failed.class, m -> true,
            "the job's end past its restart budget");
        assertTrue(f.reason().startsWith("gave up after 1 restarts (troupe.recovery.max-restarts=1, "
            + "restart-window=1h)"), f.reason());
        assertTrue(f.reason().contains("rank 1 scripted fault") && f.reason().contains("member " + NODE_A),
            "both faults listed: " + f.reason());
        JobRecord record = JobRecord.read(checkpoints);
        assertEquals(JobRecord.State.FAILED, record.state());
        assertEquals(2, record.faults().size(), "the record lists both faults: " + record.faults());
        assertTrue(record.faults().get(1).reason().startsWith("member " + NODE_A), record.faults().toString());
    }

    /**
     * The node whose loss a peer reported first (its data plane gone) is downed during the recovery that report
     * started, never having answered its abort: that is the fault being recovered, not a second one. The job goes
     * on within {@code max-restarts = 1}, its record listing the one fault.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldNotCountTheDowningOfTheNodeWhoseLossStartedTheRecovery() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "max-restarts = 1",
            "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        ScriptedWorker c = coordinator.worker(NODE_C);
        coordinator.register(a, b, c);
        Path checkpoints = dir.resolve("peer-lost");
        Running first = run(job("2x1", 1000, 60_000, checkpoints), a, b);

        coordinator.tell(new CoordinatorActor.WorkerFailed(0, first.job(), 0, "lost its peer rank 1"));
        coordinator.awaitAbort(first.job(), a, c);
        coordinator.member(NODE_B, Kind.DOWNED);                 // rank 1's node, silent since the fault
        coordinator.tell(a.quiesced(first.epoch().get(0)));
        coordinator.tell(new CoordinatorActor.Quiesced(c.ref(), JobIdentity.NONE)); // the spare held nothing

        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.job(), a, c);
        assertEquals("2x1x1", next.get(0).request().layout(), "the spare keeps the layout");
        assertEquals(1, JobRecord.read(checkpoints).faults().size(), "one fault: " + JobRecord.read(checkpoints)
            .faults());
    }

    /**
     * A coordinator whose own node is leaving the cluster (a rolling restart of the coordinator's node) ends the
     * epoch a fault ended but plans no new one: the singleton is being handed over, and the next coordinator carries
     * the job on from its record. An epoch planned here would be aborted at the hand-over while its workers still
     * built it, and workers slow to stop that build were left out of the next plan. The coordinator stays in its
     * recovery: a node reachable again is sent that recovery's abort, and nothing was assigned before it.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldPlanNoEpochWhileItsOwnNodeIsLeaving() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        ScriptedWorker c = coordinator.worker(NODE_C);
        coordinator.register(a, b, c);
        Running first = run(job("2x1", 1000), a, b);

        coordinator.member(coordinator.selfNode(), Kind.LEAVING);
        coordinator.tell(new CoordinatorActor.WorkerFailed(1, first.job(), 0, "scripted fault"));
        JobIdentity recovery = coordinator.awaitAbort(first.job(), a, b, c);
        coordinator.awaitTimer(recovery, "backoff");
        coordinator.tell(a.quiesced(first.epoch().get(0)));
        coordinator.tell(b.quiesced(first.epoch().get(1)));
        coordinator.tell(new CoordinatorActor.Quiesced(c.ref(), JobIdentity.NONE));  // every worker quiet: settled
        coordinator.member(NODE_B, Kind.REACHABLE);

        b.await(WorkerActor.Abort.class, m -> m.job().equals(recovery), "the recovery's abort again: still recovering");
        for (ScriptedWorker w : List.of(a, b, c)) {
            assertTrue(w.inbox().all().stream().noneMatch(m -> m instanceof WorkerActor.Assign as
                && as.job().epoch() >= recovery.epoch()), "no epoch planned: " + w.inbox().all());
        }
    }

    /**
     * A member that leaves the cluster gracefully (a rolling restart, a scale-down) is a planned departure: the job
     * re-plans without it, the submitter is told, and the record lists it as planned, but it does not count against
     * the budget: with {@code max-restarts = 0} the job survives it and carries on, and the first fault ends it.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldNotCountAGracefulDepartureAgainstTheRestartBudget() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "max-restarts = 0",
            "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        ScriptedWorker c = coordinator.worker(NODE_C);
        coordinator.register(a, b, c);
        Path checkpoints = dir.resolve("departure");
        Running first = run(job("2x1", 1000, 60_000, checkpoints), a, b);
        coordinator.stepDone(first.epoch(), 0);

        coordinator.member(NODE_B, Kind.LEAVING);                 // rank 1's node stopped by its operator
        first.submitter().events().await(JobEvent.Recovering.class, m -> m.planned()
            && m.reason().contains("leaving the cluster"), "the departure told as planned");
        coordinator.awaitAbort(first.job(), a, c);
        coordinator.tell(a.quiesced(first.epoch().get(0)));
        coordinator.tell(new CoordinatorActor.Quiesced(c.ref(), JobIdentity.NONE));
        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.job(), a, c);
        assertEquals("2x1x1", next.get(0).request().layout(), "the spare keeps the layout");
        List<JobRecord.Fault> entries = JobRecord.read(checkpoints).faults();
        assertEquals(1, entries.size(), entries.toString());
        assertTrue(entries.get(0).planned() && entries.get(0).reason().startsWith("member " + NODE_B),
            entries.toString());

        coordinator.stepDone(next, 0);                            // no snapshots or checkpoint: back from step 0,
        coordinator.stepDone(next, 1);                            // and trained past where the departure found it
        coordinator.tell(new CoordinatorActor.WorkerFailed(1, next.get(1).job(), 2, "scripted fault"));
        JobEvent.Failed f = first.submitter().events().await(JobEvent.Failed.class, m -> true,
            "the job's end at its first fault");
        assertTrue(f.reason().startsWith("gave up after 0 restarts"), f.reason());
    }

    /**
     * A coordinator whose node leaves gracefully while it holds a job writes a hand-over into the job's record; the
     * next incarnation takes the job over from it as the continuation of that departure, not as a fault: with
     * {@code max-restarts = 0} it re-plans and the job goes on, its record listing no fault and the hand-over
     * cleared. (An incarnation lost without a hand-over counts one: the previous coordinator died.)
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldTakeOverAHandedOverJobWithoutCountingAFault() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        Path checkpoints = dir.resolve("handover");
        Running first = run(job("2x1", 1000, 60_000, checkpoints), a, b);
        coordinator.member(coordinator.selfNode(), Kind.LEAVING);
        coordinator.taken().await(CoordinatorActor.MemberEvent.class, m -> m.kind() == Kind.LEAVING, "its leaving");
        JobRecord handedOver = JobRecord.read(checkpoints);
        assertTrue(handedOver.handover().startsWith("pekko://"), "hand-over written: " + handedOver.handover());
        coordinator.close();

        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "max-restarts = 0",
            "snapshots = off");
        ScriptedWorker a2 = coordinator.worker(NODE_A);
        ScriptedWorker b2 = coordinator.worker(NODE_B);
        coordinator.list(a2, b2);
        describe(first.job(), checkpoints.toString(), a2, b2);
        coordinator.awaitAbort(first.job(), a2, b2);
        coordinator.tell(a2.quiesced(first.epoch().get(0)));
        coordinator.tell(b2.quiesced(first.epoch().get(1)));
        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.job(), a2, b2);
        assertEquals("2x1x1", next.get(0).request().layout());
        JobRecord record = JobRecord.read(checkpoints);
        assertEquals(JobRecord.State.RUNNING, record.state());
        assertEquals(List.of(), record.faults(), "no fault counted for the hand-over");
        assertEquals("", record.handover(), "the hand-over is cleared once taken");
    }

    /**
     * A new coordinator incarnation takes no submission before every worker the registry lists has described itself:
     * one of them may hold the running job, which it adopts. A submission of another job that comes first is held,
     * then refused as busy once the job is adopted (taken at once, it started a second job over the running one,
     * whose workers then abandoned it).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldHoldASubmissionUntilANewIncarnationKnowsWhetherAJobRuns() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        Path checkpoints = dir.resolve("adopted");
        Running first = run(job("2x1", 1000, 60_000, checkpoints), a, b);
        coordinator.close();                                      // the coordinator's node lost

        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a2 = coordinator.worker(NODE_A);
        ScriptedWorker b2 = coordinator.worker(NODE_B);
        coordinator.list(a2, b2);                                 // listed, not described yet
        Submitter other = coordinator.submit(job("2x1", 1000));
        describe(first.job(), checkpoints.toString(), a2, b2);
        JobEvent.Failed busy = other.events().await(JobEvent.Failed.class, m -> true, "the other job refused");
        assertTrue(busy.reason().startsWith("a job is already running (job " + first.job().idHex()), busy.reason());
        coordinator.awaitAbort(first.job(), a2, b2);              // the adopted job's recovery
        coordinator.tell(a2.quiesced(first.epoch().get(0)));
        coordinator.tell(b2.quiesced(first.epoch().get(1)));
        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.job(), a2, b2);
        assertEquals(first.job().jobId(), next.get(0).job().jobId(), "the running job goes on");
        assertTrue(other.events().all().stream().noneMatch(e -> e instanceof JobEvent.Accepted), "other job taken: "
            + other.events().all());
    }

    /**
     * A job whose record still says it runs, though no worker holds it (every node that ran it was lost), is carried
     * on only at its own submitter's repeat: another submitter's job into the same checkpoint directory (a user's
     * {@code --resume} of it) is a new job, resuming from the directory's last commit under a new id, and its record
     * names the new submitter.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldStartANewJobForAnotherSubmitterInTheDirectoryOfAJobNoWorkerHolds() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        Path checkpoints = dir.resolve("orphaned");
        Running first = run(job("2x1", 1000, 60_000, checkpoints), a, b);
        coordinator.close();                                      // every node lost: the record still says running
        assertEquals(JobRecord.State.RUNNING, JobRecord.read(checkpoints).state());

        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a2 = coordinator.worker(NODE_A);
        ScriptedWorker b2 = coordinator.worker(NODE_B);
        coordinator.list(a2, b2);
        describe(JobIdentity.NONE, "", a2, b2);
        Submitter other = coordinator.submit(job("2x1", 1000, 60_000, checkpoints));
        JobEvent.Accepted taken = other.events().await(JobEvent.Accepted.class, m -> true, "the new job taken");
        assertFalse(taken.repeat());
        assertFalse(taken.jobId().equals(first.job().idHex()), "a new job, not the orphaned one carried on: " + taken);
        assertTrue(other.events().all().stream().noneMatch(e -> e instanceof JobEvent.Recovering),
            "no recovery: " + other.events().all());
        assertEquals(taken.jobId(), JobRecord.read(checkpoints).identity().idHex(), "the record is the new job's");
    }

    /**
     * A listed worker that never describes itself (its node silent) holds a new incarnation's first submission for
     * {@code quiesce-timeout} at most: then the submission is taken.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldTakeAHeldSubmissionOnceTheWaitForDescriptionsRunsOut() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 300ms", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker silent = coordinator.worker(NODE_B);
        coordinator.list(a, silent);
        describe(JobIdentity.NONE, "", a);
        Submitter submitter = coordinator.submit(job("1x1", 1000));
        coordinator.awaitTimer(JobIdentity.NONE, Submissions.SETTLE);
        JobEvent.Accepted taken = submitter.events().await(JobEvent.Accepted.class, m -> true, "the submission taken");
        assertFalse(taken.repeat());
    }

    /**
     * A node unreachable when a recovery aborted the epoch is sent that abort once it is reachable again, so the
     * re-plan gets its workers' answers instead of waiting out the quiesce timeout (60 s here) for them.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldAbortTheWorkersOfANodeThatIsReachableAgainDuringARecovery() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        List<WorkerActor.Assign> first = run(job("2x1", 1000), a, b).epoch();

        coordinator.member(NODE_B, Kind.UNREACHABLE);
        coordinator.tell(new CoordinatorActor.WorkerFailed(0, first.get(0).job(), 0, "scripted fault"));
        JobIdentity recovery = coordinator.awaitAbort(first.get(0).job(), a);
        coordinator.member(NODE_B, Kind.REACHABLE);
        assertEquals(recovery, coordinator.awaitAbort(first.get(1).job(), b), "the recovery's abort reaches b");

        coordinator.tell(a.quiesced(first.get(0)));
        coordinator.tell(b.quiesced(first.get(1)));
        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.get(0).job(), a, b);
        assertEquals(recovery, next.get(0).job());
        assertEquals("2x1x1", next.get(0).request().layout(), "both workers are back in the layout");
    }

    /**
     * Both ranks' workers leave in one registry update: both are forgotten before the one recovery starts, so it
     * neither aborts nor waits for either (the quiesce timeout is 60 s) and re-plans on the two left.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldForgetEveryWorkerThatLeftInOneRegistryUpdate() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        ScriptedWorker c = coordinator.worker(NODE_C);
        ScriptedWorker d = coordinator.worker(NODE_D);
        coordinator.register(a, b, c, d);
        List<WorkerActor.Assign> first = run(job("2x1", 1000), a, b).epoch();

        coordinator.list(c, d);                                  // both ranks' workers left at once
        JobIdentity recovery = coordinator.awaitAbort(first.get(0).job(), c, d);
        coordinator.tell(new CoordinatorActor.Quiesced(c.ref(), JobIdentity.NONE));
        coordinator.tell(new CoordinatorActor.Quiesced(d.ref(), JobIdentity.NONE));

        List<WorkerActor.Assign> next = coordinator.assignAndReady(first.get(0).job(), c, d);
        assertEquals(recovery, next.get(0).job(), "the re-plan waits for no worker that left");
    }

    /**
     * A commit while fewer workers than one pp=2 replica are usable (node B unreachable): there is nothing to grow
     * back to, and the job goes on with its next window (it recovers when B is lost, not at the commit).
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldGoOnWithoutGrowingBackWhenFewerWorkersThanOneReplicaAreUsableAtACommit() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        Running running = run(job("1x2", 1), a, b);             // a checkpoint after every step
        List<WorkerActor.Assign> epoch = running.epoch();

        coordinator.stepDone(epoch, 0);
        for (ScriptedWorker w : List.of(a, b)) {
            w.await(WorkerActor.WriteCheckpoint.class, m -> m.step() == 1, "the checkpoint of step 1");
        }
        coordinator.member(NODE_B, Kind.UNREACHABLE);           // one usable worker: not one replica of pp=2
        for (WorkerActor.Assign rank : epoch) {
            coordinator.tell(new CoordinatorActor.CheckpointWritten(rank.rank(), rank.job(), 1, new String[0],
                new long[0], new long[0]));
        }

        WorkerActor.RunSteps window = a.await(WorkerActor.RunSteps.class, m -> m.from() == 1,
            "the window after step 1");
        assertEquals(epoch.get(0).job(), window.job(), "the job goes on in its epoch");
        List<JobEvent> events = running.submitter().events().all();
        assertTrue(events.stream().noneMatch(e -> e instanceof JobEvent.Failed), events.toString());
    }

    /**
     * A restore from memory that a worker refuses sends the next restore to disk; once that epoch started, the
     * recovery after it restores from memory again.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldRestoreFromMemoryAgainAfterTheOneRestoreFromDiskThatFollowsARefusal() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "max-restarts = 5",
            "snapshots = on");
        ScriptedWorker a = coordinator.snapshotWorker(NODE_A);
        ScriptedWorker b = coordinator.snapshotWorker(NODE_B);
        coordinator.register(a, b);
        List<WorkerActor.Assign> first = run(job("2x1", 1000), a, b).epoch();
        assertTrue(first.get(0).snapshots().enabled(), "the epoch keeps snapshots");
        coordinator.stepDone(first, 0);

        coordinator.tell(new CoordinatorActor.WorkerFailed(1, first.get(1).job(), 1, "scripted fault"));
        List<WorkerActor.Assign> fromMemory = recover(first, a, b);
        assertEquals(1, fromMemory.get(0).snapshots().restoreStep(), "step 1 is restored from memory");

        coordinator.tell(new CoordinatorActor.WorkerFailed(0, fromMemory.get(0).job(), -1,
            EpochWiring.MEMORY_RESTORE_FAILED + "scripted: the copy is gone"));
        List<WorkerActor.Assign> fromDisk = recover(fromMemory, a, b);
        assertEquals(-1, fromDisk.get(0).snapshots().restoreStep(), "the restore after a refusal is from disk");
        a.await(WorkerActor.RunSteps.class, m -> m.job().equals(fromDisk.get(0).job()), "the window from disk");
        coordinator.stepDone(fromDisk, 0);

        coordinator.tell(new CoordinatorActor.WorkerFailed(1, fromDisk.get(1).job(), 1, "scripted fault"));
        List<WorkerActor.Assign> again = recover(fromDisk, a, b);
        assertEquals(1, again.get(0).snapshots().restoreStep(), "the refusal held for one restore only");
    }

    /**
     * {@code max-restarts} counts the faults of the restart window: with {@code max-restarts = 1} and a 1.5 s window,
     * a second fault after the window, the job having trained past where the first found it, is survived; a third at
     * once, within the window of the second, fails the job, naming the window and listing all three faults.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCountOnlyTheFaultsWithinTheRestartWindow() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "max-restarts = 1",
            "restart-window = 1500ms", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        Path checkpoints = dir.resolve("window");
        Running running = run(job("2x1", 1000, 60_000, checkpoints), a, b);

        List<WorkerActor.Assign> second = faultAndRecover(running, running.epoch(), 1, a, b);
        coordinator.stepDone(second, 0);
        coordinator.stepDone(second, 1);                          // trained past the first fault's step 0
        awaitPastTheWindow(checkpoints, 1500);

        List<WorkerActor.Assign> third = faultAndRecover(running, second, 2, a, b);
        coordinator.tell(new CoordinatorActor.WorkerFailed(1, third.get(1).job(), 0, "third fault"));
        JobEvent.Failed f = running.submitter().events().await(JobEvent.Failed.class, m -> true,
            "the job's end past its restart budget");
        assertTrue(f.reason().startsWith("gave up after 1 restarts (troupe.recovery.max-restarts=1, "
            + "restart-window=1500ms)"), f.reason());
        assertTrue(f.reason().contains("fault 1") && f.reason().contains("fault 2") && f.reason().contains("third"),
            "every fault listed: " + f.reason());
        JobRecord record = JobRecord.read(checkpoints);
        assertEquals(JobRecord.State.FAILED, record.state());
        assertEquals(List.of(0L, 2L, 0L), record.faults().stream().map(JobRecord.Fault::step).toList(),
            "each fault's committed step");
    }

    /**
     * A fault past the restart window still counts when the job has not trained past where the previous fault found
     * it (a fault that comes back at the same step after every restore): with {@code max-restarts = 1} the second
     * such fault fails the job.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldCountAFaultPastTheWindowWhenTheJobMadeNoProgressSinceIt() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "max-restarts = 1",
            "restart-window = 1500ms", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        Path checkpoints = dir.resolve("stuck");
        Running running = run(job("2x1", 1000, 60_000, checkpoints), a, b);
        coordinator.stepDone(running.epoch(), 0);

        List<WorkerActor.Assign> second = faultAndRecover(running, running.epoch(), 1, a, b);
        coordinator.stepDone(second, 0);                          // back to step 1, where the first fault came
        awaitPastTheWindow(checkpoints, 1500);
        coordinator.tell(new CoordinatorActor.WorkerFailed(1, second.get(1).job(), 1, "fault 2"));
        JobEvent.Failed f = running.submitter().events().await(JobEvent.Failed.class, m -> true,
            "the job's end past its restart budget");
        assertTrue(f.reason().startsWith("gave up after 1 restarts"), f.reason());
        assertEquals(List.of(1L, 1L), JobRecord.read(checkpoints).faults().stream().map(JobRecord.Fault::step)
            .toList(), "each fault's committed step");
    }

    /**
     * Fault number {@code n} in the epoch of {@code last} (rank 1's report), told to the submitter as restart {@code
     * n}; both workers answer the abort; returns the next epoch's assignments (Ready sent, its first window begun).
     */
    private List<WorkerActor.Assign> faultAndRecover(Running running, List<WorkerActor.Assign> last, int n,
                                                     ScriptedWorker a, ScriptedWorker b) throws InterruptedException {
        coordinator.tell(new CoordinatorActor.WorkerFailed(1, last.get(1).job(), 0, "fault " + n));
        running.submitter().events().await(JobEvent.Recovering.class, m -> m.restarts() == n && !m.planned(),
            "restart " + n + ", a fault");
        coordinator.awaitAbort(last.get(0).job(), a, b);
        coordinator.tell(a.quiesced(last.get(0)));
        coordinator.tell(b.quiesced(last.get(1)));
        List<WorkerActor.Assign> next = coordinator.assignAndReady(last.get(0).job(), a, b);
        a.await(WorkerActor.RunSteps.class, m -> m.job().equals(next.get(0).job()), "the window after restart " + n);
        return next;
    }

    /**
     * Waits until the wall clock is {@code windowMs} past the last fault the job record holds: the restart window is
     * a span of wall-clock time (the record's, which outlives any one coordinator), and this is what it is tested
     * against. Bounded by the test's timeout.
     */
    private static void awaitPastTheWindow(Path checkpoints, long windowMs) throws InterruptedException {
        List<JobRecord.Fault> faults = JobRecord.read(checkpoints).faults();
        long until = faults.get(faults.size() - 1).atMs() + windowMs + 50;
        while (System.currentTimeMillis() <= until) {
            Thread.sleep(Math.max(1, until - System.currentTimeMillis()));
        }
    }

    /**
     * A recovery from the epoch of {@code last}: both workers answer its abort holding their own rank's
     * snapshot of step 1; returns the next epoch's assignments (Ready sent).
     */
    private List<WorkerActor.Assign> recover(List<WorkerActor.Assign> last, ScriptedWorker a, ScriptedWorker b)
        throws InterruptedException {
        coordinator.awaitAbort(last.get(0).job(), a, b);
        coordinator.tell(a.quiesced(last.get(0), 0, 1));
        coordinator.tell(b.quiesced(last.get(1), 1, 1));
        return coordinator.assignAndReady(last.get(0).job(), a, b);
    }

    /**
     * Job 1 on layout 1x2 recovers with node B unreachable: one worker is not one replica, so its recovery waits
     * for workers (its regather timer runs) when its submitter cancels it. Returns its identity in that recovery.
     */
    private JobIdentity cancelledWhileWaitingForWorkers(ScriptedWorker a, ScriptedWorker b)
        throws InterruptedException {
        Running first = run(job("1x2", 1000), a, b);
        coordinator.member(NODE_B, Kind.UNREACHABLE);
        coordinator.tell(new CoordinatorActor.WorkerFailed(0, first.job(), 0, "scripted fault"));
        JobIdentity recovery = coordinator.awaitAbort(first.job(), a);
        coordinator.awaitTimer(recovery, "backoff");
        coordinator.tell(a.quiesced(first.epoch().get(0)));     // taken after the back-off: the re-plan finds 1 worker
        coordinator.tell(new CoordinatorActor.CancelJob(first.submitter().ref(), "scripted cancel"));
        first.submitter().events().await(JobEvent.Failed.class, f -> f.reason().contains("scripted cancel"),
            "the cancel");
        coordinator.member(NODE_B, Kind.REACHABLE);
        return recovery;
    }

    /** Whether the coordinator took a timer of job {@code job} (any epoch) after it took the cancellation. */
    private boolean tookTimerAfterTheCancel(JobIdentity job) {
        List<CoordinatorActor.Command> taken = coordinator.taken().all();
        int start = 0;
        while (start < taken.size() && !(taken.get(start) instanceof CoordinatorActor.CancelJob)) {
            start++;
        }
        for (CoordinatorActor.Command m : taken.subList(start, taken.size())) {
            if (m instanceof CoordinatorActor.RecoveryTimer t && t.job().jobId() == job.jobId()
                || m instanceof CoordinatorActor.Deadline d && d.job().jobId() == job.jobId()) {
                return true;
            }
        }
        return false;
    }

    /**
     * A job cancelled while its recovery waits for workers leaves no regather timer behind: the next job's
     * recovery that finds too few workers fails at a regather timeout of its own, and no timer of the cancelled
     * job reaches the coordinator.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldGiveTheNextJobsRecoveryARegatherTimeoutOfItsOwn() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "regather-timeout = 2s",
            "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        JobIdentity cancelled = cancelledWhileWaitingForWorkers(a, b);

        Running second = run(job("1x2", 1000), a, b);
        coordinator.member(NODE_B, Kind.UNREACHABLE);
        coordinator.tell(new CoordinatorActor.WorkerFailed(0, second.job(), 0, "scripted fault"));
        JobIdentity recovery = coordinator.awaitAbort(second.job(), a);
        coordinator.awaitTimer(recovery, "backoff");
        coordinator.tell(a.quiesced(second.epoch().get(0)));

        JobEvent.Failed f = second.submitter().events().await(JobEvent.Failed.class, m -> true, "the second job's end");
        assertTrue(f.reason().startsWith("recovery found too few workers within 2 s"), f.reason());
        assertFalse(tookTimerAfterTheCancel(cancelled), "no timer of the cancelled job came after it");
    }

    /**
     * A job cancelled while its recovery waits for workers takes its timers with it, also when no later recovery
     * restarts them: none reaches the coordinator while the next job waits out its gather timeout.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldEndEveryTimerOfACancelledJobWithIt() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "quiesce-timeout = 60s", "regather-timeout = 2s",
            "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        ScriptedWorker b = coordinator.worker(NODE_B);
        coordinator.register(a, b);
        JobIdentity cancelled = cancelledWhileWaitingForWorkers(a, b);

        // too few workers for 4x1: this job ends at its gather timeout, which runs out after the
        // cancelled job's regather timeout would have
        Submitter second = coordinator.submit(job("4x1", 1000, 3_000, dir.resolve("second")));
        JobEvent.Failed f = second.events().await(JobEvent.Failed.class, m -> true, "the second job's gather timeout");
        assertTrue(f.reason().contains("within the gather timeout"), f.reason());
        coordinator.taken().await(CoordinatorActor.RecoveryTimer.class, t -> t.what().equals("gather")
            && t.job().jobId() != cancelled.jobId(), "the gather timer");
        assertFalse(tookTimerAfterTheCancel(cancelled), "no timer of the cancelled job came after it");
    }
}
