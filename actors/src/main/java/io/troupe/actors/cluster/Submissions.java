package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.RecoveryTimer;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.runtime.transport.JobIdentity;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The coordinator's submissions that are not simply taken or refused: repeats (a submitter sends its submission
 * again until the job has started, so the coordinator takes it once and answers each repeat), and submissions that
 * come to a new incarnation before it knows whether a worker holds a job it must adopt (held until it does). One
 * thread (the coordinator's); its state beside the phases' in {@link CoordinatorContext}.
 */
final class Submissions {
    /** The timer that ends a new incarnation's wait for every worker's description. */
    static final String SETTLE = "settle";

    /** How far back a record under the job root may be a repeat's: twice a submitter's longest resending. */
    static final Duration REPEAT_HORIZON = TroupeNode.SUBMIT_GIVE_UP.multipliedBy(2);

    /** How many submitters answered with their end this incarnation remembers, the newest kept. */
    static final int ENDS_KEPT = 32;

    /** A submission answered with its end: the job's id and epoch ("" and 0: refused, no job) and that end. */
    private record Ended(String jobId, long epoch, JobEvent end) {
    }

    /** The last {@link #ENDS_KEPT} submitters answered with their end, by their serialized reference. */
    private final Map<String, Ended> ended = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Ended> eldest) {
            return size() > ENDS_KEPT;
        }
    };

    private final CoordinatorContext c;
    /** The registry's first listing came. */
    private boolean registryHeard;
    /** This incarnation has known every worker once (or stopped waiting to): it takes submissions from then on. */
    private boolean knewEveryWorker;
    /** Submissions that came before this incarnation knew every worker, held until it does. */
    private final List<SubmitJob> held = new ArrayList<>();

    Submissions(CoordinatorContext c) {
        this.c = c;
    }

    /** The registry's listing came (its first, or a later one). */
    void registryHeard() {
        registryHeard = true;
    }

    /** A submitter as the job record names it: its serialized reference, the same in every incarnation. */
    String serialized(ActorRef<JobEvent> ref) {
        return ActorRefResolver.get(c.ctx.getSystem()).toSerializationFormat(ref);
    }

    /**
     * The submission of {@code submitter} (its serialized reference) was answered with {@code end}: a repeat of it is
     * answered with it again.
     */
    void answered(String submitter, String jobId, long epoch, JobEvent end) {
        ended.put(submitter, new Ended(jobId, epoch, end));
    }

    /**
     * Answers {@code m} when it repeats a submission this incarnation has taken (the submitter sends it again until
     * the job has started, and a copy may come late or through another seed's gateway): the submitter of
     * the job running gets {@link JobEvent.Accepted} again, one of the last {@link #ENDS_KEPT} answered with their end
     * (finished, failed, stopped or refused) gets that end again; nothing changes, and the repeat's observer (a job
     * gateway's, spawned for this copy) is told it is a repeat, which ends it. Submitters are compared by serialized
     * reference, so a repeat reaches the job an incarnation adopted from its record. A repeat of a job that ended
     * before this incarnation started (a copy sent before the job started and delayed past both its end and a
     * coordinator hand-over) is found by the job's record, which names its submitter ({@link #endedRecordOf}): it
     * is not started again, and only its observer is told (its submitter stopped sending when the job started).
     *
     * @return false when {@code m} is a new submission
     */
    boolean answeredRepeat(SubmitJob m) {
        String submitter = serialized(m.replyTo());
        Ended end = ended.get(submitter);
        boolean running = end == null && c.run != null && submitter.equals(c.run.record.submitter());
        if (end == null && !running) {
            JobRecord rec = endedRecordOf(submitter, m.job());
            if (rec == null) {
                return false;
            }
            if (m.observer() != null) {
                m.observer().tell(new JobEvent.Accepted(rec.identity().idHex(), rec.identity().epoch(), true));
            }
            c.ctx.getLog().info("a repeated submission from {} of {}, which ended {} before this incarnation: not"
                + " started again", m.replyTo().path(), rec.identity(), rec.state());
            return true;
        }
        JobEvent.Accepted repeat = running ? new JobEvent.Accepted(c.run.identity.idHex(), c.run.identity.epoch(), true)
            : new JobEvent.Accepted(end.jobId(), end.epoch(), true);
        m.replyTo().tell(running ? repeat : end.end());
        if (m.observer() != null && !(running && serialized(m.observer()).equals(c.run.record.observer()))) {
            m.observer().tell(repeat);
        }
        c.ctx.getLog().debug("a repeated submission from {}: answered {}", m.replyTo().path(),
            running ? "as accepted, " + c.run.identity : "with its end, " + end.end().getClass().getSimpleName());
        return true;
    }

    /**
     * The record of an ended job ({@code FINISHED}, {@code FAILED} or {@code STOPPED}) that {@code submitter}
     * submitted, in the submission's checkpoint directory or, without one, in a directory under the job root written
     * in the last {@link #REPEAT_HORIZON} (a submitter sends for at most {@link TroupeNode#SUBMIT_GIVE_UP}); null
     * when none. A record that cannot be read is passed over: the submission is then taken as new.
     */
    JobRecord endedRecordOf(String submitter, JobRequest job) {
        Found f = recordOf(submitter, job, false, System.currentTimeMillis() - REPEAT_HORIZON.toMillis());
        return f == null ? null : f.record();
    }

    /** A job record and the directory it was read from. */
    record Found(JobRecord record, Path dir) {
    }

    /**
     * The record of a job still {@code RUNNING} that the submitter of {@code m} submitted, which no worker of this
     * incarnation holds: every node that ran it was lost (the whole cluster stopped or started again) while its
     * submitter still follows it and sends its submission again ({@link TroupeNode#SUBMIT_WATCH}). Looked for in the
     * submission's checkpoint directory or, without one, under the job root however old (a running job's record is
     * written at its commits, the last of them before the loss); null when none. Asked only of an idle incarnation
     * that knows every worker, so a worker still holding the job would have been adopted first.
     */
    Found orphanedRecordOf(SubmitJob m) {
        return recordOf(serialized(m.replyTo()), m.job(), true, Long.MIN_VALUE);
    }

    /**
     * The record naming {@code submitter} in the checkpoint directory of {@code job} or, without one, in a directory
     * under the job root whose record was written at {@code sinceMs} or later: a running one ({@code running}) or an
     * ended one; null when none. A record that cannot be read is passed over.
     */
    private Found recordOf(String submitter, JobRequest job, boolean running, long sinceMs) {
        List<Path> dirs = new ArrayList<>();
        if (!job.checkpointDir().isEmpty()) {
            dirs.add(Path.of(job.checkpointDir()));
        } else {
            try (DirectoryStream<Path> children = Files.newDirectoryStream(c.settings.jobRoot())) {
                for (Path d : children) {
                    Path f = d.resolve(JobRecord.FILE);
                    try {
                        if (Files.isRegularFile(f) && Files.getLastModifiedTime(f).toMillis() >= sinceMs) {
                            dirs.add(d);
                        }
                    } catch (IOException e) {
                        // removed since the listing: not a record to read
                    }
                }
            } catch (IOException | UncheckedIOException e) {
                return null;                        // no job root yet: no job ran under it
            }
        }
        for (Path d : dirs) {
            try {
                JobRecord rec = JobRecord.read(d);
                if (rec != null && (rec.state() == JobRecord.State.RUNNING) == running
                    && submitter.equals(rec.submitter())) {
                    return new Found(rec, d);
                }
            } catch (RuntimeException e) {
                c.ctx.getLog().debug("passing over the record in {}: {}", d, e.getMessage());
            }
        }
        return null;
    }

    /**
     * Whether this incarnation may take a submission: once the registry's first listing came and every worker it
     * listed described itself (or {@code quiesce-timeout} passed since the first submission held), from then on. A
     * new incarnation (the previous one's node lost or leaving) learns from its workers' descriptions whether they
     * hold a job it must adopt; a submission taken before would start a second job over the running one, which its
     * workers would abandon, and its submitter would wait for nothing.
     */
    boolean knowsEveryWorker() {
        if (!knewEveryWorker && registryHeard && c.everyListedWorkerDescribed()) {
            knewEveryWorker = true;
        }
        return knewEveryWorker;
    }

    /** Holds {@code m} until this incarnation knows every worker ({@link #knowsEveryWorker}), bounded. */
    void hold(SubmitJob m) {
        if (held.isEmpty()) {
            c.ctx.getLog().info("holding a submission until every listed worker has described itself (at most {} ms):"
                + " one may hold a job to carry on", c.settings.quiesceTimeout().toMillis());
            c.timers.startSingleTimer(SETTLE, new RecoveryTimer(JobIdentity.NONE, SETTLE), c.settings.quiesceTimeout());
        }
        held.add(m);
    }

    /** The wait for every worker's description before a new incarnation's first submission ran out. */
    Behavior<Command> settleWaitOver() {
        if (!held.isEmpty()) {
            c.ctx.getLog().warn("not every listed worker described itself within {} ms; taking the submission(s) held",
                c.settings.quiesceTimeout().toMillis());
        }
        knewEveryWorker = true;
        releaseHeld();
        return Behaviors.same();
    }

    /** Sends the submissions held back to this coordinator once it knows every worker or holds a job. */
    void releaseHeld() {
        if (held.isEmpty() || c.run == null && !knowsEveryWorker()) {
            return;
        }
        c.timers.cancel(SETTLE);
        for (SubmitJob m : held) {
            c.ctx.getSelf().tell(m);               // taken, repeated or refused as busy in the phase then
        }
        held.clear();
    }
}
