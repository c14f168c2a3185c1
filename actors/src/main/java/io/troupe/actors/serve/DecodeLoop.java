package io.troupe.actors.serve;

import io.troupe.models.infer.BatchScheduler;
import io.troupe.models.infer.DecodingModel;
import io.troupe.models.infer.FinishReason;
import io.troupe.models.infer.Generation;
import io.troupe.models.infer.KvCachedGpt;
import io.troupe.models.infer.StepBatch;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.pekko.actor.typed.ActorRef;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The decode loop of single-stage serving: one thread that owns the {@link BatchScheduler} and runs
 * plan, forward, sample and the next plan back to back, with no message round trip per step. The
 * scheduler actor stays in control: it hands admissions and cancellations to the loop through a
 * lock-free queue that the loop drains at every step boundary, and stops the loop when it stops. A
 * step's listener calls (the clients' streaming work) are taken after the next step is planned and
 * run on a separate events thread, beside the next forward; the answers to admissions go out from
 * there too, so the loop's thread sends no message (a message wakes a dispatcher thread, which Linux
 * then often runs on the sender's core, preempting the loop). With core isolation the loop's thread
 * runs on a CPU of its own ({@link CoreIsolation}).
 *
 * <p>With a prefill thread ({@code prefillBeside}), new requests that arrive while others decode
 * are prefilled on that thread ({@link BatchScheduler#planPrefill}, each prompt but its last token,
 * several at once), beside the steps, with a model of its own over the same weights and KV cache;
 * the loop applies the result at its next step boundary and each request joins a step with one row
 * (its last prompt token) and decodes from then on ({@link BatchScheduler#primeAhead}: also requests
 * queued behind a full batch). Its steps then carry decoding rows and one row per new request. The
 * prefill thread is started before the loop's, so with core isolation it runs on the CPUs left to
 * the rest of the process.
 *
 * <p>The forward runs on the loop's own thread, or, with a step executor, on that executor (one
 * step at a time; the loop waits for it). A failed step ends every request it held (finish reason
 * {@code cancelled}) and the loop goes on serving; the failure is logged. A failed prefill ends the
 * requests it held in the same way. A failure elsewhere in the loop (planning, sampling, a hand-off)
 * ends every request the scheduler holds and the loop goes on; a few in a row with no step done
 * between them stop it for good: it then refuses every new request and says why in
 * {@link #stopped()}, which {@code /health} reports.
 */
final class DecodeLoop implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeLoop.class);
    /** How long an idle loop parks before it looks at the waiting requests' deadlines again. */
    private static final long IDLE_PARK_NS = 20_000_000L;
    /** Failures outside a step's forward in a row, with no step done between them, that the loop survives. */
    static final int MAX_FAILURES_IN_A_ROW = 3;

    private sealed interface Control {
    }

    private record Admit(Generation generation, ActorRef<SchedulerActor.SubmitReply> replyTo) implements Control {
    }

    private record Cancel(long id) implements Control {
    }

    /** An admission's answer, sent from the events thread. */
    private record Reply(ActorRef<SchedulerActor.SubmitReply> to, SchedulerActor.SubmitReply message) {
    }

    /** A prefill the prefill thread finished: its logits, or null when its forward failed. */
    private record Prefilled(BatchScheduler.Prefill prefill, float[] logits, long forwardNs) {
    }

    private final BatchScheduler scheduler;
    private final DecodingModel model;
    private final Executor stepExecutor;
    private final ServeMetrics metrics;
    private final int retryAfterS;
    private final ConcurrentLinkedQueue<Control> inbox = new ConcurrentLinkedQueue<>();
    private final List<Reply> replies = new ArrayList<>();
    private final ExecutorService events;
    /** Runs prefills beside the steps (null: the steps admit and prefill new requests themselves). */
    private final ExecutorService prefills;
    private final KvCachedGpt prefillModel;
    private final ConcurrentLinkedQueue<Prefilled> prefilled = new ConcurrentLinkedQueue<>();
    /** The prefill handed to the prefill thread and not applied yet (loop thread only). */
    private BatchScheduler.Prefill prefillInFlight;
    private final Thread thread;
    private volatile boolean stopping;
    /** Why the loop stopped serving on its own, or null (see {@link #stopped()}). */
    private volatile String stopped;
    /** Set once the ended loop has answered its inbox for the last time: admit() answers its own then. */
    private volatile boolean inboxClosed;
    /** Failures outside a step's forward since the last step done (loop thread only). */
    private int failuresInARow;
    /** Whether the loop's thread takes a CPU of its own ({@link CoreIsolation}) while it runs. */
    private final boolean isolateStepCore;
    private long tokensBefore;

    /**
     * @param stepExecutor  runs each forward, or null to run it on the loop's thread
     * @param prefillBeside prefill new requests on a thread of their own while others decode
     */
    DecodeLoop(BatchScheduler scheduler, Executor stepExecutor, ServeMetrics metrics, int retryAfterS,
               boolean isolateStepCore, boolean prefillBeside) {
        this.isolateStepCore = isolateStepCore;
        this.scheduler = scheduler;
        this.model = scheduler.model();
        this.stepExecutor = stepExecutor;
        this.metrics = metrics;
        this.retryAfterS = retryAfterS;
        scheduler.deferEvents(true);
        ThreadPoolExecutor ev = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
            r -> {
                Thread t = new Thread(r, "troupe-serve-events");
                t.setDaemon(true);
                return t;
            });
        ev.prestartAllCoreThreads();             // started here, not by the step thread (whose CPU it would inherit)
        this.events = ev;
        if (prefillBeside) {
            ThreadPoolExecutor pf = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                r -> {
                    Thread t = new Thread(r, "troupe-serve-prefill");
                    t.setDaemon(true);
                    return t;
                });
            pf.prestartAllCoreThreads();
            this.prefills = pf;
            if (!(model instanceof KvCachedGpt kv)) {
                throw new IllegalArgumentException("the prefill thread runs KvCachedGpt over the same weights; a "
                    + model.getClass().getSimpleName() + " serves without it");
            }
            this.prefillModel = new KvCachedGpt(kv.weights(), kv.cache());
            scheduler.prefillBeside(true);
        } else {
            this.prefills = null;
            this.prefillModel = null;
        }
        this.thread = new Thread(this::run, "troupe-serve-step");
        thread.setDaemon(true);
        thread.start();
    }

    /**
     * Queues {@code g} for admission at the next step boundary; {@code replyTo} gets the answer
     * ({@link SchedulerActor.Unavailable} at once when the loop has {@link #stopped}).
     */
    void admit(Generation g, ActorRef<SchedulerActor.SubmitReply> replyTo) {
        inbox.add(new Admit(g, replyTo));
        LockSupport.unpark(thread);
        if (inboxClosed) {
            refuseQueued();                      // the loop has ended: nobody else drains its inbox
        }
    }

    /** Cancels request {@code id} at the next step boundary (no-op for an unknown or finished one). */
    void cancel(long id) {
        inbox.add(new Cancel(id));
        LockSupport.unpark(thread);
    }

    private void run() {
        CoreIsolation opened = isolateStepCore ? CoreIsolation.open() : null;
        try {
            while (!stopping) {
                try {
                    if (!step()) {
                        break;
                    }
                } catch (RuntimeException | Error e) {
                    if (!recover(e)) {
                        break;
                    }
                }
            }
        } finally {
            if (!stopping && stopped == null) {
                stopped = "the step loop stopped";                   // interrupted without close()
            }
            try {
                drainInbox();
                scheduler.cancelAll(FinishReason.CANCELLED);
                awaitPrefill();                  // its requests were cancelled; they retire once it is applied
            } catch (RuntimeException | Error e) {
                LOG.error("ending the requests of a stopped step loop failed", e);
            }
            try {
                handOffEvents();                 // the clients hear of their ends
                publishGauges();
            } catch (RuntimeException | Error e) {
                LOG.error("the last events or gauges of a stopped step loop failed", e);
            }
            inboxClosed = true;
            refuseQueued();
            events.shutdown();
            if (prefills != null) {
                prefills.shutdown();
            }
            if (opened != null) {
                opened.close();
            }
        }
    }

    /**
     * One step: admissions and cancellations, the prefill thread's results, the plan, the forward and
     * the sampling; false when the loop's thread was interrupted.
     */
    private boolean step() {
        long t0 = System.nanoTime();
        drainInbox();
        applyPrefills();
        startPrefill();
        StepBatch batch = scheduler.plan(System.nanoTime());
        publishGauges();
        handOffEvents();                         // the previous step's tokens go out beside this forward
        if (batch == null) {
            if (inbox.isEmpty() && prefilled.isEmpty() && !stopping) {
                LockSupport.parkNanos(this, IDLE_PARK_NS);
            }
            return true;
        }
        metrics.onStepStarted(1);
        long t1 = System.nanoTime();
        float[] logits;
        try {
            logits = forward(batch);
        } catch (InterruptedException e) {
            return false;                        // the step is abandoned with everything, in run()
        } catch (RuntimeException | ExecutionException | Error e) {
            LOG.error("serving step failed; ending the requests it held",
                e instanceof ExecutionException ? e.getCause() : e);
            scheduler.cancelAll(FinishReason.CANCELLED);     // the failed step abandoned with its requests
            return true;
        } finally {
            metrics.onStepEnded(0);
        }
        long now = System.nanoTime();
        scheduler.complete(logits, now);
        long t3 = System.nanoTime();
        failuresInARow = 0;
        metrics.onStep((int) (scheduler.tokensGenerated() - tokensBefore), now);
        tokensBefore = scheduler.tokensGenerated();
        metrics.onStepCycle(now - t1, (t1 - t0) + (System.nanoTime() - now), t3 - now);
        return true;
    }

    /**
     * A failure outside a step's forward (planning, sampling, the hand-offs): the scheduler's state
     * may be half updated, so every request it holds ends ({@code cancelled}) and the loop goes on
     * with an empty scheduler. After {@link #MAX_FAILURES_IN_A_ROW} such failures with no step
     * done between them, or when ending the requests fails too, the loop stops for good and says why
     * in {@link #stopped()}. Returns whether the loop goes on.
     */
    private boolean recover(Throwable e) {
        if (++failuresInARow > MAX_FAILURES_IN_A_ROW) {
            stopped = "the step loop stopped after " + failuresInARow + " failures in a row with no step done: "
                + e;
            LOG.error("serving: {}; every request is refused from now on", stopped, e);
            return false;
        }
        LOG.error("serving loop failed outside a step's forward; ending every request it holds", e);
        try {
            scheduler.cancelAll(FinishReason.CANCELLED);
            handOffEvents();                     // the clients hear of their ends
            return true;
        } catch (RuntimeException | Error again) {
            again.addSuppressed(e);
            stopped = "the step loop stopped: ending its requests after a failure failed too: " + again;
            LOG.error("serving: {}; every request is refused from now on", stopped, again);
            return false;
        }
    }

    /**
     * Why this loop serves no more (it failed beyond {@link #recover}ing, or was interrupted), or
     * null while it serves or after an ordinary {@link #close}.
     */
    String stopped() {
        return stopped;
    }

    /** After the loop ended: answers every admission still queued (a loop that failed: unavailable). */
    private void refuseQueued() {
        Control c;
        while ((c = inbox.poll()) != null) {
            if (c instanceof Admit a) {
                metrics.onRejected();
                a.replyTo().tell(stopped != null ? new SchedulerActor.Unavailable(stopped)
                    : new SchedulerActor.Rejected(retryAfterS));
            }
        }
    }

    /** Hands the waiting requests that fit to the prefill thread, when it is idle and others decode. */
    private void startPrefill() {
        if (prefills == null || prefillInFlight != null) {
            return;
        }
        BatchScheduler.Prefill p = scheduler.planPrefill(System.nanoTime());
        if (p == null) {
            return;
        }
        prefillInFlight = p;
        final Thread loop = thread;
        prefills.execute(() -> {
            float[] logits = null;
            long t0 = System.nanoTime();
            try {
                logits = prefillModel.forward(p.batch());
            } catch (RuntimeException | Error e) {
                LOG.error("prefill of {} requests failed; ending them", p.requests(), e);
            }
            prefilled.add(new Prefilled(p, logits, System.nanoTime() - t0));
            LockSupport.unpark(loop);
        });
    }

    /** Applies the prefill the prefill thread finished, if any: its requests decode from the next step. */
    private void applyPrefills() {
        Prefilled done;
        while ((done = prefilled.poll()) != null) {
            scheduler.completePrefill(done.prefill(), done.logits(), System.nanoTime());
            metrics.onPrefilledBeside(done.prefill().requests(), done.forwardNs());
            prefillInFlight = null;
        }
    }

    /** On the way out: waits (up to 10 s) for the prefill in flight and applies it. */
    private void awaitPrefill() {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (prefillInFlight != null && System.nanoTime() - end < 0) {
            applyPrefills();
            if (prefillInFlight != null) {
                LockSupport.parkNanos(this, 1_000_000L);
            }
        }
    }

    private float[] forward(StepBatch batch) throws InterruptedException, ExecutionException {
        if (stepExecutor == null) {
            return model.forward(batch);
        }
        return CompletableFuture.supplyAsync(() -> model.forward(batch), stepExecutor).get();
    }

    private void drainInbox() {
        Control c;
        while ((c = inbox.poll()) != null) {
            if (c instanceof Admit a) {
                if (stopped != null) {
                    metrics.onRejected();
                    replies.add(new Reply(a.replyTo(), new SchedulerActor.Unavailable(stopped)));
                } else if (!stopping && scheduler.submit(a.generation())) {
                    metrics.onAccepted();
                    replies.add(new Reply(a.replyTo(), new SchedulerActor.Accepted(a.generation().id())));
                } else {
                    metrics.onRejected();
                    replies.add(new Reply(a.replyTo(), new SchedulerActor.Rejected(retryAfterS)));
                }
            } else if (c instanceof Cancel x) {
                scheduler.cancel(x.id());
            }
        }
    }

    private void handOffEvents() {
        final Runnable tokens = scheduler.takeEvents();
        final Runnable held;
        if (replies.isEmpty()) {
            held = tokens;
        } else {
            // admission answers go out from the events thread too, before the tokens of later steps:
            // a message sent from here wakes a dispatcher thread, which then preempts this loop on its core
            List<Reply> answers = new ArrayList<>(replies);
            replies.clear();
            held = () -> {
                for (Reply r : answers) {
                    r.to().tell(r.message());
                }
                if (tokens != null) {
                    tokens.run();
                }
            };
        }
        if (held != null) {
            try {
                events.execute(() -> {
                    long t0 = System.nanoTime();
                    held.run();
                    metrics.onEventsDelivered(System.nanoTime() - t0);
                });
            } catch (java.util.concurrent.RejectedExecutionException e) {
                held.run();                      // shutting down: deliver here
            }
        }
    }

    private void publishGauges() {
        metrics.setGauges(scheduler.queueDepth(), scheduler.runningSize(), model.cache(),
            scheduler.preemptions());
    }

    /**
     * Stops the loop after its current step, ends every request it holds (finish reason
     * {@code cancelled}) and delivers their last events; waits up to 10 s for both threads.
     */
    @Override
    public void close() {
        stopping = true;
        LockSupport.unpark(thread);
        try {
            thread.join(TimeUnit.SECONDS.toMillis(10));
            if (thread.isAlive()) {
                thread.interrupt();              // a step executor that never ran the step
                thread.join(TimeUnit.SECONDS.toMillis(5));
            }
            events.awaitTermination(5, TimeUnit.SECONDS);
            if (prefills != null) {
                prefills.awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
