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
     * are replayed first, in order). Runs on an actor thread: return quickly. An exception it throws
     * is logged and goes no further.
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

    void publish(JobEvent e) {
        if (e instanceof JobEvent.StepCompleted s) {
            steps.add(s);
        }
        synchronized (events) {
            events.add(e);
            for (Consumer<JobEvent> l : listeners) {
                deliver(l, e);
            }
        }
        if (e instanceof JobEvent.Finished || e instanceof JobEvent.Failed) {
            outcome.complete(e);
        }
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
     * @throws TimeoutException when it did not end within {@code timeout}
     */
    public JobEvent await(Duration timeout) throws TimeoutException, InterruptedException {
        try {
            return outcome.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
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
