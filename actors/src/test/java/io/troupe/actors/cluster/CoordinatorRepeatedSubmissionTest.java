package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.ScriptedCoordinator.Inbox;
import io.troupe.actors.cluster.ScriptedCoordinator.ScriptedWorker;
import io.troupe.actors.cluster.ScriptedCoordinator.Submitter;
import io.troupe.runtime.transport.JobIdentity;
import io.troupe.runtime.transport.TransportNode;
import io.troupe.runtime.transport.TransportSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The coordinator takes a submission once however often its submitter sends it (the submitter repeats it until it
 * hears an answer): a repeat while the job runs is answered {@link JobEvent.Accepted} again, a repeat after the job
 * ended gets its end again, and neither starts a job; another submitter's job is refused while one runs. A repeat
 * that reaches a new incarnation after its job ended is known by the job's record and starts nothing. A real
 * coordinator ({@link ScriptedCoordinator}); scripted workers, or a real {@link WorkerActor} for a job that finishes.
 * Every wait bounded by {@link ScriptedCoordinator#WAIT_MS}.
 */
class CoordinatorRepeatedSubmissionTest {
    private static final String NODE_A = "pekko://troupe@127.0.0.1:25521#1";

    @TempDir
    Path dir;

    private ScriptedCoordinator coordinator;
    private TransportNode transport;

    @AfterEach
    void close() throws Exception {
        try {
            if (coordinator != null) {
                coordinator.close();
            }
        } finally {
            if (transport != null) {
                transport.close();
            }
        }
    }

    /** A 1x1 job of the built-in GPT of {@code steps} steps, its checkpoints under {@code name}. */
    private JobRequest job(String name, int steps) {
        return new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, steps, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 1000,
            dir.resolve(name).toString(), 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
    }

    private static long count(ScriptedWorker w, Class<?> type) {
        return w.inbox().all().stream().filter(type::isInstance).count();
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldAnswerARepeatWhileTheJobRunsAsAcceptedAndRefuseAnotherSubmitter() throws Exception {
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "snapshots = off");
        ScriptedWorker a = coordinator.worker(NODE_A);
        coordinator.register(a);
        JobRequest job = job("running", 100);
        Submitter submitter = coordinator.submit(job);
        JobEvent.Accepted accepted = submitter.events().await(JobEvent.Accepted.class, m -> true, "the Accepted");
        assertEquals(false, accepted.repeat());
        WorkerActor.Assign assign = coordinator.assignAndReady(JobIdentity.NONE, a).get(0);
        JobEvent.Started started = submitter.events().await(JobEvent.Started.class, m -> true, "the Started");
        assertEquals(accepted.jobId(), started.jobId());

        // the same submitter again, through another gateway (another observer): a repeat
        Inbox<JobEvent> repeatObserver = new Inbox<>();
        coordinator.tell(new CoordinatorActor.SubmitJob(job, coordinator.probe(repeatObserver), submitter.ref()));
        JobEvent.Accepted again = submitter.events().await(JobEvent.Accepted.class, m -> true, "the repeat's answer");
        assertEquals(new JobEvent.Accepted(started.jobId(), assign.job().epoch(), true), again);
        assertEquals(again, repeatObserver.await(JobEvent.Accepted.class, m -> true, "the repeat's observer's"));

        // another submitter: refused, a job already running
        Inbox<JobEvent> otherEvents = new Inbox<>();
        ActorRef<JobEvent> other = coordinator.probe(otherEvents);
        coordinator.tell(new CoordinatorActor.SubmitJob(job, other));
        JobEvent.Failed busy = otherEvents.await(JobEvent.Failed.class, m -> true, "the busy refusal");
        assertTrue(busy.reason().startsWith("a job is already running"), busy.reason());

        // the repeat (taken before the refusal) changed nothing: one job, one assignment, no failure
        assertEquals(1, count(a, WorkerActor.Assign.class), a.inbox().all().toString());
        assertEquals(2, count(a, WorkerActor.Describe.class), "at registration and at the one submission");
        assertTrue(submitter.events().all().stream().noneMatch(JobEvent.Failed.class::isInstance),
            submitter.events().all().toString());

        // once the job ended, a late repeat of either gets its answer again, and starts nothing
        coordinator.tell(new CoordinatorActor.CancelJob(submitter.ref(), "by the test"));
        JobEvent.Failed cancelled = submitter.events().await(JobEvent.Failed.class, m -> true, "the cancellation");
        coordinator.tell(new CoordinatorActor.SubmitJob(job, submitter.ref()));
        assertEquals(cancelled, submitter.events().await(JobEvent.Failed.class, m -> true, "the end again"));
        coordinator.tell(new CoordinatorActor.SubmitJob(job, other));
        assertEquals(busy, otherEvents.await(JobEvent.Failed.class, m -> true, "the refusal again"));
        assertEquals(2, count(a, WorkerActor.Describe.class), "no job started: " + a.inbox().all());
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void shouldAnswerARepeatAfterTheJobFinishedWithItsEndAndStartNothing() throws Exception {
        transport = TransportNode.launch(TransportSettings.defaults(), Throwable::printStackTrace);
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "snapshots = off");
        coordinator.spawnWorker(WorkerActor.create(transport, 0, 1, UnaryOperator.identity(), () -> 0L));
        JobRequest job = job("finished", 2);
        Submitter submitter = coordinator.submit(job);
        JobEvent.Finished finished = submitter.events().await(JobEvent.Finished.class, m -> true, "the job's end");

        coordinator.tell(new CoordinatorActor.SubmitJob(job, submitter.ref()));
        assertEquals(finished, submitter.events().await(JobEvent.Finished.class, m -> true, "the end again"));
        List<JobEvent> all = submitter.events().all();
        assertEquals(1, all.stream().filter(JobEvent.Accepted.class::isInstance).count(), all.toString());
        assertEquals(1, all.stream().filter(JobEvent.Started.class::isInstance).count(), all.toString());

        // the coordinator is idle: the next submitter's job is taken, not refused as busy
        Inbox<JobEvent> next = new Inbox<>();
        coordinator.tell(new CoordinatorActor.SubmitJob(job("next", 2), coordinator.probe(next)));
        JobEvent first = next.await(JobEvent.class, m -> true, "the next job's first event");
        assertTrue(first instanceof JobEvent.Accepted n && !n.repeat(), first.toString());
    }

    /**
     * A copy of a submission delayed past its job's end and a coordinator hand-over reaches an incarnation that never
     * answered it: the job's record, which names its submitter, marks it a repeat, with or without a checkpoint
     * directory (then found under the job root), and nothing starts. Another submitter's job is taken.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void shouldKnowARepeatOfAJobThatEndedBeforeThisIncarnationByItsRecord() throws Exception {
        Path root = dir.resolve("jobs");
        coordinator = ScriptedCoordinator.start("backoff = 0ms", "snapshots = off", "job-root = \"" + root + "\"");
        ScriptedWorker a = coordinator.worker(NODE_A);
        coordinator.register(a);
        Inbox<JobEvent> submitterEvents = new Inbox<>();
        ActorRef<JobEvent> submitter = coordinator.probe(submitterEvents);
        JobRequest unnamed = new JobRequest("tiny", "1x1", 1, "1f1b", 2, 8, 2, 3e-3f, 3e-4f, 2, 1.0f, 9, "", "", 1000,
            "", 60_000, 0, 1, 1L << 20, "cpu", "", 0, "none", "none");
        JobRequest named = job("named", 2);
        JobIdentity first = JobIdentity.newJob(3);
        JobIdentity second = JobIdentity.newJob(5);
        new JobRecord(first, JobRecord.State.FINISHED, unnamed, "1x1", 1, 2, "", coordinator.serialized(submitter), "",
            List.of()).write(java.nio.file.Files.createDirectories(root.resolve(first.idHex())));
        new JobRecord(second, JobRecord.State.STOPPED, named, "1x1", 1, 1, "", coordinator.serialized(submitter), "",
            List.of()).write(java.nio.file.Files.createDirectories(Path.of(named.checkpointDir())));

        Inbox<JobEvent> observer = new Inbox<>();
        coordinator.tell(new CoordinatorActor.SubmitJob(unnamed, coordinator.probe(observer), submitter));
        assertEquals(new JobEvent.Accepted(first.idHex(), 3, true),
            observer.await(JobEvent.Accepted.class, m -> true, "the repeat of the job under the job root"));
        Inbox<JobEvent> observer2 = new Inbox<>();
        coordinator.tell(new CoordinatorActor.SubmitJob(named, coordinator.probe(observer2), submitter));
        assertEquals(new JobEvent.Accepted(second.idHex(), 5, true),
            observer2.await(JobEvent.Accepted.class, m -> true, "the repeat of the job in its own directory"));
        assertEquals(1, count(a, WorkerActor.Describe.class), "no job started: " + a.inbox().all());
        assertEquals(JobRecord.State.STOPPED, JobRecord.read(Path.of(named.checkpointDir())).state());

        // another submitter of the same request: a new job
        Inbox<JobEvent> other = new Inbox<>();
        coordinator.tell(new CoordinatorActor.SubmitJob(named, coordinator.probe(other)));
        JobEvent.Accepted taken = other.await(JobEvent.Accepted.class, m -> true, "the other submitter's job");
        assertTrue(!taken.repeat() && !taken.jobId().equals(second.idHex()), taken.toString());
        assertTrue(submitterEvents.all().isEmpty(), "the repeats' submitter stopped sending long ago: "
            + submitterEvents.all());
    }
}
