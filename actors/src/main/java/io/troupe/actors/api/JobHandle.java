package io.troupe.actors.api;

import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.TroupeNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A submitted job: its events (a listener sees all of them, whenever it is added), its outcome
 * ({@link #outcome()} to compose, {@link #await} to block with a timeout) and {@link #cancel()}.
 *
 * <p>Listeners are isolated from each other and from the job: one that throws is logged (with the
 * event it failed on) and keeps its place; the other listeners, the outcome and the job go on.
 */
public final class JobHandle {
    private static final Logger LOG = LoggerFactory.getLogger(JobHandle.class);

    private final CompletableFuture<JobEvent> outcome = new CompletableFuture<>();
    private final List<Consumer<JobEvent>> listeners = new CopyOnWriteArrayList<>();
    private final List<JobEvent.StepCompleted> steps = new CopyOnWriteArrayList<>();
    private final List<JobEvent> events = new ArrayList<>();
    /** Whether {@link #events} holds the job's end (guarded by {@code events}). */
    private boolean ended;
    private volatile Runnable cancel = () -> { };

    JobHandle() {
    }

    /** Submits {@code job} through {@code node} and returns the handle its events go to. */
    static JobHandle submit(TroupeNode node, JobRequest job) {
        JobHandle handle = new JobHandle();
        handle.cancel = node.submit(job, handle::publish);
        return handle;
    }

    /**
     * Called for every event of the job, also those that came before the listener was added (they
     * are replayed first, in order): every {@link JobEvent.StepCompleted}, then exactly one
     * {@link JobEvent.Finished} or {@link JobEvent.Failed}, and nothing after it. Runs on an actor thread (or, for
     * a job that {@link Troupe#close()} ended, on the closing thread): return quickly. An exception it throws is
     * logged and goes no further.
     */
    public JobHandle onEvent(Consumer<JobEvent> listener) {
        synchronized (events) {
            for (JobEvent e : events) {
                deliver(listener, e);
            }
            listeners.add(listener);
        }
        return this;
    }

    /** Passes {@code e} to the listeners and, when it ends the job, to the outcome; nothing after the end. */
    void publish(JobEvent e) {
        boolean end = e instanceof JobEvent.Finished || e instanceof JobEvent.Failed;
        synchronized (events) {
            if (ended) {
                return;
            }
            ended = end;
            if (e instanceof JobEvent.StepCompleted s) {
                steps.add(s);
            }
            events.add(e);
            for (Consumer<JobEvent> l : listeners) {
                deliver(l, e);
            }
        }
        if (end) {
            outcome.complete(e);
        }
    }

    /**
     * Ends the job here, when no end came from the cluster: {@link JobEvent.Failed} with {@code reason}, the last
     * committed step this handle saw and the epoch of the last start.
     */
    void endHere(String reason) {
        long step = 0;
        long epoch = 0;
        synchronized (events) {
            for (JobEvent e : events) {
                if (e instanceof JobEvent.StepCompleted s) {
                    step = Math.max(step, s.step());
                } else if (e instanceof JobEvent.Started st) {
                    epoch = st.epoch();
                }
            }
        }
        publish(new JobEvent.Failed(reason, step, epoch));
    }

    private static void deliver(Consumer<JobEvent> listener, JobEvent e) {
        try {
            listener.accept(e);
        } catch (RuntimeException | Error failure) {
            if (failure instanceof VirtualMachineError vm) {
                throw vm;
            }
            LOG.error("job listener {} threw on {}; the job and the other listeners go on", listener, e, failure);
        }
    }

    /** Every committed step so far, in order. */
    public List<JobEvent.StepCompleted> steps() {
        return List.copyOf(steps);
    }

    /**
     * Waits for the job to end; returns {@link JobEvent.Finished} or {@link JobEvent.Failed}.
     *
     * @throws TimeoutException when it did not end within {@code timeout} (the job goes on)
     * @throws InterruptedException when the waiting thread is interrupted (the job goes on)
     */
    public JobEvent await(Duration timeout) throws TimeoutException, InterruptedException {
        try {
            return outcome.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new TimeoutException("the job did not end within " + timeout.toMillis() + " ms");
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    /**
     * The job's end, {@link JobEvent.Finished} or {@link JobEvent.Failed}, to compose with. Read
     * only: completing it from outside is not possible.
     */
    public CompletionStage<JobEvent> outcome() {
        return outcome.minimalCompletionStage();
    }

    /**
     * Asks the cluster to end the job now: its workers abort and the job ends as
     * {@link JobEvent.Failed} (reason starting with {@code cancelled}), which {@link #outcome()} and
     * the listeners then see. Returns at once; nothing happens when the job has already ended.
     */
    public void cancel() {
        if (!outcome.isDone()) {
            cancel.run();
        }
    }
}
