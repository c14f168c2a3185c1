package io.troupe.actors.api;

import io.troupe.actors.cluster.JobRequest;
import io.troupe.actors.cluster.TroupeNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * A submitted job: its events (a listener sees all of them, whenever it is added) and its outcome,
 * {@link #await}ed with a timeout.
 */
public final class JobHandle {
    private final CompletableFuture<JobEvent> outcome = new CompletableFuture<>();
    private final List<Consumer<JobEvent>> listeners = new CopyOnWriteArrayList<>();
    private final List<JobEvent.StepCompleted> steps = new CopyOnWriteArrayList<>();
    private final List<JobEvent> events = new ArrayList<>();

    private JobHandle() {
    }

    /** Submits {@code job} through {@code node} and returns the handle its events go to. */
    static JobHandle submit(TroupeNode node, JobRequest job) {
        JobHandle handle = new JobHandle();
        node.submit(job, handle::publish);
        return handle;
    }

    /**
     * Called for every event of the job, also those that came before the listener was added (they
     * are replayed first, in order). Runs on an actor thread: return quickly.
     */
    public JobHandle onEvent(Consumer<JobEvent> listener) {
        synchronized (events) {
            for (JobEvent e : events) {
                listener.accept(e);
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
                l.accept(e);
            }
        }
        if (e instanceof JobEvent.Finished || e instanceof JobEvent.Failed) {
            outcome.complete(e);
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

    public CompletableFuture<JobEvent> outcome() {
        return outcome;
    }
}
