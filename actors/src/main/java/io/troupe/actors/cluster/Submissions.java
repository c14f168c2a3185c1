package io.troupe.actors.cluster;

import io.troupe.actors.api.JobEvent;
import io.troupe.actors.cluster.CoordinatorActor.Command;
import io.troupe.actors.cluster.CoordinatorActor.RecoveryTimer;
import io.troupe.actors.cluster.CoordinatorActor.SubmitJob;
import io.troupe.runtime.transport.JobIdentity;
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
     * before this incarnation started is not recognised and runs as a new job, a corner accepted as such: the
     * submitter stops sending once the job started or ended, so only a copy sent before that and delayed past both
     * the job's end and a coordinator hand-over could be one.
     *
     * @return false when {@code m} is a new submission
     */
    boolean answeredRepeat(SubmitJob m) {
        String submitter = serialized(m.replyTo());
        Ended end = ended.get(submitter);
        boolean running = end == null && c.run != null && submitter.equals(c.run.record.submitter());
        if (end == null && !running) {
            return false;
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
